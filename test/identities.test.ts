import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, readdir, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import sharp from "sharp";
import { FaceService } from "../gen/face/v1/face_pb.js";
import { reasonOf } from "./support/reason.js";
import { face } from "./support/testdata.js";
import { faceClient, startTestServer, useTestServer, type TestServer } from "./support/server.js";

const OBAMA = face("face_recognition/obama.jpg");
const OBAMA_2 = face("face_recognition/obama2.jpg");
/** A photo never registered, for queries. */
const OBAMA_3 = face("face_recognition/obama3.jpg");
const BIDEN = face("face_recognition/biden.jpg");
const AMY = face("faceapijs/amy1.png");

function codeOf(e: unknown): Code {
  return ConnectError.from(e).code;
}

/** The hashes of the photos kept: rows of image_bytes on a PostgreSQL server, files on PGlite. */
async function storedImages(server: TestServer): Promise<string[]> {
  if (server.database.kind === "postgres") {
    return (await server.database.knex("image_bytes").orderBy("sha256").select("sha256")).map((r: { sha256: string }) => r.sha256);
  }
  return filesOnDisk(server);
}

async function filesOnDisk(server: TestServer): Promise<string[]> {
  const root = join(server.dataDir, "images");
  const dirs = await readdir(root).catch(() => []);
  const files = await Promise.all(dirs.map(async (d) => (await readdir(join(root, d))).map((f) => f)));
  return files.flat();
}

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("identities: register, recognize, verify, users", () => {
  let server: TestServer;
  let client: Client<typeof FaceService>;
  useTestServer((s, c) => {
    server = s;
    client = c;
  });

  it("registers a person, and a second photo of the same identifier adds a reference", async () => {
    const first = await client.register({ identifier: "obama", image: OBAMA });
    assert.equal(first.created, true);
    assert.equal(first.imageSha256, sha256(OBAMA));
    assert.ok(first.face && first.face.box!.width > 100);
    assert.equal(first.face.landmarks.length, 5);
    assert.ok(first.flameGraph.some((e) => e.label === "embed"));
    const second = await client.register({ identifier: "obama", image: OBAMA_2 });
    assert.equal(second.created, false);
  });

  it("reads a big photo in full, and its tiles, only when its largest face may be among what they find", async () => {
    const scans = (reply: { flameGraph: { label: string }[] }) => reply.flameGraph.filter((e) => e.label === "detect_scan").length;
    // A portrait enlarged to 4000 px wide (as a phone takes it): the whole-frame pass shows its face
    // well over 64 px of the model's input.
    const portrait = new Uint8Array(await sharp(OBAMA).resize({ width: 4000 }).jpeg().toBuffer());
    const decodes = (reply: { flameGraph: { label: string }[] }) => reply.flameGraph.filter((e) => e.label === "decode").length;
    const recognized = await client.recognize({ image: portrait, collection: "tiles" });
    assert.equal(scans(recognized), 1, "Recognize needs the largest face only");
    assert.equal(decodes(recognized), 1, "a first look at 1280 px showed it");
    const detected = await client.detect({ image: portrait });
    assert.ok(scans(detected) > 1, "Detect reports every face, so it reads the tiles");
    // Found on a smaller copy, the box is still in the photo's own pixels.
    const [a, b] = [recognized.face!.box!, detected.faces[0].box!];
    for (const key of ["x", "y", "width", "height"] as const) assert.ok(Math.abs(a[key] - b[key]) < 0.02 * b.width, `${key}: ${a[key]} vs ${b[key]}`);
    // A ~40 px face in a 2560x1440 frame: only a tile of the full copy shows it.
    const small = await sharp(face("resolution/obama-240p.jpg")).resize({ height: 160 }).toBuffer();
    const frame = await sharp({ create: { width: 2560, height: 1440, channels: 3, background: "#9ab" } })
      .composite([{ input: small, left: 1700, top: 1000 }]).jpeg().toBuffer();
    const far = await client.recognize({ image: new Uint8Array(frame), collection: "tiles" });
    assert.ok(scans(far) > 1);
    assert.equal(decodes(far), 2, "the first look did not show it: decoded in full");
    // The full copy is not read at the first look's quarter size again: that read showed no face.
    assert.equal(far.flameGraph.filter((e) => e.label === "detect_quick").length, 1);
    assert.ok(far.face!.box!.x > 1700, JSON.stringify(far.face!.box));
  });

  it("keeps one reference when the same photo is registered twice for one user", async () => {
    await client.register({ identifier: "twice", image: BIDEN });
    const again = await client.register({ identifier: "twice", image: BIDEN });
    assert.equal(again.created, false);
    assert.equal((await client.exportUser({ identifier: "twice" })).faces.length, 1);
    await client.deleteUser({ identifier: "twice" });
  });

  it("stores the same image bytes once, whoever registers them", async () => {
    await client.register({ identifier: "obama-twin", image: OBAMA });
    const files = await storedImages(server);
    assert.equal(files.filter((f) => f === sha256(OBAMA)).length, 1);
    await client.deleteUser({ identifier: "obama-twin" });
    assert.ok((await storedImages(server)).includes(sha256(OBAMA)), "still referenced by obama");
  });

  it("recognizes the registered person and refuses a stranger", async () => {
    const hit = await client.recognize({ image: OBAMA_3, topK: 3 });
    assert.equal(hit.matched, true);
    assert.equal(hit.identifier, "obama");
    assert.ok(hit.distance < hit.threshold);
    assert.ok(Math.abs(hit.similarity - (1 - hit.distance)) < 1e-6);
    assert.equal(hit.candidates[0].identifier, "obama");

    const stranger = await client.recognize({ image: BIDEN });
    assert.equal(stranger.matched, false);
    assert.equal(stranger.identifier, "");
    assert.ok(stranger.distance > stranger.threshold);

    const strict = await client.recognize({ image: OBAMA_3, threshold: 0.01 });
    assert.equal(strict.matched, false, "a threshold override below the distance refuses the match");
  });

  it("returns top_k distinct users as candidates, closest first", async () => {
    await client.register({ identifier: "biden", image: BIDEN });
    await client.register({ identifier: "amy", image: AMY });
    const result = await client.recognize({ image: OBAMA_3, topK: 3 });
    assert.deepEqual(result.candidates.map((c) => c.identifier).sort(), ["amy", "biden", "obama"]);
    const distances = result.candidates.map((c) => c.distance);
    assert.deepEqual(distances, [...distances].sort((a, b) => a - b));
  });

  it("verifies 1:1 against an identifier or a second image", async () => {
    assert.equal((await client.verify({ image: OBAMA_3, identifier: "obama" })).verified, true);
    assert.equal((await client.verify({ image: OBAMA_3, identifier: "biden" })).verified, false);
    assert.equal((await client.verify({ image: OBAMA, image2: OBAMA_2 })).verified, true);
    assert.equal((await client.verify({ image: OBAMA, image2: BIDEN })).verified, false);
    await assert.rejects(client.verify({ image: OBAMA, identifier: "nobody" }), (e) => codeOf(e) === Code.NotFound);
    await assert.rejects(client.verify({ image: OBAMA }), (e) => codeOf(e) === Code.InvalidArgument);
  });

  it("refuses to verify a photo of two faces of similar size, as Register refuses it, in either image", async () => {
    // Obama and Biden, faces differing in area by under 1 %: Verify compared the one a hair larger,
    // so the photo verified as Obama (distance 0.245) and not as Biden (0.940), without saying which face it read.
    const both = face("multi/obama_and_biden.jpg");
    for (const request of [{ identifier: "obama" }, { identifier: "biden" }, { image2: OBAMA }]) {
      await assert.rejects(client.verify({ image: both, ...request }), (e) => codeOf(e) === Code.FailedPrecondition && reasonOf(e) === "MULTIPLE_FACES", JSON.stringify(Object.keys(request)));
    }
    await assert.rejects(client.verify({ image: OBAMA, image2: both }), (e) => reasonOf(e) === "MULTIPLE_FACES", "as image2");
    // A second face clearly smaller (0.74 of the largest's area) leaves no doubt which face is meant.
    const smallerSecond = face("multi/kit_with_rose.jpg");
    assert.equal((await client.verify({ image: smallerSecond, image2: smallerSecond })).verified, true);
  });

  it("pages through users in order", async () => {
    const first = await client.listUsers({ pageSize: 2 });
    assert.deepEqual(first.identifiers, ["amy", "biden"]);
    assert.notEqual(first.nextPageToken, "");
    const second = await client.listUsers({ pageSize: 2, pageToken: first.nextPageToken });
    assert.deepEqual(second.identifiers, ["obama"]);
    assert.equal(second.nextPageToken, "");
    await assert.rejects(client.listUsers({ pageToken: "not-a-token!" }), (e) => codeOf(e) === Code.InvalidArgument);
    // Well-formed base64url of a key PostgreSQL text cannot hold (it answered Internal).
    for (const key of ["\0", "obama\0"]) {
      await assert.rejects(client.listUsers({ pageToken: Buffer.from(key).toString("base64url") }), (e) => codeOf(e) === Code.InvalidArgument);
    }
  });

  it("returns the primary reference image raw, with its content type, over REST too", async () => {
    const body = await client.getUserFace({ identifier: "amy" });
    assert.equal(body.contentType, "image/png");
    assert.deepEqual(Buffer.from(body.data), Buffer.from(AMY));
    const rest = await fetch(`${server.url}/api/v1/users/obama/face`);
    assert.equal(rest.headers.get("content-type"), "image/jpeg");
    // Uploaded bytes served on the demo page's origin: never sniffed or run as a page.
    assert.equal(rest.headers.get("x-content-type-options"), "nosniff");
    assert.equal(rest.headers.get("content-security-policy"), "default-src 'none'; sandbox");
    assert.equal(sha256(new Uint8Array(await rest.arrayBuffer())), sha256(OBAMA));
  });

  it("refuses faces not fit to be a reference, with a reason", async () => {
    const blank = new Uint8Array(await sharp({ create: { width: 400, height: 300, channels: 3, background: "#808080" } }).jpeg().toBuffer());
    await assert.rejects(client.register({ identifier: "nobody", image: blank }), (e) => {
      const error = ConnectError.from(e);
      return error.code === Code.FailedPrecondition && reasonOf(e) === "NO_FACE";
    });
    const tiny = new Uint8Array(await sharp(OBAMA).resize({ width: 80 }).jpeg().toBuffer());
    await assert.rejects(client.register({ identifier: "tiny", image: tiny }), (e) => reasonOf(e) === "SMALL_FACE");
    const blurred = new Uint8Array(await sharp(OBAMA).blur(12).jpeg().toBuffer());
    await assert.rejects(client.register({ identifier: "blurred", image: blurred }), (e) => reasonOf(e) === "LOW_SHARPNESS");
    const rest = await fetch(`${server.url}/api/v1/register`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ identifier: "blurred", image: Buffer.from(blurred).toString("base64") }),
    });
    assert.equal(rest.status, 400);
    assert.equal((await rest.json()).reason, "LOW_SHARPNESS");
    assert.deepEqual((await client.listUsers({})).identifiers, ["amy", "biden", "obama"]);
  });

  it("refuses bad identifiers and images with InvalidArgument", async () => {
    for (const identifier of ["", "a/b", "x".repeat(129), "tab\there", " padded"]) {
      await assert.rejects(client.register({ identifier, image: OBAMA }), (e) => codeOf(e) === Code.InvalidArgument, JSON.stringify(identifier));
    }
    await assert.rejects(client.register({ identifier: "x", image: new Uint8Array() }), (e) => codeOf(e) === Code.InvalidArgument);
    await assert.rejects(client.register({ identifier: "x", image: OBAMA.subarray(0, 5000) }), (e) => codeOf(e) === Code.InvalidArgument);
    await assert.rejects(client.recognize({ image: new TextEncoder().encode("GIF89a not really") }), (e) => codeOf(e) === Code.InvalidArgument);
  });

  it("deletes a user with every embedding and the images nobody else references", async () => {
    const before = await storedImages(server);
    assert.ok(before.includes(sha256(BIDEN)));
    const deleted = await client.deleteUser({ identifier: "biden" });
    assert.equal(deleted.facesDeleted, 1);
    assert.equal(deleted.imagesDeleted, 1);
    assert.ok(!(await storedImages(server)).includes(sha256(BIDEN)));
    const again = await client.recognize({ image: BIDEN, topK: 5 });
    assert.ok(!again.candidates.some((c) => c.identifier === "biden"));
    await assert.rejects(client.deleteUser({ identifier: "biden" }), (e) => codeOf(e) === Code.NotFound);
  });
});

