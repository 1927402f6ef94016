import http from "node:http";
import https from "node:https";
import { FaceError, invalidArgument } from "../errors.js";
import { pinnedLookup, resolvePublicAddress } from "./network-policy.js";

/** What `image_url` may point at and how much may be read from it. */
export interface ImageUrlPolicy {
  maxImageBytes: number;
  /** `host` or `host:port` entries allowed even when they resolve to private or loopback addresses. */
  imageUrlAllowedHosts: readonly string[];
  imageUrlTimeoutMs: number;
}

const MAX_REDIRECTS = 3;

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

async function fetchOnce(url: URL, policy: ImageUrlPolicy): Promise<{ body: Uint8Array; redirect?: string }> {
  const pinned = await resolvePublicAddress(url, policy.imageUrlAllowedHosts, "image_url");
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.get(
      url,
      {
        timeout: policy.imageUrlTimeoutMs,
        // Connect to the address that was checked, not to whatever a second DNS answer says.
        lookup: pinnedLookup(pinned),
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
