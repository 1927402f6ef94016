import { readFileSync, readlinkSync, unlinkSync } from "node:fs";
import { open, readFile, stat, unlink, utimes, type FileHandle } from "node:fs/promises";
import { hostname } from "node:os";

/**
 * Who holds a directory: a process on a host, since a boot of that host. PGlite takes no lock of
 * its own (its postmaster.pid says -42): two processes opening one data directory both start, each
 * with its own view of the files, and the one that writes last wins on disk. Until 2026-12-04 a
 * second `npm start` on the same FACE_DATA_DIR lost the first one's registrations at the next start.
 */
interface Holder {
  pid: number;
  host: string;
  /** Linux's boot id; empty elsewhere. A lock from an earlier boot is held by no one. */
  boot: string;
  /** Linux's pid namespace ("pid:[4026531836]"); empty elsewhere. Only within it does `pid` tell. */
  pidns?: string;
  since: string;
}

/** A directory another process (or this one) is using. */
export class DirectoryInUse extends Error {}

export interface DirectoryLock {
  release(): Promise<void>;
}

/**
 * How often a holder touches its lock file, and how long a lock untouched is taken for one whose
 * holder is gone. The touch is what tells a live holder that this process cannot look up: on another
 * host (a volume shared by containers, which also stop by SIGKILL when slow to stop), or in another
 * pid namespace of this host (a container sharing the host's name).
 */
const HEARTBEAT_MS = 5_000;
const STALE_MS = 20_000;

/** Lock files this process holds, released when it exits without releasing them. */
const heldHere = new Map<string, string>();
let releasedOnExit = false;

/**
 * Takes `lockPath` for this process, or throws DirectoryInUse naming its holder. A lock left by a
 * process that is gone (killed, crashed, an earlier boot) is taken over: at once when this host
 * says so, after STALE_MS untouched when its holder is where this process cannot look.
 */
export async function lockDirectory(lockPath: string, what: string): Promise<DirectoryLock> {
  const me: Holder = { pid: process.pid, host: hostname(), boot: bootId(), pidns: pidNamespace(), since: new Date().toISOString() };
  const content = JSON.stringify(me);
  if (heldHere.has(lockPath)) throw inUse(what, lockPath, me);
  let tookOver = false;
  for (let tries = 0; ; tries++) {
    if (await createLock(lockPath, content)) break;
    if (tries === 3) throw inUse(what, lockPath, undefined);
    const found = await readLock(lockPath);
    if (found === "gone") continue;
    if (found.holder === undefined || !(await isGone(lockPath, found.holder, me))) throw inUse(what, lockPath, found.holder);
    // Removed only if it is still the lock judged stale: another process may have taken it over meanwhile.
    const still = await readLock(lockPath);
    if (still !== "gone" && still.text === found.text) await unlink(lockPath).catch(() => {});
    tookOver = true;
  }
  // Two processes taking over one stale lock can both pass the check above, microseconds apart:
  // the later one's unlink then removes the earlier one's lock. The earlier one sees it here.
  if (tookOver) {
    await new Promise((r) => setTimeout(r, 1_000));
    const now = await readLock(lockPath);
    if (now === "gone" || now.text !== content) throw inUse(what, lockPath, now === "gone" ? undefined : now.holder);
  }
  heldHere.set(lockPath, content);
  const heartbeat = setInterval(() => void utimes(lockPath, new Date(), new Date()).catch(() => {}), HEARTBEAT_MS).unref();
  if (!releasedOnExit) {
    releasedOnExit = true;
    process.once("exit", () => {
      for (const [path, ours] of heldHere) if (readOr(path) === ours) unlinkSync(path);
    });
  }
  return {
    async release() {
      if (heldHere.get(lockPath) !== content) return;
      heldHere.delete(lockPath);
      clearInterval(heartbeat);
      if ((await readFile(lockPath, "utf8").catch(() => undefined)) === content) await unlink(lockPath);
    },
  };
}

/**
 * Creates the lock file holding `content`; false when one exists. Created only if absent (O_EXCL,
 * which network file systems honour too; hard links are not everywhere): a reader meeting it before
 * its text is written waits for the text (readLock). One whose text could not be written goes.
 */
async function createLock(lockPath: string, content: string): Promise<boolean> {
  let file: FileHandle;
  try {
    file = await open(lockPath, "wx", 0o644);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw e;
  }
  try {
    await file.writeFile(content);
    await file.close();
    return true;
  } catch (e) {
    await file.close().catch(() => {});
    await unlink(lockPath).catch(() => {});
    throw e;
  }
}

/**
 * The lock file's text and holder (undefined when it is not a lock this service wrote, after a
 * second for its text to be written); "gone" when there is none.
 */
async function readLock(lockPath: string): Promise<{ text: string; holder: Holder | undefined } | "gone"> {
  for (let tries = 0; ; tries++) {
    let text: string;
    try {
      text = await readFile(lockPath, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return "gone";
      throw e;
    }
    const holder = holderIn(text);
    if (holder !== undefined || tries === 10) return { text, holder };
    await new Promise((r) => setTimeout(r, 100));
  }
}

function holderIn(text: string): Holder | undefined {
  try {
    const holder = JSON.parse(text) as Holder;
    return Number.isInteger(holder.pid) && typeof holder.host === "string" && typeof holder.boot === "string" ? holder : undefined;
  } catch {
    return undefined;
  }
}

async function isGone(lockPath: string, holder: Holder, me: Holder): Promise<boolean> {
  if (holder.host === me.host) {
    if (holder.boot !== "" && me.boot !== "" && holder.boot !== me.boot) return true;
    // In this pid namespace its pid tells at once: alive, or gone. This process's own pid means a
    // restarted container's pid 1 (heldHere says this process does not hold it).
    if ((holder.pidns ?? "") === me.pidns) return holder.pid === me.pid || !isAlive(holder.pid);
  }
  return !(await stillTouched(lockPath, holder.host === me.host));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: alive, another user's.
    return (e as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/**
 * Whether the lock's holder touches it still: its modification time changes within STALE_MS. On
 * this host's own clock a lock untouched for longer is seen at once; another host's clock may be
 * off, so there only a change is believed.
 */
async function stillTouched(lockPath: string, sameClock: boolean): Promise<boolean> {
  const modified = async () => (await stat(lockPath).catch(() => undefined))?.mtimeMs;
  const first = await modified();
  if (first === undefined || (sameClock && Date.now() - first > STALE_MS)) return false;
  for (const until = Date.now() + STALE_MS; Date.now() < until; ) {
    await new Promise((r) => setTimeout(r, 250));
    const now = await modified();
    if (now !== first) return now !== undefined;
  }
  return false;
}

function inUse(what: string, lockPath: string, holder: Holder | undefined): DirectoryInUse {
  const who = holder === undefined ? "another process (its lock file is not one this service wrote)" : `process ${holder.pid} on ${holder.host} since ${holder.since}`;
  return new DirectoryInUse(`${what} is in use by ${who}. One service process per directory: for several, use DATABASE_URL (a PostgreSQL server). If that process is gone, delete ${lockPath}.`);
}

function pidNamespace(): string {
  try {
    return readlinkSync("/proc/self/ns/pid");
  } catch {
    return "";
  }
}

function bootId(): string {
  return readOr("/proc/sys/kernel/random/boot_id")?.trim() ?? "";
}

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