describe("auto-healing", () => {
  let server: TestServer;
  let client: Client<typeof FaceService>;
  useTestServer((s, c) => {
    server = s;
    client = c;
  });

  it("makes a matching 1080p face the primary reference and keeps the registered 240p photo", async () => {
    const low = face("resolution/obama-240p.jpg");
    const high = face("resolution/obama-1080p.jpg");
    await client.register({ identifier: "obama", image: low });
    const result = await client.recognize({ image: high });
    assert.equal(result.matched, true);
    assert.equal(result.profileUpgraded, true);
    const stored = await client.getUserFace({ identifier: "obama" });
    assert.equal(sha256(stored.data), sha256(high));
    const exported = await client.exportUser({ identifier: "obama" });
    assert.deepEqual(
      exported.faces.map((f) => [f.imageSha256, f.autoAdded, f.primary]),
      [[sha256(low), false, false], [sha256(high), true, true]],
      "the registered photo stays a reference",
    );
    assert.ok((await storedImages(server)).includes(sha256(low)), "the registered image is kept");
    const again = await client.recognize({ image: high });
    assert.equal(again.profileUpgraded, false, "the same face is not better than itself");
    const lowAgain = await client.recognize({ image: low });
    assert.equal(lowAgain.matched, true);
    assert.equal(lowAgain.profileUpgraded, false, "a worse face never replaces a better one");
  });

  it("never upgrades on a weak match", async () => {
    const weak = await client.recognize({ image: BIDEN, threshold: 2 });
    assert.equal(weak.matched, true, "threshold 2 matches anyone");
    assert.equal(weak.profileUpgraded, false);
    const stored = await client.getUserFace({ identifier: "obama" });
    assert.notEqual(sha256(stored.data), sha256(BIDEN));
  });
});

