import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, symlink } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";
import { FACES_DIR } from "./support/testdata.js";
import { startTestServer, type TestServer } from "./support/server.js";

const ROOT = join(import.meta.dirname, "..");

/** Every curl and buf curl command of the README's sh blocks, continuation lines joined, comments dropped. */
async function readmeCommands(): Promise<string[]> {
  const readme = await readFile(join(ROOT, "README.md"), "utf8");
  const commands: string[] = [];
  for (const block of readme.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const lines = block[1].replace(/\\\n\s*/g, "").split("\n");
    for (const line of lines) {
      const command = line.replace(/\s{2,}#.*$/, "").trim();
      if (/(^|\|\s*)(curl|npx buf curl) /.test(command)) commands.push(command);
    }
  }
  return commands;
}

describe("the README's commands, as printed", () => {
  let server: TestServer;
  let work: string;
  before(async () => {
    server = await startTestServer();
    // Inside the project (test-artifacts/ is ignored by git), as a reader runs them: `npx buf`
    // finds the project's buf from there. The photos they name are links to the shared ones.
    await mkdir(join(ROOT, "test-artifacts"), { recursive: true });
    work = await mkdtemp(join(ROOT, "test-artifacts", "readme-"));
    for (const name of ["obama.jpg", "obama2.jpg"]) await symlink(join(FACES_DIR, "face_recognition", name), join(work, name));
  });
  after(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  it("all run against a started server, in order, and succeed", async () => {
    const commands = await readmeCommands();
    assert.ok(commands.length >= 10, `found ${commands.length} commands: the extraction works`);
    assert.ok(commands.some((c) => c.startsWith("npx buf curl")) && commands.some((c) => c.includes("| ")), "buf curl and the piped Connect JSON call are among them");
    const host = new URL(server.url).host;
    let lastId = "";
    for (const printed of commands) {
      const command = printed
        .replaceAll("localhost:8080", host)
        .replaceAll("<id>", lastId)
        // Fail on an HTTP error status as well as on a transport error.
        .replace(/(^|\|\s*)curl /, "$1curl -sS --fail-with-body ");
      const { stdout } = await promisify(execFile)("bash", ["-o", "pipefail", "-c", command], {
        cwd: work,
        maxBuffer: 16 * 1024 * 1024,
      }).catch((e) => {
        throw new Error(`README command failed: ${printed}\n${e.stderr ?? ""}${e.stdout ?? ""}`);
      });
      lastId = /"id":\s*"([0-9a-f-]{36})"/.exec(stdout)?.[1] ?? lastId;
      if (printed.includes("/api/v1/recognize")) assert.match(stdout, /"identifier":"obama"/, printed);
      if (printed.includes("FaceService/Recognize")) assert.match(stdout, /"distance"/, printed);
      if (printed.includes("--list-methods")) assert.match(stdout, /face\.v1\.FaceService\/Recognize/);
    }
  });
});
