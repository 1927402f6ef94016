import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The project's root: where the child process that drops the databases finds `pg`. */
const PROJECT_ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Databases this process created, by the server's admin URL. */
const created = new Map<string, string[]>();

/**
 * Creates an empty database on the test server, so each test server starts clean. It is dropped
 * when this process exits: until 2026-12-07 none was, and every `npm test` against a server left
 * 136 databases there (680 of them, 6 GB, on this machine's CI server after five runs).
 * Dropped at exit rather than when each is closed, so a failing test, a database handed to a
 * child process or a pool never closed leaves nothing behind either.
 */
export async function freshDatabase(adminUrl: string): Promise<string> {
  // Loaded here, as the other helpers load it: the embedded pass never needs it.
  const { default: pg } = await import("pg");
  const name = `face_test_${process.pid}_${Date.now()}_${Math.floor(Math.random() * 1e6)}`;
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  if (created.size === 0) process.once("exit", dropCreatedDatabases);
  created.set(adminUrl, [...(created.get(adminUrl) ?? []), name]);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * An exit handler cannot wait for a promise, so a child process drops them; `WITH (FORCE)` ends
 * the connections still open to them (this process's pools, a service it started). Its errors go
 * to stderr: stdout is the test runner's.
 */
function dropCreatedDatabases(): void {
  for (const [adminUrl, names] of created) {
    const child = spawnSync(process.execPath, ["-e", DROP_DATABASES], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, FACE_DROP_URL: adminUrl, FACE_DROP_NAMES: names.join(",") },
      stdio: ["ignore", "ignore", "inherit"],
      timeout: 60_000,
    });
    // A child that could not start or ran out of time says nothing itself (only what it catches).
    const failure = child.error?.message ?? (child.signal === null ? undefined : `ended by ${child.signal}`);
    if (failure !== undefined) process.stderr.write(`the test databases ${names.join(",")} were not dropped: ${failure}\n`);
  }
}

const DROP_DATABASES = `
const pg = require("pg");
(async () => {
  const client = new pg.Client({ connectionString: process.env.FACE_DROP_URL });
  await client.connect();
  for (const name of process.env.FACE_DROP_NAMES.split(",")) await client.query('DROP DATABASE IF EXISTS "' + name + '" WITH (FORCE)');
  await client.end();
})().catch((e) => {
  console.error("the test databases " + process.env.FACE_DROP_NAMES + " were not dropped: " + e.message);
  process.exitCode = 1;
});
`;
