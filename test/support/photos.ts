import sharp from "sharp";
import { seededRandom } from "./seeded-random.js";

/** Photos made for tests from the labelled ones. */

/**
 * A crowd photo: the face `box` of `photo` (with some margin) tiled `side` x `side` times at
 * `tilePx` each (120 px: every tile is a face the detector finds), one JPEG.
 */
export async function crowdPhoto(photo: Uint8Array, box: { x: number; y: number; width: number; height: number }, side: number, tilePx = 120, quality = 85): Promise<Uint8Array> {
  const left = Math.max(0, Math.round(box.x - box.width * 0.3));
  const top = Math.max(0, Math.round(box.y - box.height * 0.3));
  const crop = await sharp(photo).extract({ left, top, width: Math.round(box.width * 1.6), height: Math.round(box.height * 1.6) }).resize(tilePx, tilePx).toBuffer();
  const tiles = Array.from({ length: side * side }, (_, i) => ({ input: crop, left: (i % side) * tilePx, top: Math.floor(i / side) * tilePx }));
  return new Uint8Array(await sharp({ create: { width: side * tilePx, height: side * tilePx, channels: 3, background: "#888" } }).composite(tiles).jpeg({ quality }).toBuffer());
}

/** Five different photos of one face (`photo`, enlarged), 0.6 to 1.5 MB at quality 98: 5.3 MB in all for obama.jpg. */
export function largePhotos(photo: Uint8Array): Promise<Buffer[]> {
  return Promise.all([1000, 1200, 1400, 1600, 1800].map((width) => sharp(photo).resize(width).jpeg({ quality: 98, chromaSubsampling: "4:4:4" }).toBuffer()));
}

/**
 * A photo with no face, of random noise (`seed` fixes it) enlarged from 400x300 to `width` x
 * `height`: every scan of it finds thousands of boxes the detector is unsure of.
 */
export async function noisePhoto(width: number, height: number, seed = 1): Promise<Uint8Array> {
  const random = seededRandom(seed);
  const pixels = Buffer.from(Array.from({ length: 400 * 300 * 3 }, () => Math.floor(random() * 256)));
  return new Uint8Array(await sharp(pixels, { raw: { width: 400, height: 300, channels: 3 } }).resize(width, height).jpeg({ quality: 70 }).toBuffer());
}
