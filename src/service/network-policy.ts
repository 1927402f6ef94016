import { lookup } from "node:dns/promises";
import type { LookupFunction } from "node:net";
import { BlockList, isIP } from "node:net";
import { invalidArgument } from "../errors.js";

/**
 * Addresses a server-side fetch must not reach unless allowed: loopback, private, link-local
 * (cloud metadata), carrier-grade NAT, unspecified, multicast and their IPv6 counterparts.
 */
const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ["0.0.0.0", 8], ["10.0.0.0", 8], ["100.64.0.0", 10], ["127.0.0.0", 8], ["169.254.0.0", 16],
  ["172.16.0.0", 12], ["192.0.0.0", 24], ["192.168.0.0", 16], ["198.18.0.0", 15], ["224.0.0.0", 3],
] as const) BLOCKED.addSubnet(net, prefix, "ipv4");
for (const [net, prefix] of [["::", 128], ["::1", 128], ["fc00::", 7], ["fe80::", 10], ["ff00::", 8], ["::ffff:0:0", 96]] as const) {
  BLOCKED.addSubnet(net, prefix, "ipv6");
}

/**
 * Resolves the URL's host and refuses it when it is not http(s) or resolves to a blocked address,
 * unless `allowedHosts` lists `host` or `host:port`. The caller connects to the returned address
 * (see pinnedLookup), so a second DNS answer cannot point the request elsewhere.
 */
export async function resolvePublicAddress(url: URL, allowedHosts: readonly string[], field: string): Promise<{ address: string; family: number }> {
  if (url.protocol !== "http:" && url.protocol !== "https:") throw invalidArgument(`${field} must be an http or https URL`);
  if (url.username || url.password) throw invalidArgument(`${field} must not carry credentials`);
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  const allowed = allowedHosts.includes(host) || allowedHosts.includes(`${host}:${port}`);
  let resolved: { address: string; family: number };
  try {
    resolved = isIP(host) ? { address: host, family: isIP(host) } : await lookup(host);
  } catch {
    throw invalidArgument(`${field} host ${host} does not resolve`);
  }
  if (!allowed && BLOCKED.check(resolved.address, resolved.family === 6 ? "ipv6" : "ipv4")) {
    throw invalidArgument(`${field} host ${host} is a private, loopback or link-local address`);
  }
  return resolved;
}

/** A `lookup` for http.request that always answers the address checked before. */
export function pinnedLookup(pinned: { address: string; family: number }): LookupFunction {
  return (_host, options, callback) => {
    if ((options as { all?: boolean }).all) (callback as unknown as (e: null, a: object[]) => void)(null, [pinned]);
    else callback(null, pinned.address, pinned.family);
  };
}
