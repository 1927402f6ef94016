/**
 * How many calls are doing image work in this process right now (admission counts them in and
 * out). The inference pool reads it: a call running alone may use every core for one model run,
 * several at once share the cores, one run each.
 */
let running = 0;

export function callStarted(): void {
  running++;
}

export function callEnded(): void {
  running--;
}

export function callsInFlight(): number {
  return running;
}
