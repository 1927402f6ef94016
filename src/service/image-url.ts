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
  // Nothing is decoded that could not fit even if each character were percent-encoded (three for one).
  if (match[3].length > 3 * (Math.ceil(maxBytes / 3) * 4 + 4)) throw dataTooLarge(maxBytes);
  const base64 = percentDecoded(match[3]);
  // As a JSON body's base64 is read: Buffer.from alone decodes around a character that is not base64.
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64(base64);
  } catch {
    throw invalidArgument("image_url data: URI is not valid base64");
  }
  // The photo's bytes are what the limit counts, not its encoding's characters.
  if (bytes.length > maxBytes) throw dataTooLarge(maxBytes);
  return bytes;
}

function percentDecoded(text: string): string {
  if (!text.includes("%")) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    throw invalidArgument("image_url data: URI has a % that is not percent-encoding of UTF-8");
  }
}

function dataTooLarge(maxBytes: number): FaceError {
  return new FaceError("resource_exhausted", `image_url data is more than the limit of ${maxBytes} bytes`);
}
