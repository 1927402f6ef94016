import http from "node:http";
import https from "node:https";
import { FaceError } from "../errors.js";
import { pinnedLookup, resolvePublicAddress } from "./network-policy.js";

/** One request the service makes to a URL a client gave it (image_url, webhook receivers). */
export interface OutboundRequest {
  url: URL;
  method: "GET" | "POST";
  headers: Record<string, string>;
  body?: string;
  /** `host` or `host:port` that may be reached although not public. */
  allowedHosts: readonly string[];
  /** How the URL is named in error messages ("image_url", "webhook url"). */
  field: string;
  /**
   * Total time for everything: resolving, connecting, the headers and the whole body. An idle
   * timeout would let a peer that sends a byte now and then hold the call forever. `endsAt` (epoch
   * ms) may be earlier than now + `totalMs` when the limit covers several requests (redirects);
   * errors name `totalMs`, the limit the operator configured.
   */
  timeLimit: { endsAt: number; totalMs: number };
  /** Largest body read; more is ResourceExhausted. */
  maxBodyBytes: number;
  /** Ends the request early (the client of the call that made it went away). */
  signal?: AbortSignal;
}

export interface OutboundResponse {
  status: number;
  /** The Location header of a redirect. */
  location: string | undefined;
  body: Uint8Array;
}

/**
 * Sends a request to a public address only (network-policy.ts), connecting to the address that was
 * checked (no second DNS answer), within a total deadline and a body size limit. Failures are
 * FaceErrors naming `field`: InvalidArgument for an unreachable or slow peer, ResourceExhausted for
 * a body over the limit, or the call's own end (deadline, cancellation) when `signal` fired.
 */
export async function sendOutbound(request: OutboundRequest): Promise<OutboundResponse> {
  // An AbortController and a timer this call holds, not AbortSignal.timeout: inside
  // AbortSignal.any a timeout signal is referenced only weakly, and once garbage-collected its
  // timer is cleared, so the deadline never came (nodejs/node#57736; a hung call under load).
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), Math.max(0, request.timeLimit.endsAt - Date.now()));
  try {
    return await send(request, request.signal === undefined ? deadline.signal : AbortSignal.any([deadline.signal, request.signal]));
  } finally {
    clearTimeout(timer);
  }
}

async function send(request: OutboundRequest, signal: AbortSignal): Promise<OutboundResponse> {
  const { field } = request;
  const failure = (): FaceError =>
    request.signal?.aborted && request.signal.reason instanceof FaceError
      ? request.signal.reason
      : new FaceError("invalid_argument", `${field} did not answer within ${request.timeLimit.totalMs} ms`);

  const ended = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(failure());
    signal.addEventListener("abort", () => reject(failure()), { once: true });
  });
  ended.catch(() => {}); // observed below; unhandled only when the request settled first
  const pinned = await Promise.race([resolvePublicAddress(request.url, request.allowedHosts, field), ended]);
  const client = request.url.protocol === "https:" ? https : http;

  return new Promise<OutboundResponse>((resolve, reject) => {
    const outgoing = client.request(request.url, {
      method: request.method,
      lookup: pinnedLookup(pinned),
      headers: request.headers,
      signal,
    }, (response) => {
      const status = response.statusCode ?? 0;
      const location = response.headers.location;
      const chunks: Buffer[] = [];
      let size = 0;
      response.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > request.maxBodyBytes) {
          outgoing.destroy();
          reject(new FaceError("resource_exhausted", `${field} body is more than the limit of ${request.maxBodyBytes} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      response.on("end", () => resolve({ status, location, body: new Uint8Array(Buffer.concat(chunks)) }));
      response.on("error", (cause) => reject(signal.aborted ? failure() : new FaceError("invalid_argument", `${field} download failed`, { cause })));
    });
    outgoing.on("error", (cause) => reject(signal.aborted ? failure() : new FaceError("invalid_argument", `${field} could not be fetched: ${cause.message}`, { cause })));
    outgoing.end(request.body);
  });
}
