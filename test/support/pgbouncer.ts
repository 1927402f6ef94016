import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./service-process.js";
import { asPostgres, giveToPostgres, serverToolMissing } from "./system-tools.js";

/** Debian's pgbouncer binary. */
const PGBOUNCER = "/usr/sbin/pgbouncer";

/** Why the PgBouncer suite cannot run here, or false (FACE_REQUIRE_PGBOUNCER: CI, never a skip). */
export function pgbouncerMissing(): string | false {
  return serverToolMissing({ probe: [PGBOUNCER, "--version"], package: "pgbouncer", requireEnv: "FACE_REQUIRE_PGBOUNCER" });
}

export interface PgBouncer {
  /** The URL of `database` through the pooler, with the server URL's user and password. */
  url(database: string): string;
  close(): Promise<void>;
}

/**
 * A real PgBouncer in front of the server of `serverUrl` (every database, its user and password),
 * in transaction pooling mode, with `settings` added to its [pgbouncer] section.
 */
export async function startPgBouncer(serverUrl: string, settings: Record<string, string | number> = {}): Promise<PgBouncer> {
  const server = new URL(serverUrl);
  const user = decodeURIComponent(server.username);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "face-pgbouncer-"));
  const ini = {
    listen_addr: "127.0.0.1",
    listen_port: port,
    unix_socket_dir: "",
    auth_type: "plain",
    auth_file: join(dir, "userlist.txt"),
    pool_mode: "transaction",
    max_client_conn: 500,
    default_pool_size: 4,
    // pg sends extra_float_digits at start-up; PgBouncer passes on only the parameters it knows.
    ignore_startup_parameters: "extra_float_digits",
    logfile: join(dir, "pgbouncer.log"),
    ...settings,
  };
  writeFileSync(
    join(dir, "pgbouncer.ini"),
    `[databases]\n* = host=${server.hostname} port=${server.port || 5432}\n\n[pgbouncer]\n${Object.entries(ini).map(([k, v]) => `${k} = ${v}`).join("\n")}\n`,
  );
  writeFileSync(join(dir, "userlist.txt"), `"${user}" "${decodeURIComponent(server.password)}"\n`);
  giveToPostgres(...["", "pgbouncer.ini", "userlist.txt"].map((file) => join(dir, file)));
  chmodSync(dir, 0o700);
  const command = asPostgres([PGBOUNCER, join(dir, "pgbouncer.ini")]);
  const child: ChildProcess = spawn(command[0], command.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const url = (database: string) => {
    const through = new URL(serverUrl);
    through.hostname = "127.0.0.1";
    through.port = String(port);
    through.pathname = `/${database}`;
    return through.toString();
  };
  const { default: pg } = await import("pg");
  const deadline = Date.now() + 10_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url(server.pathname.slice(1) || "postgres") });
    const ready = await client.connect().then(() => client.query("SELECT 1")).then(() => true, () => false);
    await client.end().catch(() => {});
    if (ready) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error(`pgbouncer did not start:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    async close() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await new Promise((r) => child.once("exit", r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
