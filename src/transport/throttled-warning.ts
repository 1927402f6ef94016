/**
 * A warning for something that may happen thousands of times a second (a flood of refused
 * connections or requests): `warn` runs the first time at once, then at most once per `intervalMs`,
 * told how many times it happened since its last line.
 */
export function throttledWarning<A extends unknown[]>(intervalMs: number, warn: (times: number, ...args: A) => void): (...args: A) => void {
  let unlogged = 0;
  let loggedAt = -Infinity;
  return (...args) => {
    unlogged += 1;
    if (performance.now() - loggedAt < intervalMs) return;
    warn(unlogged, ...args);
    unlogged = 0;
    loggedAt = performance.now();
  };
}