describe("auto-healing bounds", () => {
  it("keeps at most FACE_UPGRADE_MAX_FACES auto-added faces, the newest, and every registered one", async () => {
    const server = await startTestServer({ FACE_UPGRADE_MAX_FACES: "1" });
    const client = faceClient(server);
    try {
      const [low, mid, high] = ["240p", "480p", "720p"].map((p) => face(`resolution/obama-${p}.jpg`));
      await client.register({ identifier: "obama", image: low });
      assert.equal((await client.recognize({ image: mid })).profileUpgraded, true);
      assert.equal((await client.recognize({ image: high })).profileUpgraded, true);
      const exported = await client.exportUser({ identifier: "obama" });
      assert.deepEqual(exported.faces.map((f) => [f.imageSha256, f.autoAdded, f.primary]), [[sha256(low), false, false], [sha256(high), true, true]]);
      assert.ok(!(await storedImages(server)).includes(sha256(mid)), "the pruned capture's image is gone");
    } finally {
      await server.close();
    }
  });

  it("never changes references when FACE_AUTO_UPGRADE=false", async () => {
    const server = await startTestServer({ FACE_AUTO_UPGRADE: "false" });
    const client = faceClient(server);
    try {
      await client.register({ identifier: "obama", image: face("resolution/obama-240p.jpg") });
      const result = await client.recognize({ image: face("resolution/obama-1080p.jpg") });
      assert.equal(result.matched, true);
      assert.equal(result.profileUpgraded, false);
      assert.equal((await client.exportUser({ identifier: "obama" })).faces.length, 1);
    } finally {
      await server.close();
    }
  });
});

