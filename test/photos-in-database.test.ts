import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { it } from "node:test";
import { createImageFiles } from "../src/store/image-files.js";
import { face } from "./support/testdata.js";
import { faceClient, startTestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";

const OBAMA = face("face_recognition/obama.jpg");

describeUnless(process.env.TEST_DATABASE_URL ? false : "needs a PostgreSQL server (TEST_DATABASE_URL; .ci/run starts one)", "photos in PostgreSQL", () => {
  it("moves at start the photo files an earlier version kept into the database, and serves them from there", async () => {
    const first = await startTestServer();
    const sha256 = (await faceClient(first).register({ identifier: "obama", image: OBAMA })).imageSha256;
    const knex = first.database.knex;
    assert.equal((await knex("image_bytes").where({ sha256 })).length, 1, "a new photo goes to the database, not to a file");
    assert.deepEqual(await readdir(join(first.dataDir, "images")).catch(() => []), []);
    // What a version that kept files left: the row, and the bytes in FACE_DATA_DIR/images.
    await createImageFiles(join(first.dataDir, "images")).put(sha256, OBAMA);
    await knex("image_bytes").where({ sha256 }).delete();
    await first.close(true);

    const restarted = await startTestServer({}, undefined, first);
    try {
      const [row] = await restarted.database.knex("image_bytes").where({ sha256 }).select("bytes");
      assert.deepEqual(Buffer.from(row.bytes), Buffer.from(OBAMA));
      assert.equal(await createImageFiles(join(restarted.dataDir, "images")).exists(sha256), false, "the moved file is removed");
      const photo = await faceClient(restarted).getUserFace({ identifier: "obama" });
      assert.deepEqual(Buffer.from(photo.data), Buffer.from(OBAMA));
      await faceClient(restarted).deleteUser({ identifier: "obama" });
      assert.equal((await restarted.database.knex("image_bytes")).length, 0, "deleting the last face deletes the bytes");
    } finally {
      await restarted.close();
    }
  });
});
