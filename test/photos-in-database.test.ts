import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { it } from "node:test";
import { createImageFiles } from "../src/store/image-files.js";
import { moveImageFilesIntoDatabase } from "../src/store/images-in-database.js";
import { statementsWaitingOnLocks } from "./support/lock-waits.js";
import { face } from "./support/testdata.js";
import { faceClient, startTestServer } from "./support/server.js";
import { describeUnless } from "./support/suite.js";
import { until } from "./support/until.js";

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

  it("leaves out, and removes the file of, a photo whose user is deleted while it is moved", async () => {
    const server = await startTestServer();
    try {
      const sha256 = (await faceClient(server).register({ identifier: "obama", image: OBAMA })).imageSha256;
      const knex = server.database.knex;
      const files = createImageFiles(join(server.dataDir, "images"));
      await files.put(sha256, OBAMA);
      await knex("image_bytes").where({ sha256 }).delete();
      // A deletion of the user (as an instance of the earlier version makes it: the face, then its
      // photo's row) not yet committed when the move reaches the photo.
      const deleting = await knex.transaction();
      try {
        await deleting("faces").where({ image_sha256: sha256 }).delete();
        await deleting("images").where({ sha256 }).delete();
        const moving = moveImageFilesIntoDatabase(knex, files);
        await until(async () => (await statementsWaitingOnLocks(knex)) === 1, "the move to wait for the deletion");
        await deleting.commit();
        // Until 2026-12-06 the bytes' insert failed on its foreign key, and with it the start.
        assert.deepEqual(await moving, { moved: 0, missing: 0 });
      } finally {
        if (!deleting.isCompleted()) await deleting.rollback();
      }
      assert.equal(await files.exists(sha256), false, "the deleted user's photo is not left on disk");
      assert.equal((await knex("image_bytes")).length, 0);
    } finally {
      await server.close();
    }
  });
});
