import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./service-process.js";
import { serverToolMissing, toolMissing, type SystemTool } from "./system-tools.js";

/** Where Debian installs HAProxy. */
export const HAPROXY = "/usr/sbin/haproxy";

const HAPROXY_TOOL: SystemTool = { probe: [HAPROXY, "-v"], package: "haproxy", requireEnv: "FACE_REQUIRE_HAPROXY" };

/** Why a suite of instances on one PostgreSQL server behind HAProxy cannot run here, or false (FACE_REQUIRE_HAPROXY: CI, never a skip). */
export function haproxyMissing(): string | false {
  return serverToolMissing(HAPROXY_TOOL);
}

/** Why a suite with HAProxy in front of one instance, on either database, cannot run here, or false. */
export function haproxyAloneMissing(): string | false {
  return toolMissing(HAPROXY_TOOL);
}

export interface HAProxy {
  /** Where clients connect: HTTP/1.1 and cleartext HTTP/2 (prior knowledge) on one port. */
  readonly url: string;
  /** Each server's state as the health check sees it ("UP", "DOWN", ...) and its current streams. */
  servers(): Promise<{ name: string; status: string; current: number }[]>;
  close(): Promise<void>;
}

/**
 * deploy/haproxy.cfg as shipped, with its bind address, its servers and an admin socket (for the
 * test to read the health checks' verdicts) put in for this machine.
 */
export function haproxyConfig(listen: string, servers: string[], adminSocket: string): string {
  const shipped = readFileSync(new URL("../../deploy/haproxy.cfg", import.meta.url), "utf8");
  const withoutServers = shipped.replace(/^\s*server .*\n/gm, "");
  if (withoutServers === shipped || !/^\s*bind :8080$/m.test(shipped)) throw new Error("deploy/haproxy.cfg no longer has the bind and server lines this test replaces");
  return withoutServers
    .replace(/^(\s*)bind :8080$/m, `$1bind ${listen}`)
    .replace(/^global\n/m, `global\n  stats socket ${adminSocket} mode 600 level admin\n`)
    .concat(servers.map((s, i) => `  server face${i + 1} ${s}\n`).join(""))
    // Faster verdicts than in production, so the test does not wait long.
    .replace(/check inter 1s/, "check inter 300ms");
}

/** A real HAProxy (Debian's) in front of `servers` (host:port each), configured by deploy/haproxy.cfg. */
export async function startHAProxy(backends: string[]): Promise<HAProxy> {
  const dir = mkdtempSync(join(tmpdir(), "face-haproxy-"));
  const port = await freePort();
  const adminSocket = join(dir, "admin.sock");
  writeFileSync(join(dir, "haproxy.cfg"), haproxyConfig(`127.0.0.1:${port}`, backends, adminSocket));
  const child: ChildProcess = spawn(HAPROXY, ["-db", "-f", join(dir, "haproxy.cfg")], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));

  const admin = (command: string) =>
    new Promise<string>((resolve, reject) => {
      const socket = connect(adminSocket);
      let answer = "";
      socket.on("data", (d) => (answer += d));
      socket.on("end", () => resolve(answer));
      socket.on("error", reject);
      socket.end(`${command}\n`);
    });
  async function servers() {
    // CSV: pxname,svname,qcur,qmax,scur,... with status in column 18.
    const rows = (await admin("show stat")).split("\n").filter((l) => l.startsWith("faces,") && !l.startsWith("faces,BACKEND"));
    return rows.map((row) => {
      const cells = row.split(",");
      return { name: cells[1], status: cells[17], current: Number(cells[4]) };
    });
  }

  const deadline = Date.now() + 10_000;
  for (;;) {
    const ready = await servers().then((s) => s.every((server) => server.status === "UP"), () => false);
    if (ready) break;
    if (Date.now() > deadline || child.exitCode !== null) {
      child.kill("SIGKILL");
      throw new Error(`haproxy did not start with every server up:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url: `http://127.0.0.1:${port}`,
    servers,
    async close() {
      if (child.exitCode === null) {
        child.kill("SIGTERM");
        await new Promise((r) => child.once("exit", r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
