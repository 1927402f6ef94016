import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Client } from "@connectrpc/connect";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { face } from "./support/testdata.js";
import { useTestServer } from "./support/server.js";
import { frameByFrame } from "./support/request-queue.js";

/**
 * A frame's `identifier` asks to register the person it names, not whoever else is unknown in the
 * view: a stranger registered under someone's name is then recognized as them. Until 2026-12-05 a
 * frame registered its largest unknown face even with that person already in view, and every frame
 * of a stream sent with the identifier registered a newcomer once the person was known; and a
 * frame registered the larger of two unknown faces of about the same size, where Register refuses
 * the same photo as ambiguous.
 */
describe("a Sync frame's identifier registers only the person it names", () => {
  let client: Client<typeof FaceService>;
  useTestServer(async (_s, c) => {
    client = c;
  });
  const obama = face("face_recognition/obama.jpg");
  const biden = face("face_recognition/biden.jpg");
  const both = face("multi/obama_and_biden.jpg");

  /** Who `image`'s largest face is recognized as in `collection` ("" for nobody). */
  const recognizedAs = async (image: Uint8Array, collection: string) => (await client.recognize({ image, collection })).identifier;

  it("registers no one else while the person is in view (SyncFrame)", async () => {
    const collection = "frame-in-view";
    await client.register({ identifier: "obama", image: obama, collection });
    const answer = await client.syncFrame({ image: both, identifier: "obama", collection });
    // Obama, Biden (the largest unknown face) and a third person.
    assert.equal(answer.faces.length, 3);
    assert.deepEqual(answer.faces.map((f) => f.registered), [false, false, false]);
    assert.deepEqual(answer.faces.map((f) => f.identifier).sort(), ["", "", "obama"]);
    assert.equal(await recognizedAs(biden, collection), "");
    assert.equal(await recognizedAs(obama, collection), "obama");
  });

  it("registers no one when two unknown faces of similar size could be the person, as Register refuses such a photo", async () => {
    const collection = "frame-ambiguous";
    // Obama's and Biden's faces differ in area by under 1 %: "the largest" is a coin toss.
    await assert.rejects(client.register({ identifier: "someone", image: both, collection }), /several faces of similar size/);
    const answer = await client.syncFrame({ image: both, identifier: "someone", collection });
    assert.equal(answer.faces.length, 3);
    assert.deepEqual(answer.faces.map((f) => [f.identifier, f.registered]), [["", false], ["", false], ["", false]]);
    // Nor when the frame asks for its largest face only: the other is still there.
    const largest = await client.syncFrame({ image: both, identifier: "someone", collection, maxFaces: 1 });
    assert.deepEqual(largest.faces.map((f) => [f.identifier, f.registered]), [["", false]]);
    // With one of them known, the other is no longer ambiguous.
    await client.register({ identifier: "obama", image: obama, collection });
    const named = await client.syncFrame({ image: both, identifier: "biden", collection });
    assert.deepEqual(named.faces.filter((f) => f.registered).map((f) => f.identifier), ["biden"]);
    assert.equal(await recognizedAs(biden, collection), "biden");
  });

  it("registers one face under an identifier per stream, not each newcomer after it (Sync)", async () => {
    const collection = "stream-newcomers";
    const stream = frameByFrame(client);
    const first = await stream.frame({ image: obama, identifier: "obama", collection, frameId: "1" });
    assert.equal(first.faces[0].registered, true);
    // The person leaves and someone else comes into view, the client still sending the identifier.
    const stranger = await stream.frame({ image: biden, identifier: "obama", collection, frameId: "2" });
    assert.deepEqual(stranger.faces.map((f) => [f.identifier, f.registered]), [["", false]]);
    const together = await stream.frame({ image: both, identifier: "obama", collection, frameId: "3" });
    assert.ok(together.faces.every((f) => !f.registered));
    stream.end();
    assert.ok(await stream.done());
    assert.equal(await recognizedAs(biden, collection), "");
    // Another identifier in the same stream is a new request and registers its person.
    const other = frameByFrame(client);
    assert.equal((await other.frame({ image: obama, identifier: "obama", collection: "stream-other", frameId: "1" })).faces[0].registered, true);
    assert.equal((await other.frame({ image: biden, identifier: "biden", collection: "stream-other", frameId: "2" })).faces[0].registered, true);
    other.end();
    assert.ok(await other.done());
    assert.equal(await recognizedAs(biden, "stream-other"), "biden");
  });

  it("registers no newcomer after the stream found the person already registered (Sync)", async () => {
    const collection = "stream-known";
    await client.register({ identifier: "obama", image: obama, collection });
    const stream = frameByFrame(client);
    const known = await stream.frame({ image: obama, identifier: "obama", collection, frameId: "1" });
    assert.deepEqual(known.faces.map((f) => [f.identifier, f.registered]), [["obama", false]]);
    // Obama leaves and Biden comes into view, the client still sending Obama's identifier.
    const stranger = await stream.frame({ image: biden, identifier: "obama", collection, frameId: "2" });
    assert.deepEqual(stranger.faces.map((f) => [f.identifier, f.registered]), [["", false]]);
    stream.end();
    assert.ok(await stream.done());
    assert.equal(await recognizedAs(biden, collection), "");
  });

  it("does not register again a person deleted while the stream follows them (Sync)", async () => {
    const collection = "stream-deleted";
    await client.register({ identifier: "obama", image: obama, collection });
    const stream = frameByFrame(client);
    assert.equal((await stream.frame({ image: obama, identifier: "obama", collection, frameId: "1" })).faces[0].identifier, "obama");
    await client.deleteUser({ identifier: "obama", collection });
    const after = await stream.frame({ image: obama, identifier: "obama", collection, frameId: "2" });
    assert.deepEqual(after.faces.map((f) => [f.identifier, f.registered]), [["", false]]);
    stream.end();
    assert.ok(await stream.done());
    assert.equal(await recognizedAs(obama, collection), "");
  });
});
