import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, readlink, rm, utimes, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, it } from "node:test";
import { openDatabase } from "../src/store/database.js";
import { DirectoryInUse, lockDirectory } from "../src/store/directory-lock.js";
import { runToExit, SERVICE_COMMAND, startServiceProcess, type ServiceProcess } from "./support/service-process.js";
import { describeUnless } from "./support/suite.js";
import { face } from "./support/testdata.js";

/** The lock guards the embedded database only; the pass on a PostgreSQL server has run this file once already. */
const embeddedOnly = process.env.TEST_DATABASE_URL ? "embedded database only: the embedded pass runs it" : false;

/** The embedded database, whatever database the suite runs against otherwise. */
const EMBEDDED = { DATABASE_URL: "", LOG_LEVEL: "warn" };

async function register(service: ServiceProcess, identifier: string): Promise<void> {
  const form = new FormData();
  form.append("identifier", identifier);
  form.append("image", new Blob([Buffer.from(face("face_recognition/obama.jpg"))]), "obama.jpg");
  const response = await fetch(`${service.url}/api/v1/register`, { method: "POST", body: form });
  assert.equal(response.status, 200, await response.text());
}

const users = async (service: ServiceProcess) => (await (await fetch(`${service.url}/api/v1/users`)).json()) as string[];

/** Runs the service on `dataDir` expecting it to refuse to start: its exit code and output. */
async function refusedStart(dataDir: string): Promise<{ code: number | null; output: string }> {
  const { code, stdout, stderr } = await runToExit(SERVICE_COMMAND.args, { ...EMBEDDED, PORT: "0", FACE_DATA_DIR: dataDir });
  return { code, output: stdout + stderr };
}

describeUnless(embeddedOnly, "one service process per embedded data directory", () => {
  let dataDir: string;
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "face-directory-lock-"));
  });
  after(() => rm(dataDir, { recursive: true, force: true }));

  it("refuses a second process on the same FACE_DATA_DIR, naming the first, which loses nothing", async () => {
    const first = await startServiceProcess({ ...EMBEDDED, FACE_DATA_DIR: dataDir });
    try {
      await register(first, "before-second");
      const second = await refusedStart(dataDir);
      assert.equal(second.code, 2, second.output);
      assert.match(second.output, new RegExp(`in use by process ${first.child.pid} on `));
      assert.match(second.output, /DATABASE_URL/);
      await register(first, "after-second");
    } finally {
      await first.stop();
    }
    assert.equal(existsSync(join(dataDir, "pgdata.lock")), false, "a stopped service leaves no lock behind");
    const again = await startServiceProcess({ ...EMBEDDED, FACE_DATA_DIR: dataDir });
    try {
      assert.deepEqual(await users(again), ["after-second", "before-second"]);
    } finally {
      await again.stop();
    }
  });

  it("starts on a directory whose service was killed (SIGKILL), taking over the lock it left", async () => {
    const killed = await startServiceProcess({ ...EMBEDDED, FACE_DATA_DIR: dataDir });
    killed.child.kill("SIGKILL");
    await new Promise((r) => killed.child.once("exit", r));
    assert.ok(existsSync(join(dataDir, "pgdata.lock")), "the killed process left its lock");
    const next = await startServiceProcess({ ...EMBEDDED, FACE_DATA_DIR: dataDir });
    try {
      assert.deepEqual(await users(next), ["after-second", "before-second"]);
      assert.equal(JSON.parse(await readFile(join(dataDir, "pgdata.lock"), "utf8")).pid, next.child.pid);
    } finally {
      await next.stop();
    }
  });
});