describe("two service instances on one database", () => {
  let a: TestServer;
  let b: TestServer;
  before(async () => {
    a = await startTestServer();
    b = await startTestServer({}, a);
  });
  after(async () => {
    await b.close();
    await a.close();
  });

  it("recognizes through one instance a person registered through the other", async () => {
    const clientA = faceClient(a);
    const clientB = faceClient(b);
    await clientA.register({ identifier: "obama", image: OBAMA });
    const seen = await clientB.recognize({ image: OBAMA_3 });
    assert.equal(seen.identifier, "obama");
    await clientB.deleteUser({ identifier: "obama" });
    assert.equal((await clientA.recognize({ image: OBAMA_3 })).matched, false);
  });
});

describe("a failed register leaves nothing behind", () => {
  const onServer = process.env.TEST_DATABASE_URL ? "on a PostgreSQL server photos are written in the registration's transaction: no file to leave behind" : false;
  it("removes at start the image files a killed process left without a row", { skip: onServer }, async () => {
    const first = await startTestServer();
    const client = faceClient(first);
    await client.register({ identifier: "obama", image: OBAMA });
    await first.close(true);
    // What a process killed between writing the file and committing the row leaves behind.
    const orphan = "ab".repeat(32);
    const dir = join(first.dataDir, "images", "ab");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, orphan), "half a registration");
    await writeFile(join(dir, `${orphan}.1234.tmp`), "half a file");
    const old = new Date(Date.now() - 3_600_000);
    for (const f of [orphan, `${orphan}.1234.tmp`]) await utimes(join(dir, f), old, old);
    const restarted = await startTestServer({}, undefined, first);
    try {
      const files = await storedImages(restarted);
      assert.deepEqual(files, [sha256(OBAMA)]);
    } finally {
      await restarted.close();
    }
  });

  it("answers Unavailable when the database is gone, and writes no orphan image", async () => {
    const server = await startTestServer();
    const client = faceClient(server);
    try {
      await server.database.close();
      await assert.rejects(client.register({ identifier: "obama", image: OBAMA }), (e) => codeOf(e) === Code.Unavailable);
      assert.deepEqual(await filesOnDisk(server), []);
      const health = await fetch(`${server.url}/health`);
      assert.equal(health.status, 503);
    } finally {
      await server.close();
    }
  });
});

