/**
 * A bare gRPC server for `npm run bench`'s round-trip row: connect-node on Node's own h2c server,
 * the same library the service answers with and the service's HTTP/2 flow-control windows, whose
 * Recognize reads the request and answers an empty reply at once. What the bench's client spends
 * calling it is the part of every call no service can avoid on this machine with this client:
 * HTTP/2, protobuf, connect-es on both sides.
 *
 *   PORT=50051 node --import tsx bench/support/bare-server.ts    (prints "listening" when ready)
 */
import http2 from "node:http2";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { FaceService } from "../../gen/face/v1/face_pb.js";
import { HTTP2_CONNECTION_WINDOW_BYTES, HTTP2_STREAM_WINDOW_BYTES } from "../../src/transport/dual-protocol-server.js";

const handler = connectNodeAdapter({
  routes: (router) => router.service(FaceService, { recognize: async () => ({}) }),
});
http2.createServer({ settings: { initialWindowSize: HTTP2_STREAM_WINDOW_BYTES } }, handler)
  .on("session", (session) => session.setLocalWindowSize(HTTP2_CONNECTION_WINDOW_BYTES))
  .listen(Number(process.env.PORT), "127.0.0.1", () => console.log("listening"));
