import { join } from "node:path";
import type { Database } from "./database.js";
import { createImageFiles } from "./image-files.js";
import { createImagesInDatabase, moveImageFilesIntoDatabase, type MovedImages } from "./images-in-database.js";
import { createImagesOnDisk } from "./images-on-disk.js";
import { ownerOnlyDirectory } from "./owner-only.js";
import type { StoredImages } from "./stored-images.js";

/**
 * Where kept photos live: on a PostgreSQL server, in the database (several machines share it with
 * no shared volume), after moving in what an earlier version left as files; on the embedded
 * database, as files under `dataDir/images`.
 */
export async function openStoredImages(database: Database, dataDir: string): Promise<{ images: StoredImages; moved: MovedImages }> {
  const root = join(dataDir, "images");
  const files = createImageFiles(root);
  if (database.kind === "pglite") {
    await ownerOnlyDirectory(root);
    return { images: createImagesOnDisk(database.knex, files), moved: { moved: 0, missing: 0 } };
  }
  const moved = await moveImageFilesIntoDatabase(database.knex, files);
  return { images: createImagesInDatabase(database.knex), moved };
}
