/**
 * A large photo sent over a slow network: Recognize of a 2.5 MB JPEG over gRPC (h2c) through a TCP
 * proxy that holds every chunk for BENCH_ONE_WAY_MS (20 ms: a 40 ms round trip), beside the same
 * call sent directly. What the network adds is the upload's round trips, which HTTP/2's flow-control
 * windows decide (src/transport/dual-protocol-server.ts).
 *
 *   npm run bench:upload
 */
import { existsSync } from "node:fs";
import net from "node:net";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { HAPROXY, startHAProxy } from "../test/support/haproxy.js";
import { FACES_DIR } from "../test/support/testdata.js";
import { startServiceProcess } from "../test/support/service-process.js";
import { percentile, printTable } from "./table.js";

const ONE_WAY_MS = Number(process.env.BENCH_ONE_WAY_MS ?? 20);
const RUNS = 7;
const PHOTO = "compreface/001_A.jpg";

/** A TCP proxy to `port` that delays each chunk in each direction by ONE_WAY_MS, keeping their order. */
async function delayingProxy(port: number): Promise<net.Server> {
  const forward = (from: net.Socket, to: net.Socket) => {
    from.on("data", (chunk) => setTimeout(() => to.write(chunk), ONE_WAY_MS));
    from.on("end", () => setTimeout(() => to.end(), ONE_WAY_MS));
    from.on("error", () => to.destroy());
  };
  const proxy = net.createServer((client) => {
    const upstream = net.connect(port, "127.0.0.1");
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  return proxy;
}

const dataDir = await mkdtemp(join(tmpdir(), "face-bench-upload-"));
const service = await startServiceProcess({ FACE_DATA_DIR: dataDir, LOG_LEVEL: "warn" });
const proxy = await delayingProxy(Number(new URL(service.url).port));
// The same network in front of HAProxy as deploy/haproxy.cfg configures it, when it is installed.
if (!existsSync(HAPROXY)) console.log(`no HAProxy row: ${HAPROXY} is not installed (apt-get install haproxy)`);
const haproxy = existsSync(HAPROXY) ? await startHAProxy([new URL(service.url).host]) : undefined;
const proxyToHAProxy = haproxy === undefined ? undefined : await delayingProxy(Number(new URL(haproxy.url).port));
const photo = new Uint8Array(await readFile(join(FACES_DIR, PHOTO)));
const rows: Record<string, string>[] = [];
try {
  const via = (p: net.Server) => `http://127.0.0.1:${(p.address() as net.AddressInfo).port}`;
  const routes = [["direct", service.url], [`${2 * ONE_WAY_MS} ms round trip`, via(proxy)]];
  if (proxyToHAProxy !== undefined) routes.push([`${2 * ONE_WAY_MS} ms round trip to HAProxy`, via(proxyToHAProxy)]);
  for (const [route, baseUrl] of routes) {
    const client = createClient(FaceService, createGrpcTransport({ baseUrl }));
    await client.recognize({ image: photo });
    const wall: number[] = [];
    const server: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const start = performance.now();
      const reply = await client.recognize({ image: photo });
      wall.push(performance.now() - start);
      server.push(reply.serverProcessTimeMs);
    }
    const [w, s] = [percentile(wall, 50), percentile(server, 50)];
    rows.push({ route, "Recognize p50 ms": w.toFixed(0), "server p50 ms": s.toFixed(0), "outside the server ms": (w - s).toFixed(0) });
  }
} finally {
  proxy.close();
  proxyToHAProxy?.close();
  await haproxy?.close();
  await service.stop();
  await rm(dataDir, { recursive: true, force: true });
}
printTable(`Recognize of ${PHOTO} (${(photo.length / 1e6).toFixed(2)} MB) over gRPC, ${RUNS} calls each`, rows);
