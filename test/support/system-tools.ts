import { spawnSync } from "node:child_process";
import { chownSync } from "node:fs";

/** A Debian tool a suite runs: `probe` runs it (exit 0: present); `requireEnv` set (CI) makes it required. */
export interface SystemTool {
  probe: string[];
  package: string;
  requireEnv: string;
}

/**
 * Why a suite that needs a PostgreSQL server and a Debian tool cannot run here (a skip that says how
 * to enable it), or false.
 */
export function serverToolMissing(tool: SystemTool): string | false {
  if (!process.env.TEST_DATABASE_URL) return "needs a PostgreSQL server (TEST_DATABASE_URL; .ci/run starts one)";
  return toolMissing(tool);
}

/**
 * Why a suite that needs a Debian tool cannot run here, or false. With `requireEnv` set (CI) a
 * missing tool is not a skip: the suite runs and fails.
 */
export function toolMissing(tool: SystemTool): string | false {
  if (process.env[tool.requireEnv]) return false;
  return spawnSync(tool.probe[0], tool.probe.slice(1)).status === 0 ? false : `needs ${tool.package} (apt-get install ${tool.package}; .ci/run installs it)`;
}

/** PostgreSQL's servers and PgBouncer refuse to run as root: as root (CI) they run as the postgres user. */
const AS_ROOT = process.getuid?.() === 0;

/** `command` as the postgres user when this process is root, unchanged otherwise. */
export function asPostgres(command: string[]): string[] {
  return AS_ROOT ? ["runuser", "-u", "postgres", "--", ...command] : command;
}

/** Gives `paths` to the postgres user when this process is root (what asPostgres commands write or read). */
export function giveToPostgres(...paths: string[]): void {
  if (!AS_ROOT) return;
  const id = (flag: string) => Number(spawnSync("id", [flag, "postgres"], { encoding: "utf8" }).stdout);
  const [uid, gid] = [id("-u"), id("-g")];
  for (const path of paths) chownSync(path, uid, gid);
}
