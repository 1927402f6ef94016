import { lookup } from "node:dns/promises";
import http from "node:http";
import https from "node:https";
import { BlockList, isIP } from "node:net";
import { FaceError, invalidArgument } from "../errors.js";

/** What `image_url` may point at and how much may be read from it. */
export interface ImageUrlPolicy {
  maxImageBytes: number;
  /** `host` or `host:port` entries allowed even when they resolve to private or loopback addresses. */
  imageUrlAllowedHosts: readonly string[];
  imageUrlTimeoutMs: number;
}

const MAX_REDIRECTS = 3;

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

/** Reads an image from a data: URI or an http(s) URL, within the policy's limits. */
export async function fetchImageUrl(url: string, policy: ImageUrlPolicy): Promise<Uint8Array> {
  if (url.startsWith("data:")) return decodeDataUri(url, policy.maxImageBytes);
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw invalidArgument("image_url is not a valid URL");
  }
  for (let redirects = 0; ; redirects++) {
    const response = await fetchOnce(target, policy);
    if (response.redirect === undefined) return response.body;
    if (redirects >= MAX_REDIRECTS) throw invalidArgument(`image_url redirected more than ${MAX_REDIRECTS} times`);
    // Each hop is checked again: a public URL must not redirect into the private network.
    target = new URL(response.redirect, target);
  }
}

function decodeDataUri(uri: string, maxBytes: number): Uint8Array {
  const match = /^data:([a-z]+\/[a-z0-9.+-]+)?(;[^,]*)?,(.*)$/is.exec(uri);
  if (match === null || !(match[2] ?? "").includes(";base64")) throw invalidArgument("image_url data: URI must be base64");
  if ((match[3].length * 3) / 4 > maxBytes + 3) {
    throw new FaceError("resource_exhausted", `image_url data is more than the limit of ${maxBytes} bytes`);
  }
  return new Uint8Array(Buffer.from(match[3], "base64"));
}

/** Resolves the host and refuses addresses in BLOCKED unless the host is allow-listed. */
async function checkedAddress(url: URL, policy: ImageUrlPolicy): Promise<{ address: string; family: number }> {
  if (url.protocol !== "http:" && url.protocol !== "https:") throw invalidArgument("image_url must be http, https or data:");
  if (url.username || url.password) throw invalidArgument("image_url must not carry credentials");
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const port = url.port || (url.protocol === "https:" ? "443" : "80");
  const allowed = policy.imageUrlAllowedHosts.includes(host) || policy.imageUrlAllowedHosts.includes(`${host}:${port}`);
  let resolved: { address: string; family: number };
  try {
    resolved = isIP(host) ? { address: host, family: isIP(host) } : await lookup(host);
  } catch {
    throw invalidArgument(`image_url host ${host} does not resolve`);
  }
  const family = resolved.family === 6 ? "ipv6" : "ipv4";
  if (!allowed && BLOCKED.check(resolved.address, family)) {
    throw invalidArgument(`image_url host ${host} is a private, loopback or link-local address`);
  }
  return resolved;
}

async function fetchOnce(url: URL, policy: ImageUrlPolicy): Promise<{ body: Uint8Array; redirect?: string }> {
  const pinned = await checkedAddress(url, policy);
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.get(
      url,
      {
        timeout: policy.imageUrlTimeoutMs,
        // Connect to the address that was checked, not to whatever a second DNS answer says.
        lookup: (_host, options, callback) => {
          if ((options as { all?: boolean }).all) (callback as unknown as (e: null, a: object[]) => void)(null, [pinned]);
          else callback(null, pinned.address, pinned.family);
        },
        headers: { accept: "image/*" },
      },
      (response) => {
        const status = response.statusCode ?? 0;
        if (status >= 300 && status < 400 && response.headers.location) {
          response.resume();
          resolve({ body: new Uint8Array(), redirect: response.headers.location });
          return;
        }
        if (status !== 200) {
          response.resume();
          reject(invalidArgument(`image_url answered HTTP ${status}`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > policy.maxImageBytes) {
            request.destroy();
            reject(new FaceError("resource_exhausted", `image_url body is more than the limit of ${policy.maxImageBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        response.on("end", () => resolve({ body: new Uint8Array(Buffer.concat(chunks)) }));
        response.on("error", (cause) => reject(new FaceError("invalid_argument", "image_url download failed", { cause })));
      },
    );
    request.on("timeout", () => {
      request.destroy();
      reject(invalidArgument(`image_url did not answer within ${policy.imageUrlTimeoutMs} ms`));
    });
    request.on("error", (cause) => reject(new FaceError("invalid_argument", `image_url could not be fetched: ${cause.message}`, { cause })));
  });
}
