/**
 * The longest delay a Node timer holds: 2^31 - 1 ms, about 24.8 days. connect-es arms one timer
 * for a call's deadline, and Node fires a timer given a longer delay after 1 ms: a client that set
 * a deadline of a month (as clients that want none often do) was answered DeadlineExceeded at once.
 */
const LONGEST_TIMER_MS = 2 ** 31 - 1;

/** Milliseconds per unit of a gRPC timeout (gRPC over HTTP/2, "Timeout"; gRPC-Web uses it too). */
const GRPC_TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * Shortens a deadline further off than a timer reaches to the longest one a timer holds, which no
 * call comes near. Malformed values are left to connect-es, which refuses them.
 */
export function capLongDeadline(header: Headers): void {
  const grpc = /^(\d{1,8})([HMSmun])$/.exec(header.get("grpc-timeout") ?? "");
  if (grpc !== null && Number(grpc[1]) * GRPC_TIMEOUT_UNIT_MS[grpc[2]] > LONGEST_TIMER_MS) {
    header.set("grpc-timeout", `${Math.floor(LONGEST_TIMER_MS / 1000)}S`);
  }
  const connect = /^\d{1,10}$/.exec(header.get("connect-timeout-ms") ?? "");
  if (connect !== null && Number(connect[0]) > LONGEST_TIMER_MS) header.set("connect-timeout-ms", String(LONGEST_TIMER_MS));
}
