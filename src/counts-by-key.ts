/**
 * How much of something (open requests, connections, bytes being received) each key holds; keys
 * holding none are forgotten.
 */
export class CountsByKey {
  private readonly counts = new Map<string, number>();

  of(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** Adds `amount` (negative: gives back) to what `key` holds. */
  add(key: string, amount: number): void {
    const now = this.of(key) + amount;
    if (now === 0) this.counts.delete(key);
    else this.counts.set(key, now);
  }

  /** Counts one more for `key`; the returned function gives it back (once, however often called). */
  take(key: string): () => void {
    this.add(key, 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      this.add(key, -1);
    };
  }
}
