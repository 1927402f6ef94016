import { execFile, spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { mkdtemp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";

/**
 * Debian's Python gRPC stack, a client we did not write: python3-grpcio, with stubs generated from
 * proto/ by Debian's protoc and grpc_python_plugin (protobuf-compiler, protobuf-compiler-grpc).
 */
const PYTHON = process.env.FACE_PYTHON ?? "/usr/bin/python3";
const PROTOC = "/usr/bin/protoc";
const GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin";
const ROOT = join(import.meta.dirname, "..", "..");

function missing(): string | undefined {
  if (!existsSync(PROTOC)) return `no ${PROTOC}`;
  if (!existsSync(GRPC_PYTHON_PLUGIN)) return `no ${GRPC_PYTHON_PLUGIN}`;
  if (spawnSync(PYTHON, ["-c", "import grpc"]).status !== 0) return `${PYTHON} cannot import grpc`;
  return undefined;
}

const absent = missing();
/**
 * The `skip` option of suites that need the Python client: a reason when it is missing here (with
 * how to install it), false when present or when FACE_REQUIRE_PYTHON_GRPC is set (CI), so CI fails
 * rather than skips.
 */
export const pythonGrpcSkip: string | false =
  absent === undefined || process.env.FACE_REQUIRE_PYTHON_GRPC
    ? false
    : `${absent}: apt-get install python3-grpcio protobuf-compiler protobuf-compiler-grpc (.ci/run does)`;

/** Generates the Python stubs of proto/ (not the vendored grpc/health, whose package would shadow grpcio's). */
async function generatePythonStubs(): Promise<string> {
  const out = await mkdtemp(join(tmpdir(), "face-pystubs-"));
  const protoDir = join(ROOT, "proto");
  const files = (await readdir(protoDir, { recursive: true }))
    .filter((f) => f.endsWith(".proto") && !f.startsWith("grpc"))
    .map((f) => relative(protoDir, join(protoDir, f)));
  // Well-known types (google/protobuf/*.proto) come from the google-proto-files devDependency.
  await promisify(execFile)(PROTOC, [
    `-I${protoDir}`, `-I${join(ROOT, "node_modules", "google-proto-files")}`,
    `--python_out=${out}`, `--grpc_out=${out}`, `--plugin=protoc-gen-grpc=${GRPC_PYTHON_PLUGIN}`, ...files,
  ]);
  return out;
}

let stubs: Promise<string> | undefined;

/** The stubs, generated on first use once per test process and removed when it exits. */
function pythonStubs(): Promise<string> {
  stubs ??= generatePythonStubs().then((dir) => {
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  });
  return stubs;
}

/** Runs test/python/face_client.py `scenario` against `target` (host:port); returns the JSON it prints. */
export async function runPythonClient<T>(target: string, scenario: string, args: string[] = []): Promise<T> {
  const { stdout } = await promisify(execFile)(PYTHON, [join(ROOT, "test", "python", "face_client.py"), target, scenario, ...args], {
    env: { ...process.env, PYTHONPATH: await pythonStubs() },
    maxBuffer: 64 * 1024 * 1024,
    timeout: 120_000,
  });
  return JSON.parse(stdout) as T;
}
