import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import WebSocket from "ws";
import { face, FACES_DIR } from "./support/testdata.js";
import { useTestServer, type TestServer } from "./support/server.js";
import { isClientProtocolError } from "../src/transport/realtime.js";
import type { Client } from "@connectrpc/connect";
import type { FaceService, SyncResponse } from "../gen/face/v1/face_pb.js";

const FRAMES = readdirSync(join(FACES_DIR, "video/frames")).sort().map((f) => `video/frames/${f}`);

/** The WebSocket URL of /ws/realtime on a test server. */
function realtimeUrl(server: TestServer, query = ""): string {
  return `${server.url.replace("http", "ws")}/ws/realtime${query}`;
}

/** Opens /ws/realtime and collects every answer; resolves once `expected` answers arrived. */
async function session(server: TestServer, query: string, send: (ws: WebSocket) => void, expected: number): Promise<Record<string, unknown>[]> {
  const ws = new WebSocket(realtimeUrl(server, query));
  const answers: Record<string, unknown>[] = [];
  await new Promise<void>((resolve, reject) => {
    ws.on("open", () => send(ws));
    ws.on("message", (data) => {
      answers.push(JSON.parse(String(data)));
      if (answers.length === expected) resolve();
    });
    ws.on("error", reject);
    ws.on("close", (code, reason) => reject(new Error(`closed ${code} ${reason}`)));
  });
  ws.removeAllListeners("close");
  ws.close();
  return answers;
}

