import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer } from "node:net";

/** The service as `npm start` runs it, in its own process on a free loopback port. */
export interface ServiceProcess {
  readonly url: string;
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** The process's peak resident set size (VmHWM) in MiB; Linux only. */
  peakRssMiB(): number;
  /** CPU seconds the process has used so far (user + system, every thread); Linux only. */
  cpuSeconds(): number;
  /** Stops it as an orchestrator does (SIGTERM, then SIGKILL after 30 s) and waits until it has exited. */
  stop(): Promise<void>;
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const USER_HZ = 100;

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

/** How `npm start` runs the service from a checkout. */
export const SERVICE_COMMAND = { args: ["--import", "tsx", "src/main.ts"] };

/**
 * Runs node with `args` (SERVICE_COMMAND's, a command-line script's) and `env` on top of this
 * process's environment to its exit, killed after 60 s: its exit code, stdout and stderr.
 */
export async function runToExit(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  const [code] = await once(child, "close");
  clearTimeout(timer);
  return { code, stdout, stderr };
}

/**
 * Spawns src/main.ts with `env` on top of this process's environment and waits for /health;
 * `command` runs something else with node (compiled output, in another directory), with at most
 * `openFiles` file descriptors (soft and hard limit), or under `within`, a command that ends by
 * running the arguments it is given (`unshare ... sh -c '... && exec "$@"' sh`).
 */
export async function startServiceProcess(
  env: Record<string, string>,
  command: { args: string[]; cwd?: string; openFiles?: number; within?: string[]; node?: string } = SERVICE_COMMAND,
): Promise<ServiceProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const runtime = command.node ?? process.execPath;
  const [node, nodeArgs] = command.openFiles === undefined
    ? [runtime, command.args]
    : ["/bin/sh", ["-c", 'ulimit -n "$0" && exec "$@"', String(command.openFiles), runtime, ...command.args]];
  const [file, args] = command.within === undefined ? [node, nodeArgs] : [command.within[0], [...command.within.slice(1), node, ...nodeArgs]];
  const child = spawn(file, args, {
    cwd: command.cwd,
    env: { ...process.env, PORT: String(port), HOST: "127.0.0.1", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error(`service did not start:\n${output}`);
    }
    if (await fetch(`${url}/health`).then((r) => r.ok).catch(() => false)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    child,
    output: () => output,
    peakRssMiB() {
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"));
      return match ? Number(match[1]) / 1024 : NaN;
    },
    async stop() {
      child.kill("SIGTERM");
      // A process that does not exit within a while (hung: the defect a test found) is killed.
      const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once("exit", r)));
      clearTimeout(killer);
    },
    cpuSeconds() {
      // Fields after the command name (which may hold spaces) in /proc/<pid>/stat: utime is the 14th, stime the 15th.
      const stat = readFileSync(`/proc/${child.pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(fields[11]) + Number(fields[12])) / USER_HZ;
    },
  };
}
