import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import WebSocket from "ws";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { face } from "./support/testdata.js";
import { faceClient, startTestServer, type TestServer } from "./support/server.js";
import { until } from "./support/until.js";
import { sharedClientSideListeners } from "./support/gauges.js";

/** More calls than an EventTarget takes listeners before Node warns of a leak (10). */
const CALLS = 30;

describe("a call leaves nothing behind on what outlives it", () => {
  let server: TestServer;
  const warnings: Error[] = [];
  const record = (warning: Error) => warnings.push(warning);
  before(async () => {
    server = await startTestServer();
    process.on("warning", record);
  });
  after(async () => {
    process.off("warning", record);
    await server.close();
  });

  const leakWarnings = () => warnings.filter((w) => w.name === "MaxListenersExceededWarning").map((w) => w.message);

  it("over REST (the in-process router), gRPC and Connect on kept connections, and WebSocket frames", async () => {
    for (let i = 0; i < CALLS; i++) assert.equal((await fetch(`${server.url}/api/v1/users`)).status, 200);
    const grpc = faceClient(server);
    for (let i = 0; i < CALLS; i++) await grpc.listUsers({});
    const connect = createClient(FaceService, createConnectTransport({ baseUrl: server.url, httpVersion: "1.1" }));
    for (let i = 0; i < CALLS; i++) await connect.listUsers({});
    const socket = new WebSocket(`${server.url.replace("http", "ws")}/ws/realtime`);
    await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
    const photo = face("face_recognition/obama.jpg");
    for (let i = 0; i < CALLS; i++) {
      const answer = new Promise((resolve) => socket.once("message", resolve));
      socket.send(photo);
      await answer;
    }
    socket.close();
    await until(() => sharedClientSideListeners() === 0, "no listener left on the shared default signal", 5_000).catch(() => {});
    assert.equal(sharedClientSideListeners(), 0, "listeners left on the shared default signal");
    assert.deepEqual(leakWarnings(), []);
  });
});
