import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { describe, it } from "node:test";
import { gunzipSync } from "node:zlib";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import { toBinary } from "@bufbuild/protobuf";
import { ExportUserResponseSchema, type ExportUserResponse, type FaceService } from "../gen/face/v1/face_pb.js";
import { MAX_WEBHOOKS_PER_COLLECTION } from "../src/store/webhooks.js";
import { EXPORT_PAGE_BYTES, EXPORT_PAGE_DETECTIONS } from "../src/service/export-pages.js";
import { largePhotos } from "./support/photos.js";
import { face } from "./support/testdata.js";
import { useTestServer, type TestServer } from "./support/server.js";

const OBAMA = face("face_recognition/obama.jpg");
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");
const codeOf = (e: unknown) => ConnectError.from(e).code;
/** The longest the event loop may be held while a page is written as JSON (and read by fetch in this process). */
const MAX_STALL_MS = 100;

/** Every page of a user's export, following next_page_token. */
async function allPages(client: Client<typeof FaceService>, identifier: string): Promise<ExportUserResponse[]> {
  const pages = [await client.exportUser({ identifier })];
  while (pages[pages.length - 1].nextPageToken !== "") pages.push(await client.exportUser({ identifier, pageToken: pages[pages.length - 1].nextPageToken }));
  return pages;
}

