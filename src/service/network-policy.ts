import { lookup } from "node:dns/promises";
import type { LookupFunction } from "node:net";
import ipaddr from "ipaddr.js";
import { invalidArgument } from "../errors.js";

/**
 * The only range a server-side fetch may reach unless allowed: ipaddr.js names every special-purpose
 * block of the IANA registries (loopback, private, link-local and cloud metadata, carrier-grade NAT,
 * unique-local, site-local, multicast, documentation, reserved, Teredo, ...) and calls the rest
 * "unicast".
 */
const PUBLIC_RANGE = "unicast";

/**
 * The IPv4 address an IPv6 address carries and reaches, for the forms that reach it: IPv4-mapped
 * (::ffff:a.b.c.d), translated (::ffff:0:a.b.c.d), IPv4-compatible (::a.b.c.d), NAT64 with the
 * well-known prefix (64:ff9b::a.b.c.d) and 6to4 (2002:aabb:ccdd::/48 routes to a.b.c.d).
 * Undefined for any other address.
 */
export function embeddedIPv4(address: ipaddr.IPv6): ipaddr.IPv4 | undefined {
  const p = address.parts;
  const v4 = (hi: number, lo: number) => new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  const zeros = (from: number, to: number) => p.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && (p[5] === 0xffff || p[5] === 0)) return v4(p[6], p[7]);
  if (zeros(0, 4) && p[4] === 0xffff && p[5] === 0) return v4(p[6], p[7]);
  if (p[0] === 0x64 && p[1] === 0xff9b && zeros(2, 6)) return v4(p[6], p[7]);
  if (p[0] === 0x2002) return v4(p[1], p[2]);
  return undefined;
}

/**
 * Why a literal address must not be fetched (its range name, e.g. "loopback"), or undefined when it
 * is public. IPv6 forms that carry an IPv4 address are judged by that address, so
 * `[::ffff:127.0.0.1]`, `[::7f00:1]` or `[64:ff9b::7f00:1]` are loopback, and `[::ffff:8.8.8.8]` is public.
 */
export function blockedRange(address: string): string | undefined {
  if (!ipaddr.isValid(address)) return "invalid";
  let parsed = ipaddr.parse(address);
  if (parsed.kind() === "ipv6") {
    const v6 = parsed as ipaddr.IPv6;
    // ::/128 and ::1 are IPv4-compatible in form only.
    const range = v6.range();
    if (range === "unspecified" || range === "loopback") return range;
    parsed = embeddedIPv4(v6) ?? v6;
  }
  const range = parsed.range();
  return range === PUBLIC_RANGE ? undefined : range;
}

/**
 * Resolves the URL's host and refuses it when it is not http(s) or resolves to a non-public address,
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
    resolved = ipaddr.isValid(host) ? { address: host, family: ipaddr.parse(host).kind() === "ipv6" ? 6 : 4 } : await lookup(host);
  } catch {
    throw invalidArgument(`${field} host ${host} does not resolve`);
  }
  const blocked = blockedRange(resolved.address);
  if (!allowed && blocked !== undefined) {
    throw invalidArgument(`${field} host ${host} is not a public address (${blocked}); allow it in the configuration to reach it`);
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