describe("/ws/realtime", () => {
  let server: TestServer;
  let client: Client<typeof FaceService>;
  useTestServer(async (s, c) => {
    server = s;
    client = c;
    await c.register({ identifier: "lin-manuel-miranda", image: face("video/lin-manuel-miranda.png") });
  });

  it("answers every frame in order as a gRPC Sync stream does, binary and JSON alike", async () => {
    const answers = await session(server, "", (ws) => {
      FRAMES.forEach((f, i) => (i % 2 ? ws.send(face(f)) : ws.send(JSON.stringify({ type: "frame", image: Buffer.from(face(f)).toString("base64"), frame_id: `f${i}` }))));
    }, FRAMES.length);
    assert.deepEqual(answers.map((a) => a.frame_id), FRAMES.map((_, i) => (i % 2 ? String(i) : `f${i}`)));
    // A stream remembers the faces it followed (where it looks, who they are), a lone SyncFrame
    // cannot: the answers are compared with a gRPC Sync stream over the same frames.
    const stream: SyncResponse[] = [];
    for await (const r of client.sync((async function* () { for (const f of FRAMES) yield { image: face(f) }; })())) stream.push(r);
    for (const [i, answer] of answers.entries()) {
      assert.equal(answer.type, "results");
      const faces = answer.faces as { identifier: string; box: { x: number; y: number; width: number } }[];
      assert.equal(answer.count, faces.length);
      assert.equal(faces.length, stream[i].faces.length, FRAMES[i]);
      faces.forEach((f, j) => {
        const box = stream[i].faces[j].box!;
        assert.ok(Math.abs(f.box.x - box.x) < 1 && Math.abs(f.box.y - box.y) < 1 && Math.abs(f.box.width - box.width) < 1, FRAMES[i]);
      });
      assert.deepEqual(faces.map((f) => f.identifier), stream[i].faces.map((f) => f.identifier), FRAMES[i]);
      assert.ok(Number(answer.server_process_time_ms) > 0);
      assert.ok((answer.flame_graph as { label: string }[]).some((e) => e.label === "detect"));
    }
    assert.ok(answers.some((a) => (a.faces as { identifier: string }[]).some((f) => f.identifier === "lin-manuel-miranda")), "the registered person is recognized");
  });

  it("answers a bad frame with an error in its turn and keeps the socket open", async () => {
    const good = Buffer.from(face(FRAMES[10])).toString("base64");
    const answers = await session(server, "", (ws) => {
      ws.send(JSON.stringify({ type: "frame", image: good, frame_id: "a" }));
      ws.send("not json");
      ws.send(new TextEncoder().encode("GIF89a not an image"));
      ws.send(JSON.stringify({ type: "frame", frame_id: "no-image" }));
      // A misspelt field was dropped without a word: this frame was searched in the default collection.
      ws.send(JSON.stringify({ type: "frame", image: good, frame_id: "misspelt", colection: "other" }));
      ws.send(JSON.stringify({ type: "frame", image: good, frame_id: "b" }));
    }, 6);
    assert.deepEqual(answers.map((a) => a.type), ["results", "error", "error", "error", "error", "results"]);
    assert.deepEqual(answers.map((a) => a.frame_id), ["a", "1", "2", "no-image", "misspelt", "b"]);
    assert.equal(answers[2].code, "invalid_argument");
    assert.equal(answers[4].code, "invalid_argument");
    assert.match(String(answers[4].message), /^invalid frame: unknown field colection; this request's fields are .*collection/);
  });

  it("answers a plain GET with 426 and how to connect", async () => {
    // It answered 404 with an empty body: someone checking the URL with curl was told it is not there.
    const plain = await fetch(`${server.url}/ws/realtime`);
    assert.equal(plain.status, 426);
    assert.equal(plain.headers.get("upgrade"), "websocket");
    const body = await plain.json();
    assert.equal(body.code, "invalid_argument");
    assert.match(body.message, /WebSocket/);
  });

  /** The status and body an upgrade with `query` is answered with (101 when upgraded). */
  const upgradeAnswer = (query: string) => {
    const socket = new WebSocket(realtimeUrl(server, query));
    return new Promise<[number, string]>((resolve) => {
      socket.on("open", () => {
        resolve([101, "{}"]);
        socket.close();
      });
      socket.on("unexpected-response", (req, res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => (text += chunk));
        res.on("end", () => {
          resolve([res.statusCode ?? 0, text]);
          req.destroy();
        });
      });
    });
  };

  it("refuses an upgrade naming two collections, or a query parameter it does not take, as REST refuses them", async () => {
    // It was upgraded, and each frame was answered "collection must be 1-64 characters of a-z ...".
    const [status, body] = await upgradeAnswer("?collection=default&collection=other");
    assert.equal(status, 400);
    assert.match(JSON.parse(body).message, /collection is given 2 times/);
    // A misspelt one was dropped without a word: the socket watched the default collection.
    const [misspeltStatus, misspeltBody] = await upgradeAnswer("?colection=other");
    assert.equal(misspeltStatus, 400);
    assert.equal(JSON.parse(misspeltBody).message, "unknown query parameter colection; /ws/realtime takes collection and api_key");
    assert.equal((await upgradeAnswer("?collection=default"))[0], 101);
  });

  it("takes camelCase field names as protobuf JSON does, and says when base64 is bad", async () => {
    const group = Buffer.from(face("multi/two_people.jpg")).toString("base64");
    const answers = await session(server, "", (ws) => {
      ws.send(JSON.stringify({ type: "frame", image: group, frameId: "camel", maxFaces: 1 }));
      ws.send(JSON.stringify({ type: "frame", image: group, frame_id: "snake", max_faces: 2 }));
      ws.send(JSON.stringify({ type: "frame", image: "**not base64**", frameId: "bad64" }));
      // Frame-sized and valid up to its last character: the check must stay linear in time.
      ws.send(JSON.stringify({ type: "frame", image: `${"abcd".repeat(50_000)}!`, frameId: "long-bad64" }));
      // Wrapped at 76 columns (MIME) and in the URL-safe alphabet: base64 all the same.
      ws.send(JSON.stringify({ type: "frame", image: group.replace(/.{76}/g, "$&\n"), frameId: "wrapped", maxFaces: 1 }));
      ws.send(JSON.stringify({ type: "frame", image: group.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, ""), frameId: "url-safe", maxFaces: 1 }));
    }, 6);
    assert.deepEqual(answers.map((a) => [a.frame_id, a.type, a.count ?? a.code]), [["camel", "results", 1], ["snake", "results", 2], ["bad64", "error", "invalid_argument"], ["long-bad64", "error", "invalid_argument"], ["wrapped", "results", 1], ["url-safe", "results", 1]]);
    assert.match(String(answers[2].message), /base64/);
  });

  it("refuses a frame whose field has the wrong type, as protobuf JSON does", async () => {
    // A number for identifier was read as none: the frame registered nobody, without a word.
    const frame = Buffer.from(face(FRAMES[10])).toString("base64");
    const answers = await session(server, "", (ws) => {
      ws.send(JSON.stringify({ type: "frame", image: frame, frame_id: "number-identifier", identifier: 5 }));
      ws.send(JSON.stringify({ type: "frame", image: frame, frame_id: "list-collection", collection: ["default"] }));
      ws.send(JSON.stringify({ type: "frame", image: frame, frame_id: 7 }));
    }, 3);
    assert.deepEqual(answers.map((a) => [a.type, a.code]), [["error", "invalid_argument"], ["error", "invalid_argument"], ["error", "invalid_argument"]]);
    assert.deepEqual(answers.map((a) => a.frame_id), ["number-identifier", "list-collection", "2"]);
    assert.match(String(answers[0].message), /identifier from JSON: expected string, got 5/);
  });

  it("refuses a number out of its field's range in that frame alone, as protobuf JSON does", async () => {
    // max_faces 2^32 passed the frame's checks and failed the stream's encoding: that frame was
    // answered "internal" and the socket closed (1008), the frames after it unanswered.
    const frame = Buffer.from(face(FRAMES[10])).toString("base64");
    const answers = await session(server, "", (ws) => {
      ws.send(JSON.stringify({ type: "frame", image: frame, frame_id: "too-many", max_faces: 2 ** 32 }));
      ws.send(JSON.stringify({ type: "frame", image: frame, frame_id: "huge", max_faces: 1e300 }));
      ws.send(JSON.stringify({ type: "frame", image: frame, frame_id: "next" }));
    }, 3);
    assert.deepEqual(answers.map((a) => [a.frame_id, a.type, a.code]), [["too-many", "error", "invalid_argument"], ["huge", "error", "invalid_argument"], ["next", "results", undefined]]);
    assert.match(String(answers[0].message), /max_faces/);
  });
});

