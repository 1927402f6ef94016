import { compile } from "@fastify/proxy-addr";
import type { FastifyRequest } from "fastify";
import ipaddr from "ipaddr.js";

/**
 * The client of a peer whose socket closed before its request was counted: Node leaves a destroyed
 * socket no remote address. Such requests have no one to answer; they share this one name.
 */
const ADDRESS_GONE = "gone:";

/**
 * Whose rate-limit bucket a client address draws from. An IPv4-mapped IPv6 address
 * (::ffff:198.51.100.1, how a dual-stack socket shows an IPv4 peer) is that IPv4 address. An IPv6
 * client is counted by its /64: that is the block one subscriber or host is given, and it can take
 * any of its 2^64 addresses, so counting single addresses would limit nobody.
 */
export function rateLimitClient(address: string | undefined): string {
  if (address === undefined) return ADDRESS_GONE;
  if (!ipaddr.isValid(address)) return `ip:${address}`;
  const parsed = ipaddr.process(address);
  if (parsed.kind() === "ipv4") return `ip:${parsed.toString()}`;
  const network = (parsed as ipaddr.IPv6).parts.slice(0, 4);
  return `ip:${new ipaddr.IPv6([...network, 0, 0, 0, 0]).toString()}/64`;
}

/** A client of `rateLimitClient` or an API key's (access.ts) as logs and refusals name it: its address, never its key. */
export function clientName(client: string): string {
  if (client === ADDRESS_GONE) return "a client whose connection had closed";
  return client.startsWith("ip:") ? `address ${client.slice(3)}` : "its API key";
}

/**
 * Whose request this is, for the shares one client may hold (open requests, bytes being received):
 * its API key, or its address without keys, as the rate limit counts it (access.ts).
 */
export function clientOf(request: FastifyRequest): string {
  return request.rateLimitClient ?? rateLimitClient(request.ip);
}

/** Whether a peer's address is one of `trustedProxies` (FACE_TRUSTED_PROXIES), read as fastify's trustProxy reads them. */
export function trustedProxyMatcher(trustedProxies: readonly string[]): (address: string) => boolean {
  if (trustedProxies.length === 0) return () => false;
  const trusted = compile([...trustedProxies]);
  return (address) => trusted(address, 0);
}
