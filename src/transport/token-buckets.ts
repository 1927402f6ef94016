/**
 * One token bucket per client (an API key or a client address): `burst` requests at once, refilled
 * at `perSecond`. A bucket that has refilled to `burst` is the same as none, so those are what is
 * dropped to keep the map bounded.
 */
export interface TokenBuckets {
  /**
   * Takes a token from `client`'s bucket: 0 when it had one, else the whole seconds until it will
   * (at least 1), which is what a refusal's retry-after tells the client. Always 0 when `perSecond`
   * is 0 (rate limiting off).
   */
  take(client: string): number;
}

/** Buckets kept before full ones are dropped. */
const BUCKETS_BEFORE_SWEEP = 10_000;
/**
 * Sweeps at most this often: a map of many clients that are all still refilling (one client cycling
 * through the /64s of an IPv6 /48) would otherwise be walked whole on every request.
 */
const SWEEP_INTERVAL_MS = 1_000;

/**
 * `now` is a monotonic clock by default: counted by the wall clock, an NTP step of an hour back was
 * taken from every bucket, and each client then refused for that hour.
 */
export function createTokenBuckets(perSecond: number, burst: number, now: () => number = () => performance.now()): TokenBuckets {
  const buckets = new Map<string, { tokens: number; at: number }>();
  let sweptAt = -Infinity;
  const tokensAt = (bucket: { tokens: number; at: number }, now: number) => Math.min(burst, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);

  function sweep(now: number): void {
    if (buckets.size <= BUCKETS_BEFORE_SWEEP || now - sweptAt < SWEEP_INTERVAL_MS) return;
    sweptAt = now;
    for (const [client, bucket] of buckets) if (tokensAt(bucket, now) >= burst) buckets.delete(client);
  }

  return {
    take(client) {
      if (perSecond <= 0) return 0;
      const at = now();
      sweep(at);
      const bucket = buckets.get(client) ?? { tokens: burst, at };
      bucket.tokens = tokensAt(bucket, at);
      bucket.at = at;
      buckets.set(client, bucket);
      if (bucket.tokens < 1) return Math.max(1, Math.ceil((1 - bucket.tokens) / perSecond));
      bucket.tokens -= 1;
      return 0;
    },
  };
}
