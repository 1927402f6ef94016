import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { freePort, runToExit, SERVICE_COMMAND, startServiceProcess, type ServiceProcess } from "./support/service-process.js";
import { face } from "./support/testdata.js";
import { until } from "./support/until.js";
import { freshDatabase } from "./support/test-databases.js";

/**
 * The database a service process here runs on: a fresh one on the PostgreSQL pass (it migrated and
 * wrote to the server's admin database itself until 2026-12-07), the embedded one otherwise.
 */
const serviceDatabaseUrl = async () => (process.env.TEST_DATABASE_URL ? freshDatabase(process.env.TEST_DATABASE_URL) : "");

describe("the service process (what npm start runs)", () => {
  let child: ChildProcess;
  let dataDir: string;
  let base: string;
  let service: ServiceProcess;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "face-process-"));
    service = await startServiceProcess({ FACE_DATA_DIR: dataDir, LOG_LEVEL: "info", DATABASE_URL: await serviceDatabaseUrl() });
    child = service.child;
    base = service.url;
  });
  after(async () => {
    if (child.exitCode === null) child.kill("SIGKILL");
    await rm(dataDir, { recursive: true, force: true });
  });

  it("refuses invalid configuration listing every problem, exit code 2", async () => {
    const { code, stderr: err } = await runToExit(SERVICE_COMMAND.args, { PORT: "-1", LOG_LEVEL: "chatty" });
    assert.equal(code, 2);
    assert.match(err, /PORT/);
    assert.match(err, /LOG_LEVEL/);
  });

  it("logs requests without the API key a WebSocket URL may carry", async () => {
    await fetch(`${base}/ws/realtime?collection=x&api_key=key-that-must-not-be-logged`);
    await new Promise((r) => setTimeout(r, 200));
    assert.match(service.output(), /\/ws\/realtime\?collection=x&api_key=\[redacted\]/);
    assert.doesNotMatch(service.output(), /key-that-must-not-be-logged/);
  });

  it("finishes in-flight requests on SIGTERM, then exits 0", async () => {
    const form = new FormData();
    form.append("identifier", "obama");
    form.append("image", new Blob([Buffer.from(face("face_recognition/obama.jpg"))]), "obama.jpg");
    const inFlight = fetch(`${base}/api/v1/register`, { method: "POST", body: form });
    await new Promise((r) => setTimeout(r, 30));
    child.kill("SIGTERM");
    const response = await inFlight;
    assert.equal(response.status, 200, await response.clone().text());
    assert.equal((await response.json()).identifier, "obama");
    const code = await new Promise((r) => (child.exitCode !== null ? r(child.exitCode) : child.on("exit", r)));
    assert.equal(code, 0, service.output());
    assert.match(service.output(), /shutting down/);
  });
});

describe("a service that cannot start", () => {
  /** Runs the service to its exit; its stdout (the JSON log) and stderr apart. */
  async function startToExit(env: Record<string, string>): Promise<{ code: number | null; log: string; stderr: string }> {
    const dataDir = await mkdtemp(join(tmpdir(), "face-start-failure-"));
    try {
      const { code, stdout, stderr } = await runToExit(SERVICE_COMMAND.args, { HOST: "127.0.0.1", FACE_DATA_DIR: dataDir, LOG_LEVEL: "info", ...env });
      return { code, log: stdout, stderr };
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  }

  /**
   * The fatal line of a log: a JSON object at pino's level 60. Every line must be JSON: knex's own
   * warning ("Acquire connection error: ..." and a stack) came in between, on the same stdout.
   */
  const fatalLine = (log: string) => log.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l)).find((l) => l.level === 60);

  // Both ended in an uncaught exception: a stack trace on stderr, nothing in the log to say which step failed.
  it("logs one fatal line naming the step and the reason, and exits 1, when its database refuses connections", async () => {
    const closedPort = await freePort();
    const { code, log, stderr } = await startToExit({ PORT: String(await freePort()), DATABASE_URL: `postgres://face:secret-password@127.0.0.1:${closedPort}/face` });
    assert.equal(code, 1, log + stderr);
    const fatal = fatalLine(log);
    assert.equal(fatal?.step, "database opened and migrated", log);
    assert.match(fatal.msg, new RegExp(`start-up failed: database opened and migrated: connect ECONNREFUSED 127\\.0\\.0\\.1:${closedPort}`));
    assert.equal(stderr, "");
    assert.doesNotMatch(log, /secret-password/);
    // knex's own warning is there, as a JSON line of the log.
    assert.ok(log.split("\n").some((l) => l.includes('"source":"knex"') && l.includes("Acquire connection error")), log);
  });

  // The peers above refuse at once; these take the connection and then never answer, or trickle a
  // byte a second that is never a whole message: the step's time limit must still end the start.
  it("logs one fatal line and exits 1 when its database takes the connection and never answers, or trickles bytes", async () => {
    for (const trickle of [false, true]) {
      const peer = createServer((socket) => {
        socket.on("error", () => {});
        if (!trickle) return;
        const timer = setInterval(() => socket.write("R"), 1000);
        socket.on("close", () => clearInterval(timer));
      });
      peer.listen(0, "127.0.0.1");
      await once(peer, "listening");
      try {
        const started = Date.now();
        const { code, log, stderr } = await startToExit({ PORT: String(await freePort()), DATABASE_URL: `postgres://face:face@127.0.0.1:${(peer.address() as AddressInfo).port}/face` });
        assert.equal(code, 1, `trickle ${trickle}: ${log}${stderr}`);
        assert.ok(Date.now() - started < 30_000, `ended after ${Date.now() - started} ms`);
        const fatal = fatalLine(log);
        assert.equal(fatal?.step, "database opened and migrated", log);
        assert.match(fatal.msg, /Timeout acquiring a connection/);
      } finally {
        peer.close();
        peer.unref();
      }
    }
  });

  it("logs one fatal line naming the step and the reason, and exits 1, when its port is taken", async () => {
    const taken = createServer();
    taken.listen(0, "127.0.0.1");
    await once(taken, "listening");
    try {
      const { code, log, stderr } = await startToExit({ PORT: String((taken.address() as AddressInfo).port), DATABASE_URL: await serviceDatabaseUrl() });
      assert.equal(code, 1, log + stderr);
      const fatal = fatalLine(log);
      assert.equal(fatal?.step, "listening", log);
      assert.match(fatal.msg, /start-up failed: listening: listen EADDRINUSE/);
      assert.doesNotMatch(stderr, /triggerUncaughtException|^\s+at /m);
    } finally {
      taken.close();
    }
  });
});

