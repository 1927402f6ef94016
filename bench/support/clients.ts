/**
 * Separate callers for the benchmarks' "N clients" rows. The service shares its admission places
 * among client addresses (README, admission), so N callers on one connection are one client to it:
 * half the places for image work, and 16 of them had calls refused, which stopped `npm run bench`
 * (2026-12-04).
 */
import { createClient, type Client } from "@connectrpc/connect";
import { FaceService } from "../../gen/face/v1/face_pb.js";
import { clientAddress, grpcTransportFrom } from "../../test/support/from-address.js";

export type FaceClient = Client<typeof FaceService>;

/** `count` gRPC clients of the service at `url`, each on its own connection from its own loopback address. */
export function separateClients(url: string, count: number): FaceClient[] {
  return Array.from({ length: count }, (_, n) => createClient(FaceService, grpcTransportFrom(url, clientAddress(n))));
}

/**
 * Calls per second over `seconds`, each client calling again as soon as answered; `call` gets the
 * client, its index and how many calls it made before.
 */
export async function throughput(clients: FaceClient[], seconds: number, call: (client: FaceClient, c: number, i: number) => Promise<unknown>): Promise<number> {
  const start = performance.now();
  const end = start + seconds * 1000;
  let done = 0;
  await Promise.all(clients.map(async (client, c) => {
    for (let i = 0; performance.now() < end; i++, done++) await call(client, c, i);
  }));
  return done / ((performance.now() - start) / 1000);
}
