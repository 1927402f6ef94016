/** An 8-bit RGB image, rows top to bottom, pixels interleaved R,G,B. */
export interface RgbImage {
  readonly data: Uint8Array;
  readonly width: number;
  readonly height: number;
}

/**
 * A 2x3 affine map [a, b, c, d, e, f] from output pixel (u, v) to source pixel
 * (x = a*u + b*v + c, y = d*u + e*v + f). Every crop, resize and alignment here is one of these.
 */
export type Affine = readonly [number, number, number, number, number, number];

/** Value used for pixels outside the source: mid-grey, which the (x-127)/128 models read as 0. */
const OUTSIDE = 127;

/**
 * Samples `src` through `map` into a new width x height RGB image with bilinear interpolation.
 * When the map shrinks by more than 2x, the source is first box-averaged so that small faces in big
 * frames do not alias into noise.
 */
export function warpAffine(src: RgbImage, map: Affine, width: number, height: number, maxFactor = Infinity): RgbImage {
  const shrink = Math.min(Math.hypot(map[0], map[3]), Math.hypot(map[1], map[4]));
  const factor = Math.min(maxFactor, Math.floor(shrink));
  if (factor >= 2) {
    // Only the part of the source the output reads is averaged: a face crop of a big frame must
    // not pay for the whole frame.
    const corners = [[0, 0], [width, 0], [0, height], [width, height]].map(([u, v]) => [map[0] * u + map[1] * v + map[2], map[3] * u + map[4] * v + map[5]]);
    const x0 = clamp(Math.floor(Math.min(...corners.map((c) => c[0])) / factor) * factor - factor, 0, src.width);
    const y0 = clamp(Math.floor(Math.min(...corners.map((c) => c[1])) / factor) * factor - factor, 0, src.height);
    const x1 = clamp(Math.ceil(Math.max(...corners.map((c) => c[0]))) + factor, 0, src.width);
    const y1 = clamp(Math.ceil(Math.max(...corners.map((c) => c[1]))) + factor, 0, src.height);
    if (x1 - x0 < factor || y1 - y0 < factor) return warpAffine(src, map, width, height, 1);
    const small = boxDownsample(src, factor, x0, y0, x1, y1);
    const f = 1 / factor;
    // Source pixel x maps to (x - x0 + 0.5) / factor - 0.5 in the averaged region.
    const shift = 0.5 * f - 0.5;
    return warpAffine(small, [map[0] * f, map[1] * f, (map[2] - x0) * f + shift, map[3] * f, map[4] * f, (map[5] - y0) * f + shift], width, height, 1);
  }
  const out = new Uint8Array(width * height * 3);
  const { data, width: sw, height: sh } = src;
  const [a, b, c, d, e, f] = map;
  let o = 0;
  for (let v = 0; v < height; v++) {
    for (let u = 0; u < width; u++, o += 3) {
      const x = a * u + b * v + c;
      const y = d * u + e * v + f;
      const x0 = Math.floor(x);
      const y0 = Math.floor(y);
      if (x0 < -1 || y0 < -1 || x0 >= sw || y0 >= sh) {
        out[o] = out[o + 1] = out[o + 2] = OUTSIDE;
        continue;
      }
      const fx = x - x0;
      const fy = y - y0;
      const xa = x0 < 0 ? 0 : x0;
      const xb = x0 + 1 >= sw ? sw - 1 : x0 + 1;
      const ya = y0 < 0 ? 0 : y0;
      const yb = y0 + 1 >= sh ? sh - 1 : y0 + 1;
      const p00 = (ya * sw + xa) * 3;
      const p01 = (ya * sw + xb) * 3;
      const p10 = (yb * sw + xa) * 3;
      const p11 = (yb * sw + xb) * 3;
      const w00 = (1 - fx) * (1 - fy);
      const w01 = fx * (1 - fy);
      const w10 = (1 - fx) * fy;
      const w11 = fx * fy;
      for (let ch = 0; ch < 3; ch++) {
        out[o + ch] = data[p00 + ch] * w00 + data[p01 + ch] * w01 + data[p10 + ch] * w10 + data[p11 + ch] * w11 + 0.5;
      }
    }
  }
  return { data: out, width, height };
}

/** Averages factor x factor blocks of the region [x0, x1) x [y0, y1) (partial blocks at the end are dropped). */
export function boxDownsample(src: RgbImage, factor: number, x0 = 0, y0 = 0, x1 = src.width, y1 = src.height): RgbImage {
  const width = Math.max(1, Math.floor((x1 - x0) / factor));
  const height = Math.max(1, Math.floor((y1 - y0) / factor));
  const out = new Uint8Array(width * height * 3);
  const sums = new Uint32Array(width * 3);
  const { data, width: sw } = src;
  const area = factor * factor;
  for (let y = 0; y < height; y++) {
    sums.fill(0);
    for (let dy = 0; dy < factor; dy++) {
      const row = (Math.min(y0 + y * factor + dy, src.height - 1) * sw + x0) * 3;
      for (let x = 0; x < width; x++) {
        let p = row + x * factor * 3;
        const s = x * 3;
        for (let dx = 0; dx < factor; dx++, p += 3) {
          sums[s] += data[p];
          sums[s + 1] += data[p + 1];
          sums[s + 2] += data[p + 2];
        }
      }
    }
    const o = y * width * 3;
    for (let i = 0; i < width * 3; i++) out[o + i] = (sums[i] + (area >> 1)) / area;
  }
  return { data: out, width, height };
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/** Map that crops the square or rectangle (x, y, w, h) of the source and scales it to width x height. */
export function cropMap(x: number, y: number, w: number, h: number, width: number, height: number): Affine {
  return [w / width, 0, x + (w / width) * 0.5 - 0.5, 0, h / height, y + (h / height) * 0.5 - 0.5];
}

/** ITU-R BT.601 luma of each pixel, 0..255. */
export function toGrey(image: RgbImage): Float32Array {
  const n = image.width * image.height;
  const grey = new Float32Array(n);
  const d = image.data;
  for (let i = 0, p = 0; i < n; i++, p += 3) grey[i] = 0.299 * d[p] + 0.587 * d[p + 1] + 0.114 * d[p + 2];
  return grey;
}

/** Planar NCHW float tensor of the image, each channel value mapped through (v - mean[c]) / std[c]. */
export function toPlanarTensor(
  image: RgbImage,
  order: "rgb" | "bgr",
  mean: readonly [number, number, number],
  std: readonly [number, number, number],
): Float32Array {
  const n = image.width * image.height;
  const out = new Float32Array(3 * n);
  const d = image.data;
  const src = order === "rgb" ? [0, 1, 2] : [2, 1, 0];
  for (let c = 0; c < 3; c++) {
    const plane = c * n;
    const s = src[c];
    const m = mean[c];
    const k = 1 / std[c];
    for (let i = 0, p = s; i < n; i++, p += 3) out[plane + i] = (d[p] - m) * k;
  }
  return out;
}
