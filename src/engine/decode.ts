import sharp from "sharp";
import { FaceError } from "../errors.js";
import type { RgbImage } from "./image.js";
import { countJpegScans, MAX_JPEG_SCANS } from "./jpeg-scans.js";

/**
 * A decoded image, EXIF orientation applied, alpha flattened onto white, always 3-channel sRGB. Its
 * pixels are the working copy the engine looks at: no larger than MAX_WORKING_SIDE on its long side.
 */
export interface DecodedImage extends RgbImage {
  /** Container format as sharp names it: jpeg, png, webp, ... */
  readonly format: string;
  /** The photo's own size (after orientation), which boxes in answers refer to. */
  readonly originalWidth: number;
  readonly originalHeight: number;
  /** Original pixels per working pixel: 1 unless the photo was shrunk on decoding. */
  readonly scale: number;
}

/**
 * The long side of the working copy. Larger photos are shrunk while decoding (libvips shrinks
 * JPEGs on load, at a fraction of a full decode's time and memory): a 40-megapixel upload costs
 * what a 4K frame costs, and a face under ~12 px in such a photo is no reference anyway.
 */
export const MAX_WORKING_SIDE = 4096;

export interface DecodeLimits {
  /** Largest accepted width x height: the guard against decompression bombs. */
  readonly maxPixels: number;
}

/** Formats a photo of a face arrives in. SVG and PDF are refused: they are not photos and render external content. */
export const ACCEPTED_FORMATS: ReadonlySet<string> = new Set(["jpeg", "png", "webp", "gif", "tiff", "heif", "avif"]);

/** MIME type of each accepted format, for serving stored images back. */
export const CONTENT_TYPE_OF_FORMAT: Readonly<Record<string, string>> = {
  jpeg: "image/jpeg",
  png: "image/png",
  webp: "image/webp",
  gif: "image/gif",
  tiff: "image/tiff",
  heif: "image/heif",
  avif: "image/avif",
};

/** Reads the container header only: format and dimensions, without decoding pixels. */
export async function probeImage(bytes: Uint8Array, limits: DecodeLimits): Promise<{ format: string; width: number; height: number; orientation: number }> {
  if (bytes.length === 0) throw new FaceError("invalid_argument", "image is empty");
  let meta: Awaited<ReturnType<ReturnType<typeof sharp>["metadata"]>>;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (cause) {
    throw new FaceError("invalid_argument", "image is not a readable JPEG, PNG or WebP file", { cause });
  }
  const format = meta.format ?? "unknown";
  if (!ACCEPTED_FORMATS.has(format)) {
    throw new FaceError("invalid_argument", `image format ${format} is not accepted; send JPEG, PNG or WebP`);
  }
  if (format === "jpeg" && countJpegScans(bytes) > MAX_JPEG_SCANS) {
    throw new FaceError("invalid_argument", `image is a JPEG of more than ${MAX_JPEG_SCANS} scans (encoders write 1 to about 10); save it again as an ordinary JPEG`);
  }
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  if (width <= 0 || height <= 0) throw new FaceError("invalid_argument", "image has no pixels");
  if (width * height > limits.maxPixels) {
    throw new FaceError(
      "resource_exhausted",
      `image is ${width}x${height} pixels, more than the limit of ${limits.maxPixels} pixels`,
    );
  }
  return { format, width, height, orientation: meta.orientation ?? 1 };
}

/**
 * Decodes JPEG, PNG, WebP (and GIF, TIFF, HEIF, AVIF) bytes into RGB, shrunk to `maxSide` on its
 * long side when larger. Refuses empty, corrupt, truncated and oversized images with a FaceError,
 * before spending memory on their pixels.
 */
export async function decodeImage(bytes: Uint8Array, limits: DecodeLimits, maxSide = MAX_WORKING_SIDE): Promise<DecodedImage> {
  const probed = await probeImage(bytes, limits);
  const { format } = probed;
  // EXIF orientations 5-8 turn the photo by 90 degrees.
  const [originalWidth, originalHeight] = probed.orientation >= 5 ? [probed.height, probed.width] : [probed.width, probed.height];
  const shrink = Math.max(originalWidth, originalHeight) > maxSide;
  try {
    const pipeline = sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: "error", animated: false }).rotate(); // applies the EXIF orientation
    if (shrink) pipeline.resize({ width: maxSide, height: maxSide, fit: "inside" });
    const { data, info } = await pipeline
      .flatten({ background: "#ffffff" })
      .toColourspace("srgb")
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`unexpected ${info.channels} channels`);
    const scale = shrink ? Math.max(originalWidth, originalHeight) / Math.max(info.width, info.height) : 1;
    return { data: new Uint8Array(data.buffer, data.byteOffset, data.length), width: info.width, height: info.height, format, originalWidth, originalHeight, scale };
  } catch (cause) {
    throw new FaceError("invalid_argument", `image could not be decoded (corrupt or truncated ${format})`, { cause });
  }
}