describe("/ws/realtime with API keys", () => {
  let server: TestServer;
  useTestServer((s) => { server = s; }, { FACE_API_KEYS: "realtime-key-0123456789:site-a" });

  it("refuses an upgrade without a key, accepts ?api_key=, and keeps a bound key in its collections", async () => {
    const refused = new WebSocket(realtimeUrl(server));
    const status = await new Promise<number>((resolve) =>
      refused.on("unexpected-response", (req, res) => {
        resolve(res.statusCode ?? 0);
        req.destroy(); // ws leaves a refused upgrade's connection to the caller
      }),
    );
    assert.equal(status, 401);
    const frame = Buffer.from(face(FRAMES[10])).toString("base64");
    const ok = await session(server, "?api_key=realtime-key-0123456789&collection=site-a", (ws) => ws.send(JSON.stringify({ type: "frame", image: frame })), 1);
    assert.equal(ok[0].type, "results");
    const denied = await session(server, "?api_key=realtime-key-0123456789&collection=site-a", (ws) => ws.send(JSON.stringify({ type: "frame", image: frame, collection: "site-b" })), 1);
    assert.equal(denied[0].type, "error");
    assert.equal(denied[0].code, "permission_denied");
  });
});

describe("/ws/realtime with a small message limit", () => {
  let server: TestServer;
  useTestServer((s) => { server = s; }, { FACE_MAX_IMAGE_BYTES: "1024" });

  it("closes the socket with 1009 for a message over the limit", async () => {
    const ws = new WebSocket(realtimeUrl(server));
    await new Promise((resolve) => ws.on("open", resolve));
    ws.send(new Uint8Array(server.config.maxMessageBytes + 1));
    const code = await new Promise<number>((resolve) => ws.on("close", (c) => resolve(c)));
    assert.equal(code, 1009);
  });

  it("counts an oversized message as the client's protocol error, not a server failure", () => {
    const tooBig = Object.assign(new RangeError("Max payload size exceeded"), { code: "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH" });
    assert.equal(isClientProtocolError(tooBig), true);
    assert.equal(isClientProtocolError(new Error("EPIPE")), false);
  });
});
