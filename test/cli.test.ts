import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, mkdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { face, FACES_DIR, manifest } from "./support/testdata.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";
import { freePort, runToExit } from "./support/service-process.js";
import { lockDirectory } from "../src/store/directory-lock.js";
import { errorLine } from "../src/cli/tool-errors.js";
import { Code, ConnectError } from "@connectrpc/connect";

/** Runs a command-line script as npm runs it (without npm's banner), to the end. */
const runScript = (script: string, args: string[], env: Record<string, string> = {}) => runToExit(["--import", "tsx", script, ...args], env);

/** `npm run cli -- args`. */
const cli = (args: string[]) => runScript("src/cli/main.ts", args);

/** A new folder with a folder per person of links (not copies) to their photos in ../shared/faces. */
async function personFolders(prefix: string, people: Iterable<[string, string[]]>): Promise<string> {
  const folder = await mkdtemp(join(tmpdir(), prefix));
  for (const [person, files] of people) {
    await mkdir(join(folder, person));
    for (const file of files) await symlink(join(FACES_DIR, file), join(folder, person, basename(file)));
  }
  return folder;
}

describe("the command-line tool", () => {
  let server: TestServer;
  let folder: string;
  const people = new Map<string, string[]>();

  before(async () => {
    server = await startTestServer();
    // ../shared/faces is labelled by a manifest; the tool wants one folder per person.
    for (const { file, identity } of manifest()) people.set(identity, [...(people.get(identity) ?? []), file]);
    folder = await personFolders("face-import-", people);
  });
  after(async () => {
    await server?.close();
    await rm(folder, { recursive: true, force: true });
  });

  it("imports a folder per person with progress, and then recognizes every person", async () => {
    const { code, stdout, stderr } = await cli(["import", folder, "--server", server.url]);
    assert.equal(code, 0, stderr + stdout);
    const progress = stderr.split("\n").filter((l) => /^\[[#.]{30}\] +\d+% \d+\/\d+ /.test(l));
    const photos = [...people.values()].flat().length;
    assert.equal(progress.length, photos, "one progress line per photo");
    assert.match(progress.at(-1)!, new RegExp(`100% ${photos}/${photos} `));
    assert.match(stdout, new RegExp(`${people.size} people, ${photos} photos: \\d+ registered`));

    const client = faceClient(server);
    for (const [identity, files] of people) {
      const answer = await client.recognize({ image: face(files[files.length - 1]) });
      assert.equal(answer.identifier, identity, files[files.length - 1]);
    }
  });

  it("ends quietly when what reads its output stops reading (list | head)", async () => {
    // More users than a page of the listing, so it writes again after the reader has gone. Put in
    // the table directly: 1,500 registrations would take a minute.
    const fillers = Array.from({ length: 1500 }, (_, i) => ({ collection: "default", identifier: `filler-${String(i).padStart(4, "0")}` }));
    await server.database.knex("users").insert(fillers);
    try {
      const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "list", "--server", server.url], { stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr += d));
      // As head -1 does: the first line read, then the pipe closed.
      child.stdout.once("data", () => child.stdout.destroy());
      const [code] = await once(child, "close");
      // It threw an unhandled EPIPE error ("node:events ... throw er") and exited 1.
      assert.equal(stderr, "");
      assert.equal(code, 0);
    } finally {
      await server.database.knex("users").whereIn("identifier", fillers.map((f) => f.identifier)).delete();
    }
  });

  it("exports, lists and deletes users", async () => {
    // Over a file anyone may read: the export (photos, embeddings) is its owner's alone all the same
    // (it kept the old file's mode: only a new file was made 0600).
    const out = join(folder, "barack_obama.json");
    await writeFile(out, "an older export\n", { mode: 0o644 });
    assert.equal((await cli(["export", "barack_obama", "--server", server.url, "--out", out])).code, 0);
    assert.equal((await stat(out)).mode & 0o777, 0o600);
    const exported = JSON.parse(await readFile(out, "utf8"));
    assert.equal(exported.identifier, "barack_obama");
    assert.ok(exported.faces.length >= 1 && exported.faces[0].embedding.length === 512);
    for (const f of exported.faces) assert.equal(createHash("sha256").update(Buffer.from(f.image, "base64")).digest("hex"), f.imageSha256, "each photo as registered");
    const listed = await cli(["list", "--server", server.url]);
    assert.ok(listed.stdout.split("\n").includes("barack_obama"));
    const deleted = await cli(["delete", "barack_obama", "joe_biden", "--server", server.url]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, /deleted barack_obama: \d+ faces/);
    const again = await cli(["delete", "barack_obama", "--server", server.url]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^error: \[not_found\]/);
    // One unknown identifier among several: the others are deleted all the same (it stopped there).
    const some = await cli(["delete", "ghost", "rose_leslie", "--server", server.url]);
    assert.equal(some.code, 1);
    assert.match(some.stderr, /^error: \[not_found\] no user "ghost"/m);
    assert.match(some.stdout, /^deleted rose_leslie: \d+ faces/m);
    const usage = await cli(["frobnicate"]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /unknown command/);
  });
});

describe("the import against a server that refuses some calls", () => {
  let server: TestServer;
  let folder: string;
  let elsewhere: string;

  before(async () => {
    // One call a second, and photos of at most 300 kB: obama3.jpg (596 kB) is over it.
    server = await startTestServer({ FACE_RATE_LIMIT_PER_SECOND: "1", FACE_RATE_LIMIT_BURST: "1", FACE_MAX_IMAGE_BYTES: "300000" });
    // A hidden folder is no one's photos (a tool's thumbnails).
    folder = await personFolders("face-import-refused-", Object.entries({
      obama: ["face_recognition/obama1.jpg", "face_recognition/obama3.jpg"],
      john: ["face_recognition/john2.jpeg"],
      rose: ["face_recognition/rose_leslie_img1.jpg"],
      ".thumbnails": ["face_recognition/obama2.jpg"],
    }));
    await symlink(join(folder, "nowhere.jpg"), join(folder, "john", "missing.jpg"));
    // A person's folder may be a link to a folder elsewhere (it was passed over without a word).
    elsewhere = await personFolders("face-import-elsewhere-", [["alex", ["face_recognition/alex_lacamoire_img1.jpg"]]]);
    await symlink(join(elsewhere, "alex"), join(folder, "alex"));
    // Nor is a macOS resource fork beside a photo.
    await writeFile(join(folder, "rose", "._rose_leslie_img1.jpg"), Buffer.alloc(4096));
    // A photo whose name has no extension is a photo all the same (it was passed over without a
    // word); a file that is no image by its name nor its first bytes is passed over, and said so.
    await symlink(join(FACES_DIR, "face_recognition/rose_leslie_img2.jpg"), join(folder, "rose", "IMG_0002"));
    await writeFile(join(folder, "rose", "notes.txt"), "met at the conference\n");
    await writeFile(join(folder, "rose", "clip"), Buffer.from("000000186674797069736f6d", "hex")); // an MP4's "ftypisom"
  });
  after(async () => {
    await server?.close();
    await rm(folder, { recursive: true, force: true });
    await rm(elsewhere, { recursive: true, force: true });
  });

  it("waits as the rate limit says, goes on past a photo over the size limit or one it cannot read, follows a linked folder, passes over hidden entries and says which files are no images", async () => {
    // It stopped at the first of either: "error: [resource_exhausted] ...".
    const { code, stdout, stderr } = await cli(["import", folder, "--server", server.url]);
    assert.equal(code, 0, stderr + stdout);
    assert.match(stdout, /^4 people, 7 photos: 5 registered, 2 refused; 2 other files passed over$/m);
    assert.match(stderr, /^passed over: rose\/clip \(not an image\)$/m);
    assert.match(stderr, /^passed over: rose\/notes\.txt \(not an image\)$/m);
    assert.match(stderr, /rose\/IMG_0002: registered/);
    assert.match(stderr, /refused: obama\/obama3\.jpg \(image is 595944 bytes, more than the limit of 300000 bytes\)/);
    assert.match(stderr, /refused: john\/missing\.jpg \(cannot read it: ENOENT/);
    // Read from the database: a call would meet the same rate limit.
    assert.deepEqual(await server.database.knex("users").orderBy("identifier").pluck("identifier"), ["alex", "john", "obama", "rose"]);
  });

  it("deletes several users in a row, each call waiting as the rate limit says", async () => {
    // Three calls at once need two seconds of a limit of one a second: the second stopped the command.
    const { code, stdout, stderr } = await cli(["delete", "alex", "john", "obama", "rose", "--server", server.url]);
    assert.equal(code, 0, stderr);
    assert.equal(stdout.match(/^deleted /gm)?.length, 4, stdout);
  });

  it("refuses a --concurrency that is not a whole number from 1 to 64", async () => {
    // "abc" made no worker at all: nothing was imported, without a word of why.
    for (const value of ["abc", "0", "1.5", "65"]) {
      const { code, stderr } = await cli(["import", folder, "--server", server.url, "--concurrency", value]);
      assert.equal(code, 2, value);
      assert.match(stderr, /--concurrency must be a whole number from 1 to 64/);
    }
  });
});

describe("the database tools (npm run migrate, npm run reembed)", () => {
  /** `npm run <tool>`. */
  const tool = (name: "migrate" | "reembed", env: Record<string, string>) => runScript(`src/cli/${name}.ts`, [], env);
  // Each of these ended in an uncaught exception: the source line, a stack trace, exit 1.
  const noStack = (stderr: string) => assert.doesNotMatch(stderr, /^\s+at |triggerUncaughtException|Node\.js v/m, stderr);

  it("say that the data directory is in use by a running service, exit 2", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "face-tools-"));
    await mkdir(join(dataDir, "pgdata"));
    // As a running service holds it: this test process is alive and on this host.
    const lock = await lockDirectory(join(dataDir, "pgdata.lock"), "the test's directory");
    try {
      for (const name of ["migrate", "reembed"] as const) {
        const { code, stderr } = await tool(name, { FACE_DATA_DIR: dataDir, DATABASE_URL: "" });
        assert.equal(code, 2, `${name}: ${stderr}`);
        assert.match(stderr, new RegExp(`^error: The embedded database in .* is in use by process ${process.pid} `), name);
        noStack(stderr);
      }
    } finally {
      await lock.release();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("say why a connection failed when every address of a host name refused it", () => {
    // What Node's connect gives for a name with addresses of both families (pg's and connect-node's
    // alike, by hand with one such name in /etc/hosts): an AggregateError whose own message is
    // empty. The command-line tool said "error: [unavailable]" and no more.
    const refused = new AggregateError([new Error("connect ECONNREFUSED ::1:1"), new Error("connect ECONNREFUSED 127.0.0.1:1")]);
    assert.equal(errorLine(ConnectError.from(refused, Code.Unavailable)), "error: [unavailable] connect ECONNREFUSED ::1:1; connect ECONNREFUSED 127.0.0.1:1");
    assert.equal(errorLine(refused), "error: connect ECONNREFUSED ::1:1; connect ECONNREFUSED 127.0.0.1:1");
    assert.equal(errorLine(new ConnectError("no user \"ghost\"", Code.NotFound)), "error: [not_found] no user \"ghost\"");
  });

  it("list invalid configuration, exit 2, and say a database refuses connections without a stack, exit 1", async () => {
    for (const name of ["migrate", "reembed"] as const) {
      const invalid = await tool(name, { FACE_ONNX_WORKERS: "abc" });
      assert.equal(invalid.code, 2, `${name}: ${invalid.stderr}`);
      assert.match(invalid.stderr, /^error: invalid configuration:\n {2}- FACE_ONNX_WORKERS="abc"/);
      noStack(invalid.stderr);
      const port = await freePort();
      const refused = await tool(name, { DATABASE_URL: `postgres://face:face@127.0.0.1:${port}/face` });
      assert.equal(refused.code, 1, `${name}: ${refused.stderr}`);
      // knex's warning first, without its stack, then the error that stopped the tool.
      assert.equal(refused.stderr.split("\n").at(-2), `error: connect ECONNREFUSED 127.0.0.1:${port}`, refused.stderr);
      noStack(refused.stderr);
    }
  });
});

