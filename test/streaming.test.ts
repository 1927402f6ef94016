import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { type Client } from "@connectrpc/connect";
import { FaceService, type SyncResponse } from "../gen/face/v1/face_pb.js";
import { writtenDetections } from "./support/detections.js";
import { covered, face, FACES_DIR } from "./support/testdata.js";
import { useTestServer, type TestServer } from "./support/server.js";
import { frameByFrame, requestQueue } from "./support/request-queue.js";

const frames = (dir: string) => readdirSync(join(FACES_DIR, "video", dir)).filter((f) => f.endsWith(".jpg")).sort().map((f) => face(`video/${dir}/${f}`));

describe("streaming: SyncFrame and bidirectional Sync", () => {
  let server: TestServer;
  let client: Client<typeof FaceService>;

  /** One stream sent `count` copies of `image`, one at a time: frames in flight together would each look before the first rejects a spot. */
  async function sameFrameOneAtATime(image: Uint8Array, count: number): Promise<SyncResponse[]> {
    const queue = requestQueue();
    const answers: SyncResponse[] = [];
    queue.send({ image, frameId: "0" });
    for await (const r of client.sync(queue.iterable)) {
      answers.push(r);
      if (answers.length < count) queue.send({ image, frameId: String(answers.length) });
      else queue.end();
    }
    return answers;
  }
  useTestServer(async (s, c) => {
    server = s;
    client = c;
    await client.register({ identifier: "lin-manuel-miranda", image: face("video/lin-manuel-miranda.png") });
    await client.register({ identifier: "alex-lacamoire", image: face("video/alex-lacamoire.png") });
  });

  it("answers each of the 20 clip frames in order, as it arrives, with identities and flame graphs", async () => {
    const clip = frames("frames");
    const queue = requestQueue();
    const responses = client.sync(queue.iterable)[Symbol.asyncIterator]();
    const seen = new Set<string>();
    const linFrames: number[] = [];
    for (let i = 0; i < clip.length; i++) {
      queue.send({ image: clip[i], frameId: `f${i}` });
      // The next frame is sent only after this one's answer arrived.
      const { value, done } = await responses.next();
      assert.equal(done, false);
      const response = value as SyncResponse;
      assert.equal(response.frameId, `f${i}`);
      assert.equal(response.error, undefined);
      const total = response.flameGraph.filter((e) => e.parent === "").reduce((s, e) => s + e.durationMs, 0);
      assert.ok(["decode", "detect"].every((stage) => response.flameGraph.some((e) => e.label === stage)), "decode, detect, ... are reported");
      assert.ok(total <= response.serverProcessTimeMs, `stages ${total} ms > total ${response.serverProcessTimeMs} ms`);
      for (const f of response.faces) {
        if (f.identifier) seen.add(f.identifier);
        if (f.identifier === "lin-manuel-miranda") linFrames.push(i + 1);
        assert.ok(f.trackId > 0);
      }
    }
    queue.end();
    assert.equal((await responses.next()).done, true);
    // Lin-Manuel Miranda faces the camera in frames 8-16. Alex Lacamoire is only ever seen in full
    // profile (frames 4-7): his closest distance in the whole clip is 0.78, far past any threshold
    // that keeps strangers out, so he is reported as unknown rather than guessed.
    assert.deepEqual([...seen], ["lin-manuel-miranda"]);
    for (const frame of [8, 9, 10, 11, 12, 13, 14, 15, 16]) assert.ok(linFrames.includes(frame), `frame ${frame}: ${linFrames}`);
    // Frame 17 cuts to a group of other people, one of them where his face was: none is him.
    assert.ok(linFrames.every((frame) => frame <= 16), `frames ${linFrames}`);
  });

  it("keeps a face's track id across consecutive frames and logs every detection", async () => {
    const clip = frames("frames30").slice(0, 30);
    const answers: SyncResponse[] = [];
    for await (const r of client.sync((async function* () { for (const [i, image] of clip.entries()) yield { image, frameId: `t${i}`, collection: "tracking" }; })())) answers.push(r);
    assert.equal(answers.length, 30);
    const first = answers.find((a) => a.faces.length > 0)!;
    const next = answers[answers.indexOf(first) + 1];
    const largest = (a: SyncResponse) => a.faces[0];
    assert.equal(largest(next).trackId, largest(first).trackId);
    const faces = answers.reduce((n, a) => n + a.faces.length, 0);
    const log = await writtenDetections(server.database.knex, { collection: "tracking" }, faces);
    assert.equal(log.length, faces);
    assert.ok(log.some((d) => d.frame_id === "t29"));
  });

  it("aligns and embeds only the faces it searches, and registers a tracked face it did not search", async () => {
    const image = face("face_recognition/obama.jpg");
    await client.createCollection({ name: "steady" });
    const requests = [
      { image, frameId: "s1", collection: "steady" },
      { image, frameId: "s2", collection: "steady" },
      // The same steady, unknown face: tracked, not searched, yet registered when asked.
      { image, frameId: "s3", collection: "steady", identifier: "obama" },
    ];
    const answers: SyncResponse[] = [];
    for await (const r of client.sync((async function* () { yield* requests; })())) answers.push(r);
    const stages = (a: SyncResponse) => a.flameGraph.filter((e) => e.parent === "").map((e) => e.label);
    assert.ok(stages(answers[0]).includes("align") && stages(answers[0]).includes("embed"), `first frame: ${stages(answers[0])}`);
    assert.ok(!stages(answers[1]).includes("align") && !stages(answers[1]).includes("embed"), `tracked frame: ${stages(answers[1])}`);
    assert.deepEqual(answers.map((a) => a.faces[0]?.trackId), [answers[0].faces[0].trackId, answers[0].faces[0].trackId, answers[0].faces[0].trackId]);
    assert.equal(answers[2].faces[0].registered, true);
    assert.equal((await client.recognize({ image, collection: "steady" })).identifier, "obama");
  });

  it("gives a spot its closer looks rejected no new ones for the next four frames of the stream", async () => {
    // A hand the whole-frame pass is unsure of; the closer looks reject it (test/engine.test.ts).
    // The frame's faces are covered: a stream following faces reads the whole frame only once in
    // five frames anyway (below).
    const faces = (await client.syncFrame({ image: face("video/frames30/frame_036.jpg") })).faces;
    assert.ok(faces.length >= 1);
    const image = await covered(face("video/frames30/frame_036.jpg"), faces.map((f) => f.box!));
    const looks = (a: SyncResponse) => a.flameGraph.filter((e) => e.label === "detect_zoom").length;
    const single = await client.syncFrame({ image });
    const answers = await sameFrameOneAtATime(image, 7);
    // Looked at in the first frame, skipped in the next four, looked at again in the sixth.
    assert.ok(looks(single) >= 1, `${looks(single)} looks`);
    assert.deepEqual(answers.map(looks), [looks(single), 0, 0, 0, 0, looks(single), 0]);
    for (const a of answers) assert.deepEqual(a.faces, []);
  });

  it("reads the whole frame once in five frames while it follows faces, and looks near them in between", async () => {
    const image = face("video/frames30/frame_036.jpg");
    const single = await client.syncFrame({ image });
    const runs = (a: SyncResponse, label: string) => a.flameGraph.filter((e) => e.label === label).length;
    const answers = await sameFrameOneAtATime(image, 7);
    assert.deepEqual(answers.map((a) => runs(a, "detect_scan") > 0), [true, false, false, false, false, true, false]);
    assert.deepEqual(answers.map((a) => runs(a, "detect_near")), [0, 1, 1, 1, 1, 0, 1].map((n) => n * single.faces.length));
    for (const a of answers) {
      assert.equal(a.faces.length, single.faces.length);
      assert.deepEqual(a.faces.map((f) => f.trackId), answers[0].faces.map((f) => f.trackId), "the same tracks");
    }
  });

  it("looks at faint boxes of a faceless frame in one frame of the stream in five", async () => {
    // The clip's frame_041 with its two faces covered: a hand, a microphone and many faint boxes,
    // each new faint box unknown to the spots rejected so far.
    const image = await covered(face("video/frames30/frame_041.jpg"), [{ x: 510, y: 35, width: 60, height: 70 }, { x: 35, y: 170, width: 60, height: 70 }]);
    const looks = (a: SyncResponse) => a.flameGraph.filter((e) => e.label === "detect_zoom").length;
    const answers = await sameFrameOneAtATime(image, 6);
    assert.deepEqual(answers.map((a) => a.faces.length), [0, 0, 0, 0, 0, 0]);
    assert.ok(looks(answers[0]) >= 1, `${looks(answers[0])} looks`);
    assert.deepEqual(answers.map(looks), [looks(answers[0]), 0, 0, 0, 0, looks(answers[0])]);
  });

  it("never carries an identity from one collection's frame to another's on the same stream", async () => {
    const image = face("face_recognition/obama.jpg");
    await client.register({ identifier: "obama", image, collection: "stream-a" });
    await client.createCollection({ name: "stream-b" });
    const answers: SyncResponse[] = [];
    const requests = [
      { image, frameId: "a1", collection: "stream-a" },
      { image, frameId: "b1", collection: "stream-b" },
      { image, frameId: "a2", collection: "stream-a" },
    ];
    for await (const r of client.sync((async function* () { yield* requests; })())) answers.push(r);
    assert.deepEqual(answers.map((a) => a.faces[0]?.identifier), ["obama", "", "obama"]);
    const logB = await writtenDetections(server.database.knex, { collection: "stream-b" }, 1);
    assert.deepEqual(logB.map((d) => d.identifier ?? ""), [""], "b's log holds no identity of a");
  });

  it("names no one deleted before the frame was sent, though the stream followed their face", async () => {
    const image = face("face_recognition/obama.jpg");
    for (const [collection, remove] of [
      ["stream-deleted-user", (c: string) => client.deleteUser({ identifier: "obama", collection: c })],
      ["stream-deleted-collection", (c: string) => client.deleteCollection({ name: c })],
    ] as const) {
      await client.register({ identifier: "obama", image, collection });
      const stream = frameByFrame(client);
      const next = (frameId: string) => stream.frame({ image, frameId, collection });
      try {
        assert.equal((await next("1")).faces[0].identifier, "obama");
        assert.equal((await next("2")).faces[0].identifier, "obama", "followed, not searched again");
        await remove(collection);
        const after = await next("3");
        assert.equal(after.faces[0].identifier, "", collection);
        assert.equal(after.faces[0].trackId, 1, "the same track, no longer named");
      } finally {
        stream.end();
      }
      assert.equal(await stream.done(), true);
    }
  });

  it("asks whether the followed people still exist: every frame on a server, on PGlite only after something was deleted", async () => {
    const image = face("face_recognition/obama.jpg");
    const collection = "stream-existence-asked";
    await client.register({ identifier: "obama", image, collection });
    await client.register({ identifier: "someone-else", image, collection: "stream-existence-other" });
    const asked: string[] = [];
    const record = (query: { sql: string }) => {
      if (/from "users"/i.test(query.sql) && /"identifier" in/i.test(query.sql)) asked.push(query.sql);
    };
    const stream = frameByFrame(client);
    const next = (frameId: string) => stream.frame({ image, frameId, collection });
    const askedDuring = async (frameIds: string[]) => {
      asked.length = 0;
      for (const id of frameIds) assert.equal((await next(id)).faces[0].identifier, "obama");
      return asked.length;
    };
    assert.equal((await next("1")).faces[0].identifier, "obama");
    server.database.knex.on("query", record);
    try {
      // PGlite has one writer, this process: with nothing deleted since the last answer, that answer stands.
      const followed = await askedDuring(["2", "3", "4"]);
      assert.equal(followed, server.database.kind === "pglite" ? 0 : 3);
      // A deletion anywhere (here another collection's user) makes the next frame ask again, once.
      await client.deleteUser({ identifier: "someone-else", collection: "stream-existence-other" });
      const afterDeletion = await askedDuring(["5", "6"]);
      assert.equal(afterDeletion, server.database.kind === "pglite" ? 1 : 2);
    } finally {
      server.database.knex.off("query", record);
      stream.end();
    }
    assert.equal(await stream.done(), true);
  });

  it("names no one deleted, on a stream whose frames alternate between two collections", async () => {
    const image = face("face_recognition/obama.jpg");
    const [a, b] = ["stream-alternating-a", "stream-alternating-b"];
    for (const collection of [a, b]) await client.register({ identifier: "obama", image, collection });
    const stream = frameByFrame(client);
    const next = (frameId: string, collection: string) => stream.frame({ image, frameId, collection });
    try {
      assert.equal((await next("1", b)).faces[0].identifier, "obama");
      assert.equal((await next("2", a)).faces[0].identifier, "obama");
      await client.deleteUser({ identifier: "obama", collection: b });
      assert.equal((await next("3", a)).faces[0].identifier, "obama", "still a user of a");
      // The stream asked (about a) after the deletion, b's face not since: what is known of a says
      // nothing of b. (Passes since the tracker follows one collection at a time, searching a face
      // afresh when the collection changes; a guard should it ever follow several.)
      assert.equal((await next("4", b)).faces[0].identifier, "", "deleted from b");
    } finally {
      stream.end();
    }
    assert.equal(await stream.done(), true);
  });

  // A frame waits for the faces of the frame before; a frame that failed before finding any must
  // pass on the last good frame's. If it did not, this test times out (and the file, whose server
  // then waits for the stuck frame, meets --test-timeout).
  it("answers a bad frame with an error entry and goes on, looking near the last good frame's faces", { timeout: 60_000 }, async () => {
    const good = frames("frames")[0];
    const answers: SyncResponse[] = [];
    const requests = [{ image: good, frameId: "a" }, { image: new TextEncoder().encode("not a jpeg"), frameId: "b" }, { image: new Uint8Array(), frameId: "c" }, { image: good, frameId: "d" }];
    for await (const r of client.sync((async function* () { yield* requests; })())) answers.push(r);
    assert.deepEqual(answers.map((a) => a.frameId), ["a", "b", "c", "d"]);
    assert.equal(answers[1].error?.code, "invalid_argument");
    assert.equal(answers[2].error?.code, "invalid_argument");
    assert.equal(answers[3].error, undefined);
    assert.ok(answers[3].faces.length > 0);
    assert.equal(answers[3].flameGraph.filter((e) => e.label === "detect_near").length, answers[0].faces.length, "near frame a's faces, not read whole");
    assert.equal(answers[3].flameGraph.filter((e) => e.label === "detect_scan").length, 0);
  });

  it("registers an unknown face when the frame carries an identifier (SyncFrame over REST)", async () => {
    const image = face("face_recognition/obama.jpg");
    const form = new FormData();
    form.append("image", new Blob([Buffer.from(image)]), "frame.jpg");
    form.append("identifier", "obama");
    form.append("frame_id", "r1");
    const res = await fetch(`${server.url}/api/v1/sync`, { method: "POST", body: form });
    const body = await res.json();
    assert.equal(res.status, 200, JSON.stringify(body));
    assert.equal(body.frameId, "r1");
    assert.equal(body.faces[0].identifier, "obama");
    assert.equal(body.faces[0].registered, true);
    assert.ok(body.serverProcessTimeMs > 0);
    const again = await client.syncFrame({ image, frameId: "r2" });
    assert.equal(again.faces[0].identifier, "obama");
    assert.equal(again.faces[0].registered, false);
  });

  it("survives a long stream (2,000 frames) answering every frame in order", async () => {
    const clip = frames("frames30");
    let count = 0;
    const stream = client.sync((async function* () {
      for (let i = 0; i < 2000; i++) yield { image: clip[i % clip.length], frameId: String(i), collection: "long" };
    })());
    for await (const r of stream) {
      assert.equal(r.frameId, String(count));
      assert.equal(r.error, undefined);
      count++;
    }
    assert.equal(count, 2000);
  });
});