describeUnless(embeddedOnly, "the embedded database's lock within one process, and lock files it did not write", () => {
  let dataDir: string;
  const lockFile = () => join(dataDir, "pgdata.lock");
  const open = () => openDatabase({ databaseUrl: undefined, dataDir });
  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "face-directory-lock-"));
  });
  after(() => rm(dataDir, { recursive: true, force: true }));

  it("refuses a second open in the same process until the first is closed", async () => {
    const first = await open();
    await assert.rejects(open(), (e) => e instanceof DirectoryInUse && e.message.includes(`process ${process.pid}`));
    await first.close();
    await (await open()).close();
  });

  /** Writes a lock as a service on this host, in this pid namespace, would: its pid, and `differences`. */
  const writeLock = async (pid: number, differences: Record<string, string> = {}) => {
    const boot = (await readFile("/proc/sys/kernel/random/boot_id", "utf8").catch(() => "")).trim();
    const pidns = await readlink("/proc/self/ns/pid").catch(() => "");
    await writeFile(lockFile(), JSON.stringify({ pid, host: hostname(), boot, pidns, since: "2026-12-04T00:00:00.000Z", ...differences }));
  };
  const otherHostsLock = () => writeLock(process.pid, { host: `not-${hostname()}` });

  /** Runs `work` while the lock file is touched every second, as a live holder's heartbeat does. */
  const whileTouched = async (work: () => Promise<void>) => {
    const heartbeat = setInterval(() => void utimes(lockFile(), new Date(), new Date()).catch(() => {}), 1_000);
    try {
      await work();
    } finally {
      clearInterval(heartbeat);
    }
  };

  it("refuses a lock another host's service keeps touching, and one it cannot read, saying which file to delete", async () => {
    await otherHostsLock();
    await whileTouched(() => assert.rejects(open(), (e) => e instanceof DirectoryInUse && e.message.includes(`on not-${hostname()}`) && e.message.includes(`delete ${lockFile()}`)));
    await writeFile(lockFile(), "garbage");
    await assert.rejects(open(), (e) => e instanceof DirectoryInUse && e.message.includes(`delete ${lockFile()}`));
    await rm(lockFile());
  });

  /** A process id that no process has now. */
  const exitedPid = async () => {
    const exited = spawn(process.execPath, ["-e", ""]);
    await new Promise((r) => exited.once("exit", r));
    return exited.pid!;
  };

  it("takes over at once a lock of this host whose process is gone, however fresh", async () => {
    await writeLock(await exitedPid());
    const started = Date.now();
    const lock = await lockDirectory(lockFile(), "the directory");
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
    await lock.release();
  });

  it("refuses a lock of this host whose process it cannot look up but which is touched (a container with the host's name)", async () => {
    const pid = await exitedPid();
    await writeLock(pid, { pidns: "pid:[another]" });
    await whileTouched(() => assert.rejects(open(), (e) => e instanceof DirectoryInUse && e.message.includes(`process ${pid} on ${hostname()}`)));
    await rm(lockFile());
  });

  it("takes over another host's lock once it has gone untouched for 20 s (its service was killed)", async () => {
    await otherHostsLock();
    const started = Date.now();
    const database = await open();
    assert.ok(Date.now() - started >= 20_000, "it watched the lock for 20 s first");
    assert.equal(JSON.parse(await readFile(lockFile(), "utf8")).host, hostname());
    await database.close();
  });

  it("waits for the text of a lock file met the moment it was created, and names its holder", async () => {
    await writeFile(lockFile(), "");
    const written = new Promise((r) => setTimeout(r, 300)).then(() => writeLock(process.ppid));
    await assert.rejects(lockDirectory(lockFile(), "the directory"), (e) => e instanceof DirectoryInUse && e.message.includes(`process ${process.ppid} on ${hostname()}`));
    await written;
    await rm(lockFile());
  });

  it("takes over a lock of this host from an earlier boot, though its process id is alive now", { skip: existsSync("/proc/sys/kernel/random/boot_id") ? false : "needs Linux's boot id" }, async () => {
    await writeLock(process.ppid, { boot: "an-earlier-boot" });
    const database = await open();
    assert.equal(JSON.parse(await readFile(lockFile(), "utf8")).pid, process.pid);
    await database.close();
    assert.equal(existsSync(lockFile()), false);
  });
});
