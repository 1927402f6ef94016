import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { face } from "./support/testdata.js";

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

describe("the service process (what npm start runs)", () => {
  let child: ChildProcess;
  let dataDir: string;
  let base: string;
  let output = "";

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "face-process-"));
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", FACE_DATA_DIR: dataDir, LOG_LEVEL: "info", DATABASE_URL: process.env.TEST_DATABASE_URL ?? "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`service did not start:\n${output}`);
      if ((await fetch(`${base}/health`).then((r) => r.ok).catch(() => false))) break;
      await new Promise((r) => setTimeout(r, 200));
    }
  });
  after(async () => {
    if (child.exitCode === null) child.kill("SIGKILL");
    await rm(dataDir, { recursive: true, force: true });
  });

  it("refuses invalid configuration listing every problem, exit code 2", async () => {
    const bad = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], { env: { ...process.env, PORT: "-1", LOG_LEVEL: "chatty" }, stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    bad.stderr!.on("data", (d) => (err += d));
    const code = await new Promise((r) => bad.on("exit", r));
    assert.equal(code, 2);
    assert.match(err, /PORT/);
    assert.match(err, /LOG_LEVEL/);
  });

  it("finishes in-flight requests on SIGTERM, then exits 0", async () => {
    const form = new FormData();
    form.append("identifier", "obama");
    form.append("image", new Blob([Buffer.from(face("face_recognition/obama.jpg"))]), "obama.jpg");
    const inFlight = fetch(`${base}/api/v1/register`, { method: "POST", body: form });
    await new Promise((r) => setTimeout(r, 30));
    child.kill("SIGTERM");
    const response = await inFlight;
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal((await response.json()).identifier, "obama");
    const code = await new Promise((r) => (child.exitCode !== null ? r(child.exitCode) : child.on("exit", r)));
    assert.equal(code, 0, output);
    assert.match(output, /shutting down/);
  });
});
