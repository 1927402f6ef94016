import { whenClosed, type RequestLifetime } from "./when-closed.js";
import { Code } from "@connectrpc/connect";
import { processMetrics } from "../metrics.js";
import { clientName } from "./client-address.js";
import { CountsByKey } from "../counts-by-key.js";
import { retryLater } from "./errors.js";

/**
 * The server-wide bound on request bytes held while their messages arrive. Every reader of a request
 * body (gRPC, gRPC-Web and Connect calls, REST JSON and multipart, WebSocket frames) buffers a
 * message whole before it parses it, and the open-request limit alone lets 256 requests each hold a
 * message of up to the size limit (about 27 MB): 7 GB. A message whose next bytes would pass the
 * budget fails with Unavailable and `retry-after` (HTTP 503), and its bytes are given back; the
 * messages already arriving go on. Bytes are given back as each message is whole (then admission
 * bounds the work on it) or its request ends.
 *
 * One client (client-address.ts, clientOf) may hold `maxBytesPerClient` of it; its message whose next
 * bytes would pass that fails with ResourceExhausted and `retry-after` (HTTP 429), and the other
 * clients' messages go on: one client sending large messages slowly on many streams took the whole
 * budget, and everyone else's messages were refused (test/client-shares.test.ts).
 */
export interface ReceiveBudget {
  /**
   * One request's (or WebSocket's) share, of `client`'s, given back in full when `lifetime` closes
   * (when-closed.ts); bytes read after that are not counted (the request is over: nothing holds them).
   */
  open(lifetime: RequestLifetime, client: string): ReceivingShare;
}

export interface ReceivingShare {
  /** Counts `bytes` more; throws Unavailable instead when they would pass the budget. */
  take(bytes: number): void;
  /** Gives back `bytes` of this share (all of it when omitted). */
  give(bytes?: number): void;
  /** Bytes this share holds. */
  readonly held: number;
}

export function createReceiveBudget(maxBytes: number, maxBytesPerClient: number): ReceiveBudget {
  let held = 0;
  const heldByClient = new CountsByKey();
  const gauge = processMetrics().receivingBytes;
  const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
  return {
    open(lifetime, client) {
      let mine = 0;
      let ended = false;
      const share: ReceivingShare = {
        take(bytes) {
          if (ended) return;
          if (held + bytes > maxBytes) {
            throw retryLater(`the server is receiving ${mib(held)} MiB of requests, its limit of ${mib(maxBytes)} MiB; retry shortly`, Code.Unavailable);
          }
          if (heldByClient.of(client) + bytes > maxBytesPerClient) {
            throw retryLater(`this client (${clientName(client)}) is sending ${mib(heldByClient.of(client))} MiB of requests, its share of ${mib(maxBytesPerClient)} MiB (FACE_MAX_RECEIVING_BYTES_PER_CLIENT); retry once some have arrived`, Code.ResourceExhausted);
          }
          held += bytes;
          mine += bytes;
          heldByClient.add(client, bytes);
          gauge.inc(bytes);
        },
        give(bytes = mine) {
          const given = Math.min(bytes, mine);
          held -= given;
          mine -= given;
          heldByClient.add(client, -given);
          gauge.dec(given);
        },
        get held() {
          return mine;
        },
      };
      whenClosed(lifetime, () => {
        share.give();
        ended = true;
      });
      return share;
    },
  };
}

/**
 * Counts a request body's chunks against `share` as they are read. An `enveloped` body (gRPC,
 * gRPC-Web, Connect streams: each message after a 5-byte prefix of flags and its length) gives back
 * each message's bytes once the message is whole, so a long stream of frames holds only the one
 * arriving; any other body holds its bytes until it ends. The share is given back in full when
 * reading stops, however it stops.
 */
export async function* countedChunks<T extends Uint8Array>(chunks: AsyncIterable<T>, share: ReceivingShare, enveloped: boolean): AsyncGenerator<T> {
  const boundaries = enveloped ? new EnvelopeBoundaries() : undefined;
  try {
    for await (const chunk of chunks) {
      share.take(chunk.length);
      const end = boundaries?.lastEndIn(chunk);
      // Keep only the bytes after the last message that this chunk completes.
      if (end !== undefined) share.give(share.held - (chunk.length - end));
      yield unpinned(chunk);
    }
  } finally {
    share.give();
  }
}

/**
 * The chunk in memory of its own when it is a small part of a larger one. HTTP/2 hands a body over
 * as 16 KB slices of the 64 KB buffers the connection was read into, often with other streams' data
 * beside them: holding a slice holds the whole buffer, so a message arriving held up to four times
 * its bytes (measured: 2.4 GB of buffers for 494 MiB counted). A copy costs 3-5 µs per 16 KB slice
 * (by hand), about 20 µs for a 68 KB photo.
 */
function unpinned<T extends Uint8Array>(chunk: T): T {
  if (chunk.byteLength * 2 > chunk.buffer.byteLength) return chunk;
  // Not Buffer.from: it copies small chunks into Buffer's shared pool (64 KiB slabs from Node 24).
  const copy = Buffer.allocUnsafeSlow(chunk.byteLength);
  copy.set(chunk);
  return copy as unknown as T;
}

/** Where messages end in an enveloped body read chunk by chunk. */
class EnvelopeBoundaries {
  private readonly prefix = new Uint8Array(5);
  private prefixRead = 0;
  private remaining = 0;

  /** The offset just after the last message that ends in `chunk`, if one does. */
  lastEndIn(chunk: Uint8Array): number | undefined {
    let end: number | undefined;
    let i = 0;
    while (i < chunk.length) {
      if (this.prefixRead < 5) {
        const n = Math.min(5 - this.prefixRead, chunk.length - i);
        this.prefix.set(chunk.subarray(i, i + n), this.prefixRead);
        this.prefixRead += n;
        i += n;
        if (this.prefixRead < 5) break;
        this.remaining = new DataView(this.prefix.buffer).getUint32(1);
      } else {
        const n = Math.min(this.remaining, chunk.length - i);
        this.remaining -= n;
        i += n;
      }
      if (this.remaining === 0) {
        this.prefixRead = 0;
        end = i;
      }
    }
    return end;
  }
}
