import { decodeBase64 } from "../base64.js";
import { callSignal } from "../call-signal.js";
import { FaceError, invalidArgument } from "../errors.js";
import { sendOutbound } from "./outbound-http.js";

/** What `image_url` may point at and how much may be read from it. */
export interface ImageUrlPolicy {
  maxImageBytes: number;
  /** `host` or `host:port` entries allowed even when they resolve to private or loopback addresses. */
  imageUrlAllowedHosts: readonly string[];
  /** Total time for the download, redirects included. */
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
  // One time limit for the whole chain of redirects.
  const timeLimit = { endsAt: Date.now() + policy.imageUrlTimeoutMs, totalMs: policy.imageUrlTimeoutMs };
  for (let redirects = 0; ; redirects++) {
    const response = await sendOutbound({
      url: target,
      method: "GET",
      headers: { accept: "image/*" },
      allowedHosts: policy.imageUrlAllowedHosts,
      field: "image_url",
      timeLimit,
      maxBodyBytes: policy.maxImageBytes,
      signal: callSignal(),
    });
    if (response.status >= 300 && response.status < 400 && response.location !== undefined) {
      if (redirects >= MAX_REDIRECTS) throw invalidArgument(`image_url redirected more than ${MAX_REDIRECTS} times`);
      // Each hop is checked again: a public URL must not redirect into the private network.
      target = new URL(response.location, target);
      continue;
    }
    if (response.status !== 200) throw invalidArgument(`image_url answered HTTP ${response.status}`);
    return response.body;
  }
}

function decodeDataUri(uri: string, maxBytes: number): Uint8Array {
  const match = /^data:([a-z]+\/[a-z0-9.+-]+)?(;[^,]*)?,(.*)$/is.exec(uri);
  if (match === null || !(match[2] ?? "").includes(";base64")) throw invalidArgument("image_url data: URI must be base64");
  if ((match[3].length * 3) / 4 > maxBytes + 3) {
    throw new FaceError("resource_exhausted", `image_url data is more than the limit of ${maxBytes} bytes`);
  }
  // As a JSON body's base64 is read: Buffer.from alone decodes around a character that is not base64.
  try {
    return decodeBase64(match[3].includes("%") ? decodeURIComponent(match[3]) : match[3]);
  } catch {
    throw invalidArgument("image_url data: URI is not valid base64");
  }
}
