import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { migrate } from "../src/store/database.js";
import { face } from "./support/testdata.js";
import { useTestServer, type TestServer } from "./support/server.js";

/** "José" as macOS spells file and folder names (e + combining acute) and as most keyboards type it. */
const JOSE_DECOMPOSED = "Jose\u0301";
const JOSE_COMPOSED = "Jos\u00e9";

/** People's names as their own scripts write them: vowel signs and tone marks are combining marks. */
describe("identifiers in every script, in either Unicode form", () => {
  let server: TestServer;
  let client: Client<typeof FaceService>;
  useTestServer((s, c) => {
    server = s;
    client = c;
  });

  it("registers names whose letters carry combining marks (Devanagari, Thai, Tamil)", async () => {
    const names = ["राहुल", "สมศักดิ์", "தமிழ்"];
    const photos = ["faceapijs/raj1.png", "faceapijs/penny1.png", "faceapijs/howard1.png"];
    for (const [i, identifier] of names.entries()) {
      const registered = await client.register({ identifier, image: face(photos[i]) });
      assert.equal(registered.created, true, identifier);
    }
    const listed = (await client.listUsers({})).identifiers;
    for (const name of names) assert.ok(listed.includes(name), name);
    const recognized = await client.recognize({ image: face("faceapijs/raj2.png") });
    assert.equal(recognized.identifier, "राहुल");
  });

  it("takes a name typed decomposed and composed as one user, and answers it composed", async () => {
    const first = await client.register({ identifier: JOSE_DECOMPOSED, image: face("face_recognition/obama.jpg") });
    assert.equal(first.created, true);
    const second = await client.register({ identifier: JOSE_COMPOSED, image: face("face_recognition/obama2.jpg") });
    assert.equal(second.created, false, "the composed spelling adds a photo to the same user");
    const listed = (await client.listUsers({})).identifiers.filter((n) => n.normalize("NFC") === JOSE_COMPOSED);
    assert.deepEqual(listed, [JOSE_COMPOSED]);
    assert.equal((await client.recognize({ image: face("face_recognition/obama3.jpg") })).identifier, JOSE_COMPOSED);
    assert.equal((await client.getUserFace({ identifier: JOSE_DECOMPOSED })).contentType, "image/jpeg");
    const rest = await fetch(`${server.url}/api/v1/users/${encodeURIComponent(JOSE_DECOMPOSED)}/face`);
    assert.equal(rest.status, 200);
    await rest.arrayBuffer();
  });

  it("reaches a user of the longest identifier (128 characters, ASCII or not) over REST as over gRPC", async () => {
    for (const identifier of ["a".repeat(128), "\u017d".repeat(128)]) {
      assert.equal((await client.register({ identifier, image: face("face_recognition/biden.jpg") })).created, true);
      const path = `${server.url}/api/v1/users/${encodeURIComponent(identifier)}`;
      const photo = await fetch(`${path}/face`);
      assert.equal(photo.status, 200, `GET .../face of ${identifier.length} characters`);
      await photo.arrayBuffer();
      const exported = await fetch(`${path}/export`);
      assert.equal((await exported.json()).identifier, identifier);
      assert.equal((await fetch(path, { method: "DELETE" })).status, 200);
    }
  });

  it("answers a path the router cannot take (too long, not UTF-8) with the service's error body", async () => {
    for (const [path, status] of [[`/api/v1/users/${"a".repeat(5000)}/face`, 414], ["/api/v1/users/%ff%fe/face", 400]] as const) {
      const answer = await fetch(`${server.url}${path}`);
      assert.equal(answer.status, status, path.slice(0, 40));
      const body = await answer.json();
      assert.equal(body.code, "invalid_argument");
      assert.match(body.message, /path/);
      assert.equal(body.requestId, answer.headers.get("x-request-id"));
    }
    const grpcPath = await fetch(`${server.url}/face.v1.FaceService/%ff`, { method: "POST", headers: { "content-type": "application/grpc-web+proto" } });
    assert.equal(grpcPath.headers.get("grpc-status"), String(Code.InvalidArgument), "a gRPC client is answered in gRPC");
  });

  it("refuses a combining mark with no letter or digit before it", async () => {
    for (const identifier of ["\u0301abc", "ab \u0301", "a_\u0301"]) {
      await assert.rejects(
        client.register({ identifier, image: face("face_recognition/biden.jpg") }),
        (e) => ConnectError.from(e).code === Code.InvalidArgument,
        JSON.stringify(identifier),
      );
    }
  });

  it("composes identifiers stored before migration 010, in users, webhooks and the detection log", async () => {
    const { knex } = server.database;
    await knex("knex_migrations").where({ name: "010_composed_identifiers.sql" }).delete();
    // U+F900 is a CJK compatibility ideograph: a letter the old rule took, which composes to U+8C48.
    const legacy = "\uf900";
    await knex.raw("INSERT INTO collections (name) VALUES ('legacy')");
    for (const identifier of [legacy, "\u2126hm", "\u03a9hm"]) await knex.raw("INSERT INTO users (collection, identifier) VALUES ('legacy', ?)", [identifier]);
    for (const identifier of [legacy, "\u2126hm"]) {
      await knex.raw(
        "INSERT INTO detections (collection, identifier, frame_id, track_id, box_x, box_y, box_width, box_height, confidence, distance) VALUES ('legacy', ?, 'f', 1, 0, 0, 1, 1, 1, 0)",
        [identifier],
      );
    }
    await knex.raw("INSERT INTO webhooks (id, collection, url, identifier, events, secret) VALUES (gen_random_uuid(), 'legacy', 'https://example.com/h', ?, '{}', 's')", [legacy]);
    assert.deepEqual(await migrate(knex), ["010_composed_identifiers.sql"]);
    const users = (await knex("users").where({ collection: "legacy" }).orderBy("identifier").pluck("identifier")) as string[];
    // The sign ohm (U+2126) composes to the letter omega (U+03A9), a user of that name already: left as it was.
    assert.deepEqual(users, ["\u03a9hm", "\u2126hm", "\u8c48"].sort());
    assert.deepEqual((await knex("detections").where({ collection: "legacy" }).pluck("identifier")).sort(), ["\u2126hm", "\u8c48"].sort());
    assert.deepEqual(await knex("webhooks").where({ collection: "legacy" }).pluck("identifier"), ["\u8c48"]);
  });
});
