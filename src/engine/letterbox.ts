import sharp from "sharp";
import { OUTSIDE, warpAffine, type Affine, type RgbImage } from "./image.js";

/**
 * Images larger than this (pixels) are letterboxed by libvips on its own threads instead of in
 * JavaScript: the box-averaging of a 4096x3335 working copy held the event loop for ~80 ms per
 * whole-frame pass. Up to 1080p the JavaScript path stays (a few ms, tuned and measured there).
 */
const LIBVIPS_ABOVE_PIXELS = 1920 * 1080;

/**
 * A model input cut from an image, and how its pixel edges map back: source = origin + u * scale.
 * `input.data` is always a new buffer of its own (never the source image's), so it may be
 * transferred to an inference worker.
 */
export interface Letterboxed {
  input: RgbImage;
  scaleX: number;
  scaleY: number;
  originX: number;
  originY: number;
}

/**
 * The region (x, y, w, h) of `image` (it may extend past the edges) shrunk with its aspect kept
 * into an outW x outH input, at the top left, grey elsewhere. `scale` (source pixels per input
 * pixel) defaults to what fits the region exactly.
 */
export async function letterbox(
  image: RgbImage, x: number, y: number, w: number, h: number, outW: number, outH: number,
  scale = Math.max(w / outW, h / outH),
): Promise<Letterboxed> {
  if (image.width * image.height <= LIBVIPS_ABOVE_PIXELS) {
    const map: Affine = [scale, 0, x + scale * 0.5 - 0.5, 0, scale, y + scale * 0.5 - 0.5];
    return { input: warpAffine(image, map, outW, outH), scaleX: scale, scaleY: scale, originX: x, originY: y };
  }
  const left = Math.max(0, Math.floor(x));
  const top = Math.max(0, Math.floor(y));
  const right = Math.min(image.width, Math.ceil(x + w));
  const bottom = Math.min(image.height, Math.ceil(y + h));
  // At least 0: an enlarged region (scale < 1) starting inside a pixel would round to -1.
  const offX = Math.max(0, Math.min(outW - 1, Math.round((left - x) / scale)));
  const offY = Math.max(0, Math.min(outH - 1, Math.round((top - y) / scale)));
  const width = Math.max(1, Math.min(outW - offX, Math.round((right - left) / scale)));
  const height = Math.max(1, Math.min(outH - offY, Math.round((bottom - top) / scale)));
  const data = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .extract({ left, top, width: right - left, height: bottom - top })
    .resize(width, height, { fit: "fill", kernel: "linear" })
    .extend({ left: offX, top: offY, right: outW - offX - width, bottom: outH - offY - height, background: { r: OUTSIDE, g: OUTSIDE, b: OUTSIDE } })
    .raw()
    .toBuffer();
  const scaleX = (right - left) / width;
  const scaleY = (bottom - top) / height;
  return {
    // A copy the caller owns: libvips' buffer may not be transferable to a worker thread.
    input: { data: new Uint8Array(data), width: outW, height: outH },
    scaleX,
    scaleY,
    originX: left - offX * scaleX,
    originY: top - offY * scaleY,
  };
}
