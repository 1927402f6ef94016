import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { startServiceProcess, type ServiceProcess } from "./support/service-process.js";
import { describeUnless } from "./support/suite.js";
import { face } from "./support/testdata.js";

/** The embedded database's files; the pass on a PostgreSQL server keeps photos and rows on the server. */
const embeddedOnly = process.env.TEST_DATABASE_URL ? "embedded database only: the embedded pass runs it" : false;

/** Another local user reading `path` as this machine's `nobody` would: whether it could. */
function nobodyCanRead(path: string): boolean {
  return spawnSync("runuser", ["-u", "nobody", "--", "cat", path], { stdio: "ignore" }).status === 0;
}
const asNobody = process.getuid?.() === 0 ? false : "needs root to read as another user (runuser -u nobody); the mode bits are checked all the same";

async function register(service: ServiceProcess): Promise<void> {
  const form = new FormData();
  form.append("identifier", "obama");
  form.append("image", new Blob([Buffer.from(face("face_recognition/obama.jpg"))]), "obama.jpg");
  const response = await fetch(`${service.url}/api/v1/register`, { method: "POST", body: form });
  assert.equal(response.status, 200, await response.text());
}

/** The one stored photo file under `images`. */
async function storedPhoto(images: string): Promise<string> {
  const [prefix] = await readdir(images);
  const [file] = await readdir(join(images, prefix));
  return join(images, prefix, file);
}

const modeOf = async (path: string) => (await stat(path)).mode & 0o777;

// The data directory holds every registered person's photos and the database (embeddings, webhook
// signing secrets). Made with the process's umask (0755 directories, 0644 files), any local user
// could read them.
describeUnless(embeddedOnly, "the data directory's photos and database, on a machine shared with other users", () => {
  let parent: string;
  before(async () => {
    parent = await mkdtemp(join(tmpdir(), "face-modes-"));
    // As /tmp's own directories are: others may pass through, as they may through a home directory.
    await chmod(parent, 0o755);
  });
  after(() => rm(parent, { recursive: true, force: true }));

  it("are its own user's alone when it makes the directory", async () => {
    const dataDir = join(parent, "new", "data");
    const service = await startServiceProcess({ FACE_DATA_DIR: dataDir, DATABASE_URL: "", LOG_LEVEL: "warn" });
    try {
      await register(service);
      const photo = await storedPhoto(join(dataDir, "images"));
      for (const directory of [join(dataDir, "pgdata"), join(dataDir, "images")]) assert.equal(await modeOf(directory), 0o700, directory);
      assert.equal(await modeOf(photo), 0o600);
      if (asNobody === false) assert.equal(nobodyCanRead(photo), false, "another user read a stored photo");
    } finally {
      await service.stop();
    }
  });

  it("are made its own user's alone where an earlier version left them open to all", { skip: asNobody }, async () => {
    const dataDir = join(parent, "earlier");
    const service = await startServiceProcess({ FACE_DATA_DIR: dataDir, DATABASE_URL: "", LOG_LEVEL: "warn" });
    await register(service);
    await service.stop();
    const photo = await storedPhoto(join(dataDir, "images"));
    // As the earlier versions left them.
    for (const directory of [dataDir, join(dataDir, "pgdata"), join(dataDir, "images"), join(photo, "..")]) await chmod(directory, 0o755);
    await chmod(photo, 0o644);
    assert.equal(nobodyCanRead(photo), true, "the test's own premise: another user could read it");
    const again = await startServiceProcess({ FACE_DATA_DIR: dataDir, DATABASE_URL: "", LOG_LEVEL: "warn" });
    try {
      assert.equal(nobodyCanRead(photo), false, "another user read a stored photo");
      for (const directory of [join(dataDir, "pgdata"), join(dataDir, "images")]) assert.equal(await modeOf(directory), 0o700, directory);
      // Nothing lost: the person is still there.
      const users = (await (await fetch(`${again.url}/api/v1/users`)).json()) as string[];
      assert.deepEqual(users, ["obama"]);
    } finally {
      await again.stop();
    }

    // A directory its group may enter and others not was made so on purpose (a backup user), as
    // PostgreSQL allows for its data directory: it stays so.
    await chmod(join(dataDir, "pgdata"), 0o750);
    const third = await startServiceProcess({ FACE_DATA_DIR: dataDir, DATABASE_URL: "", LOG_LEVEL: "warn" });
    await third.stop();
    assert.equal(await modeOf(join(dataDir, "pgdata")), 0o750);
  });
});
