import { isIPv4, isIPv6 } from "node:net";

/**
 * Whose rate-limit bucket a client address draws from. An IPv4-mapped IPv6 address
 * (::ffff:198.51.100.1, how a dual-stack socket shows an IPv4 peer) is that IPv4 address. An IPv6
 * client is counted by its /64: that is the block one subscriber or host is given, and it can take
 * any of its 2^64 addresses, so counting single addresses would limit nobody.
 */
export function rateLimitClient(address: string): string {
  const withoutZone = address.split("%")[0]; // fe80::1%eth0
  const groups = isIPv6(withoutZone) ? ipv6Groups(withoutZone) : undefined;
  if (groups === undefined) return `ip:${address}`;
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `ip:${[groups[6] >> 8, groups[6] & 0xff, groups[7] >> 8, groups[7] & 0xff].join(".")}`;
  }
  return `ip:${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (with "::" and a dotted IPv4 tail expanded). */
function ipv6Groups(address: string): number[] {
  const tail = address.slice(address.lastIndexOf(":") + 1);
  // A dotted IPv4 tail (::ffff:198.51.100.1) stands for the last two groups.
  const [a, b, c, d] = tail.split(".").map(Number);
  const text = isIPv4(tail) ? `${address.slice(0, -tail.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}` : address;
  const [head, rest] = text.split("::");
  const parse = (part: string | undefined) => (part ? part.split(":").map((g) => parseInt(g, 16)) : []);
  const before = parse(head);
  const after = parse(rest);
  return rest === undefined ? before : [...before, ...new Array<number>(8 - before.length - after.length).fill(0), ...after];
}