describe("ExportUser, a page at a time", () => {
  let server: TestServer;
  let client: Client<typeof FaceService>;
  let photos: Buffer[];
  useTestServer(async (s, c) => {
    server = s;
    client = c;
    photos = await largePhotos(OBAMA);
    for (const image of photos) await client.register({ identifier: "obama", image });
    for (const image of photos.slice(0, 2)) await client.register({ identifier: "json", image });
    await client.createWebhook({ url: "http://8.8.8.8/hook", identifier: "obama" });
  });

  it("gives every face once, oldest first, at most 2 MiB of photos a page, and the webhooks on the first page", async () => {
    const pages = await allPages(client, "obama");
    assert.deepEqual(pages.flatMap((p) => p.faces.map((f) => f.imageSha256)), photos.map(sha256));
    assert.deepEqual(pages.flatMap((p) => p.faces.map((f) => sha256(f.image))), photos.map(sha256));
    assert.deepEqual(pages.map((p) => p.faces.length), [2, 1, 1, 1]);
    for (const page of pages) {
      const bytes = page.faces.reduce((sum, f) => sum + f.image.length, 0);
      assert.ok(bytes <= EXPORT_PAGE_BYTES || page.faces.length === 1, `a page of ${bytes} bytes of photos`);
      assert.deepEqual([page.identifier, page.collection, page.createdAt], [pages[0].identifier, pages[0].collection, pages[0].createdAt]);
    }
    assert.deepEqual(pages.map((p) => p.webhooks.length), [1, 0, 0, 0]);
  });

  it("gives every detection log entry, newest first, 1000 a page (10,000 were all an export gave)", async () => {
    const count = 10_050;
    await server.database.knex.raw(
      `INSERT INTO detections (collection, identifier, frame_id, track_id, box_x, box_y, box_width, box_height, confidence, distance)
       SELECT 'default', 'obama', 'f' || n, 1, 0, 0, 10, 10, 0.9, 0.1 FROM generate_series(1, ?) n`,
      [count],
    );
    const pages = await allPages(client, "obama");
    assert.ok(pages.every((p) => p.detections.length <= EXPORT_PAGE_DETECTIONS));
    const frames = pages.flatMap((p) => p.detections.map((d) => d.frameId));
    assert.equal(frames.length, count);
    assert.deepEqual(frames, Array.from({ length: count }, (_, i) => `f${count - i}`));
    assert.equal(pages.flatMap((p) => p.faces).length, photos.length, "the faces still once each");
  });

  it("gives the pages over REST, the next page's token in the body", async () => {
    let faces = 0;
    let pages = 0;
    for (let token = ""; pages === 0 || token !== ""; pages++) {
      const answer = await fetch(`${server.url}/api/v1/users/obama/export?page_token=${encodeURIComponent(token)}`);
      assert.equal(answer.status, 200);
      const body = await answer.json();
      faces += body.faces.length;
      token = body.nextPageToken;
    }
    assert.equal(faces, photos.length);
    assert.equal(pages, Math.ceil(10_050 / EXPORT_PAGE_DETECTIONS));
  });

  it("writes a page's photos as JSON (REST, Connect) byte for byte without holding the service's other calls", async (t) => {
    // The server is in this process: its event loop is this one. protobuf-es's JavaScript base64
    // held it 300-500 ms for a page of 2 MB of photos; natively it is about a millisecond a megabyte.
    // "json", a user of their own (registered above): reading obama's 10,000 detection log entries holds the loop too.
    // Both read with fetch and JSON.parse (native): connect-es's own client decodes base64 in JavaScript too.
    const pageOf = async (answer: Promise<Response>) => ((await (await answer).json()) as { faces: { image: string }[] }).faces.map((f) => Buffer.from(f.image, "base64"));
    const reads = {
      rest: () => pageOf(fetch(`${server.url}/api/v1/users/json/export`)),
      connect: () => pageOf(fetch(`${server.url}/face.v1.FaceService/ExportUser`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ identifier: "json" }) })),
    };
    for (const [protocol, read] of Object.entries(reads)) {
      const stalls = monitorEventLoopDelay({ resolution: 5 });
      stalls.enable();
      const images = await read();
      stalls.disable();
      assert.deepEqual(images.map(sha256), photos.slice(0, 2).map(sha256), protocol);
      const longestMs = stalls.max / 1e6;
      t.diagnostic(`${protocol}: the event loop held at most ${longestMs.toFixed(1)} ms`);
      assert.ok(longestMs < MAX_STALL_MS, `${protocol}: the event loop held ${longestMs.toFixed(0)} ms`);
    }
  });

  it("compresses a Connect JSON page as connect-es did when the client takes gzip", async () => {
    const answer = await new Promise<{ headers: IncomingHttpHeaders; body: Buffer }>((resolve, reject) => {
      const call = httpRequest(`${server.url}/face.v1.FaceService/ExportUser`, { method: "POST", headers: { "content-type": "application/json", "accept-encoding": "gzip" } }, (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (c: Buffer) => chunks.push(c)).on("end", () => resolve({ headers: response.headers, body: Buffer.concat(chunks) })).on("error", reject);
      });
      call.on("error", reject).end(JSON.stringify({ identifier: "json" }));
    });
    assert.equal(answer.headers["content-encoding"], "gzip");
    assert.equal(answer.headers["content-type"], "application/json");
    const page = JSON.parse(gunzipSync(answer.body).toString("utf8")) as { faces: { image: string }[] };
    assert.deepEqual(page.faces.map((f) => sha256(Buffer.from(f.image, "base64"))), photos.slice(0, 2).map(sha256));
  });

  it("keeps a first page under 4 MiB with the longest detection log entries and the most webhooks", async () => {
    // The budget counts photos and embeddings; the entries and webhooks beside them are bounded by
    // their own limits: 1000 entries of 128 three-byte characters of frame_id, 100 webhooks of
    // 2048-character URLs (one was created above).
    await server.database.knex.raw(
      `INSERT INTO detections (collection, identifier, frame_id, track_id, box_x, box_y, box_width, box_height, confidence, distance)
       SELECT 'default', 'obama', repeat('€', 128), n, 0, 0, 10, 10, 0.9, 0.1 FROM generate_series(1, ?) n`,
      [EXPORT_PAGE_DETECTIONS],
    );
    for (let i = 1; i < MAX_WEBHOOKS_PER_COLLECTION; i++) {
      const url = `http://8.8.8.8/${String(i).padStart(3, "0")}/${"x".repeat(2048 - 19)}`;
      await client.createWebhook({ url, identifier: "obama" });
    }
    const first = await client.exportUser({ identifier: "obama" });
    assert.equal(first.detections.length, EXPORT_PAGE_DETECTIONS);
    assert.equal(first.webhooks.length, MAX_WEBHOOKS_PER_COLLECTION);
    const bytes = toBinary(ExportUserResponseSchema, first).length;
    assert.ok(bytes < 4 * 1024 * 1024, `a first page of ${bytes} bytes`);
  });

  it("refuses a page token not given by the service, another user's, or one of a user deleted and registered again", async () => {
    await client.register({ identifier: "amy", image: face("faceapijs/amy1.png") });
    const token = (await client.exportUser({ identifier: "obama" })).nextPageToken;
    for (const [identifier, pageToken] of [["amy", token], ["obama", "bm90IGEgdG9rZW4"], ["obama", `${token}!`]]) {
      await assert.rejects(client.exportUser({ identifier, pageToken }), (e) => codeOf(e) === Code.InvalidArgument, `${identifier} ${pageToken}`);
    }
    for (const image of photos.slice(0, 3)) await client.register({ identifier: "again", image });
    const old = (await client.exportUser({ identifier: "again" })).nextPageToken;
    await client.deleteUser({ identifier: "again" });
    await assert.rejects(client.exportUser({ identifier: "again", pageToken: old }), (e) => codeOf(e) === Code.NotFound);
    await client.register({ identifier: "again", image: photos[0] });
    await assert.rejects(client.exportUser({ identifier: "again", pageToken: old }), (e) => {
      assert.equal(codeOf(e), Code.InvalidArgument);
      assert.match(ConnectError.from(e).message, /page_token belongs to another user's export/);
      return true;
    });
  });
});