describe("top_k with a user of many faces", () => {
  // The search through the index (PostgreSQL; on PGlite a collection too large to hold in memory,
  // here every collection) reads a few faces per requested user: a user with more faces near the
  // query than that must not crowd the others out of the candidates.
  let client: Client<typeof FaceService>;
  useTestServer((_, c) => {
    client = c;
  }, { FACE_EXACT_SEARCH_MAX_FACES: "0" });

  it("returns top_k distinct users though the closest holds a dozen faces", async () => {
    // Twelve different photos of one person: the two photos at six sizes each.
    for (const photo of [OBAMA, OBAMA_2]) {
      const { width } = await sharp(photo).metadata();
      for (const share of [1, 0.95, 0.9, 0.85, 0.8, 0.75]) {
        await client.register({ identifier: "obama", image: await sharp(photo).resize(Math.round(width! * share)).jpeg({ quality: 92 }).toBuffer() });
      }
    }
    await client.register({ identifier: "biden", image: BIDEN });
    await client.register({ identifier: "amy", image: AMY });
    const result = await client.recognize({ image: OBAMA_3, topK: 3 });
    assert.deepEqual(result.candidates.map((c) => c.identifier).sort(), ["amy", "biden", "obama"]);
    assert.equal(result.identifier, "obama");
  });
});
