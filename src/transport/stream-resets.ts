import http2 from "node:http2";
import { rateLimitClient } from "./client-address.js";
import { createTokenBuckets } from "./token-buckets.js";

/**
 * HTTP/2 "rapid reset" (CVE-2023-44487): a client opens a stream and resets it at once, over and
 * over. A reset stream no longer counts against the connection's concurrent streams, so nothing
 * bounds how many the server starts, and each costs it the work of a request (the parsing of its
 * headers, the routing, the call's setup) though no answer is ever read. One such client left
 * Debian's grpcio client on another address 2 Recognize answers in 8 s, where it had 240-480
 * unattacked (53 on a slow day: test/rapid-reset.test.ts). nghttp2's own limit (1,000 resets, then
 * 33 a second, per connection) did not help: the client reconnected and had another thousand.
 *
 * So the streams an address's clients reset are counted across its connections (an IPv6
 * address's /64, as rate limits count): a burst, then a steady rate. A client cancelling calls (a
 * deadline, a user going away) stays far below; past it, the connection is closed (GOAWAY
 * ENHANCE_YOUR_CALM) and the address's new connections are closed as they arrive for a while
 * (COOL_OFF_MS; longer for an address that keeps going over: nextCoolOff).
 *
 * A trusted proxy (FACE_TRUSTED_PROXIES) is not counted: it passes on each of its many clients'
 * cancellations as a reset on its own few connections (deploy/haproxy.cfg speaks HTTP/2 to the
 * instances), and closing them failed every call on them. A rapid-reset client behind it is the
 * proxy's to stop (HAProxy 2.6 does not: README).
 */
export const RESET_STREAMS_BURST = 200;
export const RESET_STREAMS_PER_SECOND = 50;

/**
 * How long an address that went over has its new connections closed as they arrive: the time its
 * budget takes to refill by half. Reconnecting costs a client less than the server's stream setup,
 * so an address let back at once would have had a connection's worth of streams each time.
 */
export const COOL_OFF_MS = (RESET_STREAMS_BURST / 2 / RESET_STREAMS_PER_SECOND) * 1000;

/** The longest an address is kept out: what a cool-off doubling each time it goes over again reaches. */
export const MAX_COOL_OFF_MS = 64_000;

/** Addresses cooling off (or remembered as having cooled off lately) kept before the forgotten are dropped. */
const COOLING_BEFORE_SWEEP = 10_000;

/** An address that went over its budget: kept out until `until`, for `lengthMs`. */
export interface CoolOff {
  until: number;
  lengthMs: number;
}

/** Whether an address's cool-off is over and long enough ago that going over again would start afresh. */
const forgotten = (coolOff: CoolOff, now: number) => now - coolOff.until >= coolOff.lengthMs;

/**
 * The cool-off of an address going over its budget now. One that goes over again within as long as
 * it was last kept out is an attack outlasting its cool-offs: let back every 2 s, it had each time
 * the streams up to its budget set up as calls (~0.5 s of the main thread on a slow day, another
 * client's calls waiting), so each time it is kept out twice as long, up to MAX_COOL_OFF_MS. An
 * address sharing a NAT with the attacker loses little more by it: let back only for the moment
 * before the attacker went over again, it was kept out most of the time already. Another of its
 * connections going over while it is kept out (opened before) changes nothing.
 */
export function nextCoolOff(previous: CoolOff | undefined, now: number): CoolOff {
  if (previous !== undefined && now < previous.until) return previous;
  const lengthMs = previous === undefined || forgotten(previous, now) ? COOL_OFF_MS : Math.min(previous.lengthMs * 2, MAX_COOL_OFF_MS);
  return { until: now + lengthMs, lengthMs };
}

/** What the server's 'drop' event carries when it closes a connection for its address's reset streams. */
export interface ResetStreamsDrop {
  readonly remoteAddress?: string;
  readonly resetStreams: true;
}

export interface ResetStreamsLimit {
  /** Counts `session`'s reset streams; calls `closed` when it closes the session for them. */
  watch(session: http2.ServerHttp2Session, closed: (drop: ResetStreamsDrop) => void): void;
  /** Whether a new connection from `remoteAddress` is to be closed as it arrives (its address went over). */
  refuses(remoteAddress: string | undefined): boolean;
  /** Whether `session` went over and is being closed: its new streams are to be refused unprocessed. */
  closes(session: http2.Http2Session): boolean;
}

export function createResetStreamsLimit(isTrustedProxy: (address: string) => boolean): ResetStreamsLimit {
  const budgets = createTokenBuckets(RESET_STREAMS_PER_SECOND, RESET_STREAMS_BURST);
  const now = () => performance.now();
  const coolOffs = new Map<string, CoolOff>();
  const closing = new WeakSet<http2.Http2Session>();
  return {
    watch(session, closed) {
      const remoteAddress = session.socket?.remoteAddress;
      if (remoteAddress === undefined || isTrustedProxy(remoteAddress)) return;
      const address = rateLimitClient(remoteAddress);
      session.on("stream", (stream: http2.ServerHttp2Stream) => {
        // Reset: closed with an error code (by the client, or by the server's own time limits, which
        // a client reaches at most once a time limit each), or before the answer ended, whatever
        // the code (a client may reset with NO_ERROR). Not only those reset before their answer: a
        // flood of them is answered at once (refused, over the client's share of open requests),
        // and each still cost the server its setup.
        stream.once("close", () => {
          const reset = stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR || stream.aborted;
          if (!reset || closing.has(session) || session.destroyed || session.closed || budgets.take(address) === 0) return;
          closing.add(session);
          if (coolOffs.size >= COOLING_BEFORE_SWEEP) for (const [cooled, coolOff] of coolOffs) if (forgotten(coolOff, now())) coolOffs.delete(cooled);
          coolOffs.set(address, nextCoolOff(coolOffs.get(address), now()));
          // Not from inside this 'close' event: destroying the session there, on HAProxy's
          // connection (requests arriving among other streams' resets), left Node's HTTP/2 code
          // writing RST_STREAM frames into an ever larger buffer, the process answering nothing
          // again (test/rapid-reset-haproxy.test.ts). From the next turn of the event loop it does not.
          // That turn comes once the bytes already read are handled, hundreds of streams later in a
          // 64 KB read: they are refused unprocessed meanwhile (closes()). Set up as calls, they took
          // the service 1.5-2.5 s on a slow day, another client's calls waiting.
          setImmediate(() => {
            if (session.destroyed) return;
            // destroy(undefined, code) sends GOAWAY with NO_ERROR whatever the code: goaway() says why.
            session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
            session.destroy();
            closed({ remoteAddress, resetStreams: true });
          });
        });
      });
    },
    closes(session) {
      return closing.has(session);
    },
    refuses(remoteAddress) {
      if (remoteAddress === undefined || coolOffs.size === 0) return false;
      const address = rateLimitClient(remoteAddress);
      const coolOff = coolOffs.get(address);
      if (coolOff === undefined) return false;
      if (coolOff.until > now()) return true;
      if (forgotten(coolOff, now())) coolOffs.delete(address);
      return false;
    },
  };
}
