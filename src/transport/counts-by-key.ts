/** How many of something (open requests, connections) each key holds; keys holding none are forgotten. */
export class CountsByKey {
  private readonly counts = new Map<string, number>();

  of(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /** Counts one more for `key`; the returned function gives it back (once, however often called). */
  take(key: string): () => void {
    this.counts.set(key, this.of(key) + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = this.of(key) - 1;
      if (left === 0) this.counts.delete(key);
      else this.counts.set(key, left);
    };
  }
}
