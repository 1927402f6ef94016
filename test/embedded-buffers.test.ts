/**
 * The embedded database sizes its buffer cache from its data at start: a gallery whose index does
 * not fit the default 128 MB is read through PGlite's file layer on every search otherwise.
 */
import assert from "node:assert/strict";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { openDatabase } from "../src/store/database.js";
import { relationBytesIn, sharedBuffersMbFor } from "../src/store/embedded-buffers.js";

const MB = 2 ** 20;

test("shared_buffers covers the relations, in 64 MB steps, between 128 MB and 512 MB", () => {
  assert.equal(sharedBuffersMbFor(0), 128);
  assert.equal(sharedBuffersMbFor(79 * MB), 128);
  assert.equal(sharedBuffersMbFor(200 * MB), 256);
  assert.equal(sharedBuffersMbFor(320 * MB), 320);
  assert.equal(sharedBuffersMbFor(585 * MB), 512);
  assert.equal(sharedBuffersMbFor(50_000 * MB), 512);
});

test("a PGlite database with more data than the default buffers gets larger ones at its next start", { skip: process.env.TEST_DATABASE_URL ? "embedded database only" : false }, async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "face-buffers-test-"));
  const sharedBuffers = async () => {
    const database = await openDatabase({ databaseUrl: undefined, dataDir });
    try {
      return (await database.knex.raw("SHOW shared_buffers")).rows[0].shared_buffers as string;
    } finally {
      await database.close();
    }
  };
  try {
    assert.equal(await relationBytesIn(join(dataDir, "pgdata")), 0, "nothing on disk yet");
    assert.equal(await sharedBuffers(), "128MB");
    const migrated = await relationBytesIn(join(dataDir, "pgdata"));
    assert.ok(migrated > 1 * MB && migrated < 128 * MB, `a migrated empty database holds ${migrated} bytes of relations`);
    // A sparse file stands in for a large gallery: it counts by its size and occupies no disk.
    const file = await open(join(dataDir, "pgdata", "base", "large-gallery-stand-in"), "w");
    await file.truncate(300 * MB);
    await file.close();
    const expected = sharedBuffersMbFor(migrated + 300 * MB);
    assert.ok(expected >= 320);
    assert.equal(await sharedBuffers(), `${expected}MB`);
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});
