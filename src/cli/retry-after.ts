import { setTimeout } from "node:timers/promises";
import { ConnectError, type Interceptor } from "@connectrpc/connect";

/** Tries of one call while the service says when to come back. */
const MAX_TRIES = 30;

/**
 * Tries a unary call again after the wait a refusal names in `retry-after` (the rate limit, a
 * service at capacity), up to MAX_TRIES times: a bulk import or a long export meets them as a
 * matter of course, and until 2026-12-04 the first one stopped the command halfway.
 */
export const retryWhenTold: Interceptor = (next) => async (req) => {
  for (let tries = 1; ; tries++) {
    try {
      return await next(req);
    } catch (e) {
      const seconds = retryAfterSeconds(e);
      if (req.stream || seconds === undefined || tries >= MAX_TRIES) throw e;
      await setTimeout(seconds * 1000, undefined, { signal: req.signal });
    }
  }
};

/** The wait in seconds a refusal names in `retry-after`, if it names one. */
export function retryAfterSeconds(error: unknown): number | undefined {
  const seconds = Number(ConnectError.from(error).metadata.get("retry-after") ?? 0);
  return seconds > 0 ? seconds : undefined;
}
