import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { face, FACES_DIR, manifest } from "./support/testdata.js";
import { faceClient, startTestServer } from "./support/server.js";

/** How long the mixed load runs; bounded so CI stays fast. */
const SOAK_MS = Number(process.env.FACE_SOAK_MS ?? 20_000);
const MIB = 1024 * 1024;

describe("soak", () => {
  it(`serves concurrent register, recognize and stream clients for ${SOAK_MS / 1000} s without an error or a lost registration`, async () => {
    const server = await startTestServer();
    try {
      const client = faceClient(server);
      const photos = manifest().filter((e) => !e.file.startsWith("faceapijs/")).map((e) => face(e.file));
      const frames = readdirSync(join(FACES_DIR, "video/frames")).sort().map((f) => face(`video/frames/${f}`));
      const rssStart = process.memoryUsage().rss;
      const stop = Date.now() + SOAK_MS;
      const registered: string[] = [];
      const counts = { register: 0, recognize: 0, frames: 0 };

      const registrar = async (worker: number) => {
        for (let i = 0; Date.now() < stop; i++) {
          const identifier = `person-${worker}-${i}`;
          await client.register({ identifier, image: photos[(worker * 7 + i) % photos.length] }).then(
            () => registered.push(identifier),
            (e) => assert.match(String(e), /failed_precondition/, `register ${identifier}: ${e}`),
          );
          counts.register++;
        }
      };
      const recognizer = async () => {
        for (let i = 0; Date.now() < stop; i++) {
          await client.recognize({ image: photos[i % photos.length], topK: 3 });
          counts.recognize++;
        }
      };
      const streamer = async () => {
        const answers = client.sync((async function* () {
          for (let i = 0; Date.now() < stop; i++) yield { image: frames[i % frames.length], frameId: String(i) };
        })());
        for await (const answer of answers) {
          assert.equal(answer.error, undefined);
          counts.frames++;
        }
      };
      await Promise.all([registrar(0), registrar(1), recognizer(), recognizer(), streamer()]);

      const listed = new Set<string>();
      let pageToken = "";
      do {
        const page = await client.listUsers({ pageSize: 1000, pageToken });
        page.identifiers.forEach((id) => listed.add(id));
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      for (const id of registered) assert.ok(listed.has(id), `${id} was acknowledged but is not stored`);
      const rssEnd = process.memoryUsage().rss;
      process.stdout.write(`# soak: ${JSON.stringify(counts)}; RSS ${(rssStart / MIB).toFixed(0)} MiB at start, ${(rssEnd / MIB).toFixed(0)} MiB at end\n`);
      assert.ok(counts.register > 10 && counts.recognize > 10 && counts.frames > 10, JSON.stringify(counts));
      assert.ok(rssEnd - rssStart < 600 * MIB, "memory grows without bound");
    } finally {
      await server.close();
    }
  });
});
