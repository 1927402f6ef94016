import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./service-process.js";
import { asPostgres, giveToPostgres } from "./system-tools.js";

const BIN = "/usr/lib/postgresql/15/bin";

/** Why a primary with a streaming replica cannot be made here (a skip saying how to enable it), or false. */
export function replicationMissing(): string | false {
  if (!process.env.TEST_DATABASE_URL) return "needs PostgreSQL 15 with pgvector (TEST_DATABASE_URL; .ci/run installs and starts it)";
  return existsSync(join(BIN, "pg_basebackup")) ? false : `needs ${BIN}/pg_basebackup (apt-get install postgresql-15)`;
}

export interface ReplicatedPostgres {
  /** The `face` database on the primary and on its replica (user postgres, trust authentication). */
  readonly primaryUrl: string;
  readonly replicaUrl: string;
  /** Stops (and starts again) replaying the primary's changes on the replica: a replica that lags. */
  pauseReplay(): Promise<void>;
  resumeReplay(): Promise<void>;
  /** Waits until the replica has replayed everything the primary has written so far. */
  caughtUp(): Promise<void>;
  /** Kills the replica's server (immediate shutdown) and starts it again. */
  stopReplica(): void;
  startReplica(): void;
  close(): void;
}

/** Runs a PostgreSQL program (as the postgres user when this process is root). */
function runPostgres(program: string, args: string[]): void {
  const command = asPostgres([join(BIN, program), ...args]);
  const result = spawnSync(command[0], command.slice(1), { encoding: "utf8" });
  if (result.status !== 0) throw new Error(`${program} ${args.join(" ")} failed:\n${result.stdout}${result.stderr}`);
}

/**
 * A PostgreSQL 15 primary of its own (not the shared test server, so the base backup copies a small
 * cluster) and a hot standby made from it with pg_basebackup, streaming, on two free loopback ports.
 */
export async function startReplicatedPostgres(): Promise<ReplicatedPostgres> {
  const root = mkdtempSync(join(tmpdir(), "face-replication-"));
  giveToPostgres(root);
  const primaryDir = join(root, "primary");
  const replicaDir = join(root, "replica");
  const [primaryPort, replicaPort] = [await freePort(), await freePort()];
  const serverOptions = (port: number) => `-c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${root} -c fsync=off -c max_connections=100`;
  const startReplica = () => runPostgres("pg_ctl", ["-D", replicaDir, "-l", join(root, "replica.log"), "-o", serverOptions(replicaPort), "-w", "start"]);
  let replicaRunning = false;

  runPostgres("initdb", ["-D", primaryDir, "-A", "trust", "-U", "postgres"]);
  runPostgres("pg_ctl", ["-D", primaryDir, "-l", join(root, "primary.log"), "-o", serverOptions(primaryPort), "-w", "start"]);
  const url = (port: number, database: string) => `postgres://postgres@127.0.0.1:${port}/${database}`;
  const { default: pg } = await import("pg");
  async function query(connectionString: string, sql: string): Promise<Record<string, unknown>[]> {
    const client = new pg.Client({ connectionString });
    await client.connect();
    try {
      return (await client.query(sql)).rows;
    } finally {
      await client.end();
    }
  }
  try {
    await query(url(primaryPort, "postgres"), "CREATE DATABASE face");
    await query(url(primaryPort, "face"), "CREATE EXTENSION vector");
    // -R writes standby.signal and primary_conninfo: the copy starts as a streaming hot standby.
    runPostgres("pg_basebackup", ["-h", "127.0.0.1", "-p", String(primaryPort), "-U", "postgres", "-D", replicaDir, "-R", "-X", "stream", "-c", "fast"]);
    startReplica();
    replicaRunning = true;
  } catch (e) {
    runPostgres("pg_ctl", ["-D", primaryDir, "-m", "immediate", "stop"]);
    rmSync(root, { recursive: true, force: true });
    throw e;
  }

  const primaryUrl = url(primaryPort, "face");
  const replicaUrl = url(replicaPort, "face");
  return {
    primaryUrl,
    replicaUrl,
    pauseReplay: async () => void (await query(replicaUrl, "SELECT pg_wal_replay_pause()")),
    resumeReplay: async () => void (await query(replicaUrl, "SELECT pg_wal_replay_resume()")),
    async caughtUp() {
      const [{ lsn }] = await query(primaryUrl, "SELECT pg_current_wal_lsn()::text AS lsn");
      for (const deadline = Date.now() + 10_000; ; ) {
        const [{ behind }] = await query(replicaUrl, `SELECT pg_last_wal_replay_lsn() < '${lsn}'::pg_lsn AS behind`);
        if (behind === false) return;
        if (Date.now() > deadline) throw new Error(`the replica did not replay up to ${lsn} within 10 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stopReplica() {
      runPostgres("pg_ctl", ["-D", replicaDir, "-m", "immediate", "stop"]);
      replicaRunning = false;
    },
    startReplica() {
      startReplica();
      replicaRunning = true;
    },
    close() {
      if (replicaRunning) runPostgres("pg_ctl", ["-D", replicaDir, "-m", "immediate", "stop"]);
      runPostgres("pg_ctl", ["-D", primaryDir, "-m", "immediate", "stop"]);
      rmSync(root, { recursive: true, force: true });
    },
  };
}
