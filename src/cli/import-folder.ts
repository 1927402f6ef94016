import { constants } from "node:fs";
import { access, readdir, readFile, stat } from "node:fs/promises";
import { extname, join } from "node:path";
import { Code, ConnectError, type Client } from "@connectrpc/connect";
import sharp from "sharp";
import type { FaceService } from "../../gen/face/v1/face_pb.js";
import { ACCEPTED_FORMATS } from "../engine/decode.js";
import { createProgress } from "./progress.js";

const IMAGE_EXTENSIONS = new Set([".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif", ".tif", ".tiff", ".heic"]);

export interface ImportSummary {
  people: number;
  photos: number;
  registered: number;
  /** Photos the service refused, with its reason (e.g. NO_FACE, SMALL_FACE). */
  refused: { file: string; reason: string }[];
  /** Files in a person's folder that are not images by their name nor by their header. */
  passedOver: string[];
  /** Folders none of whose photos could be registered. */
  peopleMissing: string[];
}

/**
 * Registers every photo of `root/<identifier>/*` as `identifier` (the first creates the user, the
 * others add reference photos), `concurrency` calls at a time, with a progress bar on stderr.
 */
export async function importFolder(client: Client<typeof FaceService>, root: string, options: { collection: string; concurrency: number }): Promise<ImportSummary> {
  // Hidden entries are no one's photos: a tool's folder (.thumbnails), macOS resource forks (._x.jpg).
  const visible = (name: string) => !name.startsWith(".");
  const folders: string[] = [];
  for (const name of (await readdir(root)).filter(visible).sort()) {
    // stat follows links: a person's folder may be a link to one elsewhere (it was passed over).
    if ((await stat(join(root, name)).catch(() => undefined))?.isDirectory() === true) folders.push(name);
  }
  // One entry per person: their photos go in order (the first creates the user); people run concurrently.
  const queue: { identifier: string; file: string }[][] = [];
  const passedOver: string[] = [];
  for (const identifier of folders) {
    const photos: { identifier: string; file: string }[] = [];
    for (const name of (await readdir(join(root, identifier))).filter(visible).sort()) {
      const file = join(identifier, name);
      // Until 2026-12-07 a photo without an extension (IMG_0001) was passed over without a word, as notes.txt was.
      if (await isPhoto(join(root, file))) photos.push({ identifier, file });
      else passedOver.push(file);
    }
    queue.push(photos);
  }
  const photoCount = queue.reduce((n, person) => n + person.length, 0);
  const summary: ImportSummary = { people: folders.length, photos: photoCount, registered: 0, refused: [], passedOver, peopleMissing: [] };
  const registeredPeople = new Set<string>();
  const progress = createProgress(photoCount);
  const work = async () => {
    for (let person = queue.shift(); person !== undefined; person = queue.shift()) {
      for (const photo of person) {
        const refusal = await registerPhoto(client, join(root, photo.file), photo.identifier, options.collection);
        if (refusal === undefined) {
          summary.registered++;
          registeredPeople.add(photo.identifier);
          progress.step(`${photo.file}: registered`);
        } else {
          summary.refused.push({ file: photo.file, reason: refusal });
          progress.step(`${photo.file}: refused (${refusal})`);
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, work));
  progress.done();
  summary.peopleMissing = folders.filter((f) => !registeredPeople.has(f));
  return summary;
}

/**
 * A photo by its name, or else by its header: one of the formats the service decodes, as libvips
 * (sharp) reads it without decoding pixels, so a file without an extension (`IMG_0001`) is taken
 * and an MP4's ISO header is not. A file named as an image goes to the service even when it cannot
 * be read or decoded, so that the refusal says why; so does anything that cannot be read to look (a
 * broken link, no permission).
 */
async function isPhoto(path: string): Promise<boolean> {
  if (IMAGE_EXTENSIONS.has(extname(path).toLowerCase())) return true;
  const stats = await stat(path).catch(() => undefined);
  if (stats === undefined) return true;
  if (!stats.isFile()) return false;
  if (!(await access(path, constants.R_OK).then(() => true, () => false))) return true;
  const format = await sharp(path).metadata().then((meta) => meta.format, () => undefined);
  return format !== undefined && ACCEPTED_FORMATS.has(format);
}

/** Codes of a refusal of the photo itself (no face, too small, over the size limit): the import goes on. */
const PHOTO_REFUSALS = new Set([Code.InvalidArgument, Code.FailedPrecondition, Code.ResourceExhausted]);

/**
 * Registers one photo: undefined when registered, the reason when the photo was refused or cannot
 * be read. Anything else (server down, a bad key, a rate limit still refusing after the client's
 * tries) stops the import. Until 2026-12-04 a photo over the size limit stopped it.
 */
async function registerPhoto(client: Client<typeof FaceService>, path: string, identifier: string, collection: string): Promise<string | undefined> {
  let image: Buffer;
  try {
    image = await readFile(path);
  } catch (e) {
    return `cannot read it: ${(e as Error).message}`;
  }
  try {
    await client.register({ identifier, image, collection });
    return undefined;
  } catch (e) {
    const error = ConnectError.from(e);
    if (!PHOTO_REFUSALS.has(error.code) || error.metadata.get("retry-after") !== null) throw error;
    return error.metadata.get("x-face-reason") ?? error.rawMessage;
  }
}
