import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { create, equals, fromJson, toJson, type DescMessage, type Message } from "@bufbuild/protobuf";
import { ExportUserResponseSchema, RecognizeRequestSchema, VerifyRequestSchema } from "../gen/face/v1/face_pb.js";
import { HttpBodySchema } from "../gen/google/api/httpbody_pb.js";
import { messageFromJson, messageToJson } from "../src/transport/proto-json.js";

const bytes = (n: number) => new Uint8Array(randomBytes(n));

/** Messages with bytes at every depth this service's messages have them, some empty. */
const samples: [DescMessage, Message][] = [
  [RecognizeRequestSchema, create(RecognizeRequestSchema, { image: bytes(1000), collection: "c", topK: 3 })],
  [RecognizeRequestSchema, create(RecognizeRequestSchema, { collection: "no photo" })],
  [VerifyRequestSchema, create(VerifyRequestSchema, { image: bytes(10), image2: bytes(11), identifier: "x" })],
  [
    ExportUserResponseSchema,
    create(ExportUserResponseSchema, { identifier: "obama", faces: [{ image: bytes(3000), imageSha256: "a", embedding: [0.5, -0.25] }, { imageSha256: "no photo" }, { image: bytes(1) }] }),
  ],
  [HttpBodySchema, create(HttpBodySchema, { contentType: "image/jpeg", data: bytes(500) })],
];

describe("protobuf JSON with native base64 (proto-json.ts)", () => {
  it("writes what protobuf-es's toJson writes, with every option the service uses, and leaves the message as it was", () => {
    for (const [schema, message] of samples) {
      for (const options of [undefined, { alwaysEmitImplicit: true }, { useProtoFieldName: true }, { alwaysEmitImplicit: true, useProtoFieldName: true }]) {
        const before = toJson(schema, message, options);
        assert.deepEqual(messageToJson(schema, message, options), before, `${schema.typeName} ${JSON.stringify(options)}`);
        assert.deepEqual(toJson(schema, message, options), before, "the message is unchanged");
      }
    }
  });

  it("reads what protobuf-es's fromJson reads: either field name, standard or URL-safe base64, unknown fields ignored", () => {
    const image = bytes(4000);
    const read = messageFromJson(VerifyRequestSchema, {
      image: Buffer.from(image).toString("base64url"),
      image2: Buffer.from(image).toString("base64").replace(/=+$/, ""),
      identifier: "x",
      threshold: 0.5,
      not_a_field: 1,
    });
    const expected = fromJson(VerifyRequestSchema, { image: Buffer.from(image).toString("base64"), image2: Buffer.from(image).toString("base64"), identifier: "x", threshold: 0.5 });
    assert.ok(equals(VerifyRequestSchema, read.message as never, expected));
  });

  it("refuses a bytes field that is not base64 (Buffer.from alone decodes around a bad character) and other fields as fromJson does", () => {
    const text = Buffer.from(bytes(300)).toString("base64");
    assert.throws(() => messageFromJson(RecognizeRequestSchema, { image: `${text.slice(0, 200)}*${text.slice(201)}` }), /field image: not valid base64/);
    assert.throws(() => messageFromJson(RecognizeRequestSchema, { image: text, top_k: "many" }), /top_k/);
  });
});
