import { readdir, readFile } from "node:fs/promises";
import { extname, join } from "node:path";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import type { FaceService } from "../../gen/face/v1/face_pb.js";
import { createProgress } from "./progress.js";

const IMAGE_EXTENSIONS = new Set([".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif", ".tif", ".tiff", ".heic"]);

export interface ImportSummary {
  people: number;
  photos: number;
  registered: number;
  /** Photos the service refused, with its reason (e.g. NO_FACE, SMALL_FACE). */
  refused: { file: string; reason: string }[];
  /** Folders none of whose photos could be registered. */
  peopleMissing: string[];
}

/**
 * Registers every photo of `root/<identifier>/*` as `identifier` (the first creates the user, the
 * others add reference photos), `concurrency` calls at a time, with a progress bar on stderr.
 */
export async function importFolder(client: Client<typeof FaceService>, root: string, options: { collection: string; concurrency: number }): Promise<ImportSummary> {
  const folders = (await readdir(root, { withFileTypes: true })).filter((d) => d.isDirectory()).map((d) => d.name).sort();
  // One entry per person: their photos go in order (the first creates the user); people run concurrently.
  const queue: { identifier: string; file: string }[][] = [];
  for (const identifier of folders) {
    const files = (await readdir(join(root, identifier))).filter((f) => IMAGE_EXTENSIONS.has(extname(f).toLowerCase())).sort();
    queue.push(files.map((file) => ({ identifier, file: join(identifier, file) })));
  }
  const photoCount = queue.reduce((n, person) => n + person.length, 0);
  const summary: ImportSummary = { people: folders.length, photos: photoCount, registered: 0, refused: [], peopleMissing: [] };
  const registeredPeople = new Set<string>();
  const progress = createProgress(photoCount);
  const work = async () => {
    for (let person = queue.shift(); person !== undefined; person = queue.shift()) {
      for (const photo of person) {
        try {
          await client.register({ identifier: photo.identifier, image: await readFile(join(root, photo.file)), collection: options.collection });
          summary.registered++;
          registeredPeople.add(photo.identifier);
          progress.step(`${photo.file}: registered`);
        } catch (e) {
          const error = ConnectError.from(e);
          // A photo can be refused; anything else (server down, bad key) stops the import.
          if (error.code !== Code.FailedPrecondition && error.code !== Code.InvalidArgument) throw error;
          const reason = error.metadata.get("x-face-reason") ?? error.rawMessage;
          summary.refused.push({ file: photo.file, reason });
          progress.step(`${photo.file}: refused (${reason})`);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, work));
  progress.done();
  summary.peopleMissing = folders.filter((f) => !registeredPeople.has(f));
  return summary;
}