describe("a service without API keys", () => {
  const WARNING = /"level":40,.*"msg":"no FACE_API_KEYS: anyone who can reach this port may register, recognize, export and delete people/;

  // It listened on every address (HOST's default) with no keys and said nothing: anyone on the
  // network could export every registered person's photos without a word in the log.
  it("warns when it listens beyond this machine, and not on loopback or with keys", async () => {
    for (const [env, warned] of [
      [{ HOST: "0.0.0.0" }, true],
      [{ HOST: "::" }, true],
      [{ HOST: "127.0.0.1" }, false],
      [{ HOST: "::ffff:127.0.0.1" }, false],
      [{ HOST: "0.0.0.0", FACE_API_KEYS: "a-key-of-sixteen-chars" }, false],
    ] as const) {
      const dataDir = await mkdtemp(join(tmpdir(), "face-open-"));
      const service = await startServiceProcess({ FACE_DATA_DIR: dataDir, DATABASE_URL: await serviceDatabaseUrl(), LOG_LEVEL: "info", FACE_API_KEYS: "", ...env });
      try {
        await until(() => /"step":"listening"/.test(service.output()), "the listening line", 10_000);
        assert.equal(WARNING.test(service.output()), warned, `${JSON.stringify(env)}:\n${service.output()}`);
      } finally {
        await service.stop();
        await rm(dataDir, { recursive: true, force: true });
      }
    }
  });
});

describe("npm start", () => {
  /**
   * npm's processes started here. Each leads a process group of its own (npm, its shell, the
   * service), so a test that fails before it stops one still ends the whole group: a service left
   * running would keep the test file, and CI, from ever finishing.
   */
  const groups: ChildProcess[] = [];
  after(() => {
    for (const child of groups) {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        // the group has exited already
      }
    }
  });

  /** Runs `npm start` on `dataDir` and `databaseUrl` and waits until it answers /health; returns the child and the time that took. */
  async function npmStart(dataDir: string, databaseUrl: string) {
    const port = await freePort();
    const started = Date.now();
    const child = spawn("npm", ["start"], {
      env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", FACE_DATA_DIR: dataDir, DATABASE_URL: databaseUrl, LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    groups.push(child);
    let output = "";
    child.stdout!.on("data", (d) => (output += d));
    child.stderr!.on("data", (d) => (output += d));
    const url = `http://127.0.0.1:${port}`;
    while (!(await fetch(`${url}/health`).then((r) => r.ok).catch(() => false))) {
      if (Date.now() - started > 60_000 || child.exitCode !== null) throw new Error(`did not start:\n${output}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    return { child, url, output: () => output, startMs: Date.now() - started };
  }

  /**
   * Until every process of the group `child` leads has exited (at most 15 s). A service that no
   * longer answers /health may still be closing its embedded database: removing the data directory
   * under it failed with ENOTEMPTY (once in CI).
   */
  const groupExited = (child: ChildProcess) => until(() => !groupAlive(child), "the npm process group to exit").catch(() => {});
  const groupAlive = (child: ChildProcess) => {
    try {
      process.kill(-child.pid!, 0);
      return true;
    } catch {
      return false;
    }
  };

  const stopped = async (url: string) => {
    for (let i = 0; i < 150; i++) {
      if (!(await fetch(`${url}/health`).then(() => true).catch(() => false))) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  };

  it("logs each start-up step with its duration, answers /health within 10 s when started again, and stops with npm's own process", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "face-npm-start-"));
    try {
      // Both starts on one database, as a restart is.
      const databaseUrl = await serviceDatabaseUrl();
      const first = await npmStart(dataDir, databaseUrl);
      // pino writes to stdout asynchronously (sonic-boom through libuv's thread pool), so a step's
      // line can reach the pipe after the first /health answer: once in CI the "listening" line
      // was not there yet when /health answered.
      const steps = ["database opened and migrated", "models loaded", "routes built", "listening"].map((step) => new RegExp(`"step":"${step}","ms":\\d+`));
      await until(() => steps.every((step) => step.test(first.output())), "every start-up step logged", 10_000).catch(() => {});
      for (const step of steps) assert.match(first.output(), step);
      first.child.kill("SIGTERM"); // npm's process, not the service's
      assert.equal(await stopped(first.url), true, "the service stopped with npm");

      const second = await npmStart(dataDir, databaseUrl);
      assert.ok(second.startMs < 10_000, `second start answered /health after ${second.startMs} ms`);
      second.child.kill("SIGKILL"); // npm dies without passing anything on
      assert.equal(await stopped(second.url), true, "the service stopped when npm was killed");
    } finally {
      for (const child of groups) await groupExited(child);
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
