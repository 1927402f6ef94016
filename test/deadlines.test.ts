import assert from "node:assert/strict";
import { connect as connectTcp } from "node:net";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import sharp from "sharp";
import WebSocket from "ws";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { face } from "./support/testdata.js";
import { createTrickler, SLOW_HTTP_ANSWER } from "./support/trickler.js";
import { until } from "./support/until.js";
import { stageRuns } from "./support/stage-runs.js";
import { requestsCounted as requests } from "./support/request-counts.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";

const codeOf = (e: unknown) => ConnectError.from(e).code;

describe("client deadlines and cancellations stop the server's work", () => {
  const trickler = createTrickler(SLOW_HTTP_ANSWER, 100);
  let server: TestServer;
  let client: Client<typeof FaceService>;
  let large: Uint8Array;
  let slowImageUrl = "";
  before(async () => {
    const port = await trickler.listen();
    slowImageUrl = `http://127.0.0.1:${port}/slow.jpg`;
    server = await startTestServer({ FACE_IMAGE_URL_ALLOWED_HOSTS: `127.0.0.1:${port}`, FACE_IMAGE_URL_TIMEOUT_MS: "20000" });
    client = faceClient(server);
    await client.register({ identifier: "obama", image: face("face_recognition/obama.jpg") });
    // Large enough that decoding and detecting alone take longer than the deadline below.
    large = new Uint8Array(await sharp(face("face_recognition/obama.jpg")).resize({ width: 4000 }).jpeg().toBuffer());
  });
  after(async () => {
    await server.close();
    await trickler.close();
  });

  it("answers DeadlineExceeded once grpc-timeout passed, never reaches the search, and counts deadline_exceeded", async () => {
    const searchesBefore = await stageRuns("similarity_search");
    const countedBefore = await requests("Recognize", "deadline_exceeded");
    // The header alone (no client-side timer), so the server's own deadline is what ends the call.
    await assert.rejects(client.recognize({ image: large }, { headers: { "grpc-timeout": "10m" } }), (e) => codeOf(e) === Code.DeadlineExceeded);
    await until(async () => (await requests("Recognize", "deadline_exceeded")) === countedBefore + 1, "the call counted as deadline_exceeded");
    await new Promise((r) => setTimeout(r, 300)); // time for work that would have gone on
    assert.equal(await stageRuns("similarity_search"), searchesBefore, "no search ran for a call past its deadline");
    assert.equal((await client.recognize({ image: large })).identifier, "obama", "without a deadline the same call succeeds");
  });

  it("honours connect-timeout-ms on the Connect protocol the same way", async () => {
    const countedBefore = await requests("Recognize", "deadline_exceeded");
    const res = await fetch(`${server.url}/face.v1.FaceService/Recognize`, {
      method: "POST",
      headers: { "content-type": "application/json", "connect-timeout-ms": "10" },
      body: JSON.stringify({ image: Buffer.from(large).toString("base64") }),
    });
    assert.equal((await res.json()).code, "deadline_exceeded");
    await until(async () => (await requests("Recognize", "deadline_exceeded")) === countedBefore + 1, "the call counted as deadline_exceeded");
  });

  it("serves a call whose deadline is further off than a Node timer reaches (24.8 days) on every protocol", async () => {
    // The headers alone: a client's own timer for such a deadline would fire at once in Node too.
    const image = face("face_recognition/obama2.jpg");
    const grpcTimeout = { "grpc-timeout": "99999999H" }; // the most gRPC's 8 digits say: 11,000 years
    const connect = createClient(FaceService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    const grpcWeb = createClient(FaceService, createGrpcWebTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    for (const [protocol, call] of [
      ["gRPC", () => client.recognize({ image }, { headers: grpcTimeout })],
      ["gRPC, 30 days", () => client.recognize({ image }, { headers: { "grpc-timeout": "2592000S" } })],
      ["gRPC-Web", () => grpcWeb.recognize({ image }, { headers: grpcTimeout })],
      ["Connect", () => connect.recognize({ image }, { headers: { "connect-timeout-ms": "9999999999" } })],
    ] as const) {
      assert.equal((await call()).identifier, "obama", protocol);
    }
  });

  it("stops downloading an image_url when the client's deadline passes", async () => {
    const opened = trickler.openMs.length;
    const start = Date.now();
    await assert.rejects(client.recognize({ imageUrl: slowImageUrl }, { headers: { "grpc-timeout": "300m" } }), (e) => codeOf(e) === Code.DeadlineExceeded);
    assert.ok(Date.now() - start < 2_000);
    await until(() => trickler.openMs.length > opened, "the download connection closed", 3_000);
  });

  /**
   * Sends a call (`send`) and, once it has decoded its photo, so that it is under way with its
   * detection, alignment and embedding still to come (tens of ms for the large photo; looked at
   * every millisecond), has its client leave (`leave`): the call must be counted canceled and reach
   * no search.
   */
  async function leavesMidCall(rpc: string, send: () => void, leave: () => void): Promise<void> {
    const searchesBefore = await stageRuns("similarity_search");
    const canceledBefore = await requests(rpc, "canceled");
    const decoded = await stageRuns("decode");
    send();
    await until(async () => (await stageRuns("decode")) > decoded, "the photo decoded", 10_000, 1);
    leave();
    await until(async () => (await requests(rpc, "canceled")) === canceledBefore + 1, `the ${rpc} call counted as canceled`);
    await new Promise((r) => setTimeout(r, 300)); // time for work that would have gone on
    assert.equal(await stageRuns("similarity_search"), searchesBefore, "no search ran for a call whose client went away");
  }

  // REST reaches the service through the in-process router: until 2026-12-05 its client going away
  // was passed on as a plain abort, which the call's work does not take for a cancellation (connect-es
  // aborts a finished call's signal so too), and the call ran to its end for no one, counted ok.
  for (const [protocol, path] of [["REST", "/api/v1/recognize"], ["Connect over HTTP/1.1", "/face.v1.FaceService/Recognize"]] as const) {
    it(`stops the work of a call whose client goes away before its answer (${protocol}), and counts it canceled`, async () => {
      const okBefore = await requests("Recognize", "ok");
      const body = JSON.stringify({ image: Buffer.from(large).toString("base64") });
      const socket = connectTcp(Number(new URL(server.url).port), "127.0.0.1");
      socket.on("error", () => {});
      const send = () => socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      await leavesMidCall("Recognize", send, () => socket.destroy());
      assert.equal(await requests("Recognize", "ok"), okBefore);
    });
  }

  it("stops the work of a WebSocket frame in flight when its socket closes, and counts the stream canceled", async () => {
    const socket = new WebSocket(`${server.url.replace("http", "ws")}/ws/realtime`);
    socket.on("error", () => {});
    await new Promise((resolve) => socket.once("open", resolve));
    const send = () => socket.send(JSON.stringify({ type: "frame", frame_id: "1", image: Buffer.from(large).toString("base64") }));
    await leavesMidCall("Sync", send, () => socket.terminate());
  });

  it("counts a Sync stream the client cancels as canceled, not ok", async () => {
    const canceledBefore = await requests("Sync", "canceled");
    const okBefore = await requests("Sync", "ok");
    const abort = new AbortController();
    const frames = (async function* () {
      yield { image: face("face_recognition/obama.jpg"), frameId: "1" };
      await new Promise(() => {}); // the stream stays open until the client cancels it
    })();
    const answers = client.sync(frames, { signal: abort.signal })[Symbol.asyncIterator]();
    assert.equal(((await answers.next()).value as { frameId: string }).frameId, "1");
    abort.abort();
    await assert.rejects(answers.next(), (e) => codeOf(e) === Code.Canceled);
    await until(async () => (await requests("Sync", "canceled")) === canceledBefore + 1, "the stream counted as canceled");
    assert.equal(await requests("Sync", "ok"), okBefore);
  });
});
