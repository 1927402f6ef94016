import { spawnSync } from "node:child_process";

/**
 * Addresses of IPv6's documentation prefix (2001:db8::/32) for a suite to put on the loopback
 * interface: two in one /64, which the service counts as one client, and one in another /64.
 */
export const ONE_64 = ["2001:db8:0:1::a", "2001:db8:0:1::b"] as const;
export const ANOTHER_64 = "2001:db8:0:2::a";

const REQUIRE_ENV = "FACE_REQUIRE_IPV6_ALIASES";
const AS_ROOT = process.getuid?.() === 0;

/** Runs `ip args` as root (sudo without a password when this process is not root). */
function ip(args: string[]) {
  const command = AS_ROOT ? ["ip", ...args] : ["sudo", "-n", "ip", ...args];
  return spawnSync(command[0], command.slice(1), { encoding: "utf8" });
}

/**
 * Why addresses cannot be put on the loopback interface here (a skip that says how to enable it),
 * or false. With FACE_REQUIRE_IPV6_ALIASES set (CI) it is never a skip: the suite runs and fails.
 */
export function loopbackIpv6Missing(): string | false {
  if (process.env[REQUIRE_ENV]) return false;
  if (spawnSync("ip", ["-V"]).status !== 0) return "needs iproute2's ip (apt-get install iproute2)";
  if (!AS_ROOT && spawnSync("sudo", ["-n", "true"]).status !== 0) {
    return `needs root, or sudo without a password, to put IPv6 addresses on the loopback interface; .ci/run sets ${REQUIRE_ENV}`;
  }
  return false;
}

/**
 * Puts `addresses` on the loopback interface, so that connections can come from them; returns what
 * takes them off again (only those this call put there).
 */
export function addLoopbackIpv6(addresses: readonly string[]): () => void {
  const added: string[] = [];
  const remove = () => {
    for (const address of added.splice(0)) ip(["-6", "addr", "del", `${address}/128`, "dev", "lo"]);
  };
  for (const address of addresses) {
    // nodad: usable at once, without duplicate address detection's wait.
    const result = ip(["-6", "addr", "add", `${address}/128`, "dev", "lo", "nodad"]);
    if (result.status === 0) added.push(address);
    // Already there (a run stopped before its `after` hook left it): used, and left as found.
    // iproute2 says "File exists" in older versions, "address already assigned" in Debian 13's.
    else if (!/exists|already assigned/i.test(result.stderr)) {
      remove();
      throw new Error(`could not put ${address} on the loopback interface: ${result.stderr || result.error}`);
    }
  }
  return remove;
}
