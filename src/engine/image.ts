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
export const OUTSIDE = 127;

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
  if (map[1] === 0 && map[3] === 0) return resizeAxisAligned(src, map, width, height);
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

/** Where one output column (or row) of an axis-aligned map reads: two source indices and the weight of the second, or -1 outside. */
interface Taps {
  first: Int32Array;
  second: Int32Array;
  weight: Float64Array;
}

function tapsOf(scale: number, offset: number, count: number, size: number): Taps {
  const taps = { first: new Int32Array(count), second: new Int32Array(count), weight: new Float64Array(count) };
  for (let i = 0; i < count; i++) {
    const x = scale * i + offset;
    const x0 = Math.floor(x);
    if (x0 < -1 || x0 >= size) {
      taps.first[i] = -1;
      continue;
    }
    taps.first[i] = x0 < 0 ? 0 : x0;
    taps.second[i] = x0 + 1 >= size ? size - 1 : x0 + 1;
    taps.weight[i] = x - x0;
  }
  return taps;
}

/**
 * warpAffine for maps without rotation (crops, letterboxes): the same bilinear samples, with each
 * column's and row's taps computed once instead of per pixel, and plain copies where a row of the
 * output is a row of the source (scale 1, integer offset: the detector's letterbox after averaging).
 */
function resizeAxisAligned(src: RgbImage, map: Affine, width: number, height: number): RgbImage {
  const out = new Uint8Array(width * height * 3);
  const { data, width: sw, height: sh } = src;
  const columns = tapsOf(map[0], map[2], width, sw);
  const rows = tapsOf(map[4], map[5], height, sh);
  const copies = map[0] === 1 && Number.isInteger(map[2]) ? copySpans(columns, width) : undefined;
  for (let v = 0; v < height; v++) {
    const rowOut = v * width * 3;
    const ya = rows.first[v];
    if (ya < 0) {
      out.fill(OUTSIDE, rowOut, rowOut + width * 3);
      continue;
    }
    const fy = rows.weight[v];
    const rowA = ya * sw * 3;
    const rowB = rows.second[v] * sw * 3;
    if (copies !== undefined && fy === 0) {
      for (const span of copies) {
        if (span.first < 0) out.fill(OUTSIDE, rowOut + span.start * 3, rowOut + span.end * 3);
        else out.set(data.subarray(rowA + span.first * 3, rowA + (span.first + span.end - span.start) * 3), rowOut + span.start * 3);
      }
      continue;
    }
    for (let u = 0, o = rowOut; u < width; u++, o += 3) {
      const xa = columns.first[u];
      if (xa < 0) {
        out[o] = out[o + 1] = out[o + 2] = OUTSIDE;
        continue;
      }
      const fx = columns.weight[u];
      const w00 = (1 - fx) * (1 - fy);
      const w01 = fx * (1 - fy);
      const w10 = (1 - fx) * fy;
      const w11 = fx * fy;
      const p00 = rowA + xa * 3;
      const p01 = rowA + columns.second[u] * 3;
      const p10 = rowB + xa * 3;
      const p11 = rowB + columns.second[u] * 3;
      out[o] = data[p00] * w00 + data[p01] * w01 + data[p10] * w10 + data[p11] * w11 + 0.5;
      out[o + 1] = data[p00 + 1] * w00 + data[p01 + 1] * w01 + data[p10 + 1] * w10 + data[p11 + 1] * w11 + 0.5;
      out[o + 2] = data[p00 + 2] * w00 + data[p01 + 2] * w01 + data[p10 + 2] * w10 + data[p11 + 2] * w11 + 0.5;
    }
  }
  return { data: out, width, height };
}

/** Output columns [start, end) reading source columns from `first` on, or grey outside the source (first -1). */
interface CopySpan {
  start: number;
  end: number;
  first: number;
}

/**
 * The columns of a row read 1:1 from a source row (columns shifted by an integer), as spans of
 * consecutive source pixels and of grey: the same for every row, so each row is a few copies.
 */
function copySpans(columns: Taps, width: number): CopySpan[] {
  const spans: CopySpan[] = [];
  for (let u = 0; u < width; ) {
    const first = columns.first[u];
    let end = u + 1;
    // A column left of the source's edge reads the edge pixel, which breaks a run of copies.
    if (first < 0) while (end < width && columns.first[end] < 0) end++;
    else while (end < width && columns.first[end] === first + (end - u)) end++;
    spans.push({ start: u, end, first });
    u = end;
  }
  return spans;
}

/** Averages factor x factor blocks of the region [x0, x1) x [y0, y1) (partial blocks at the end are dropped). */
export function boxDownsample(src: RgbImage, factor: number, x0 = 0, y0 = 0, x1 = src.width, y1 = src.height): RgbImage {
  const width = Math.max(1, Math.floor((x1 - x0) / factor));
  const height = Math.max(1, Math.floor((y1 - y0) / factor));
  const out = new Uint8Array(width * height * 3);
  const { data, width: sw } = src;
  if (factor === 2) {
    halveInto(data, sw, x0, y0, width, height, out);
    return { data: out, width, height };
  }
  const sums = new Uint32Array(width * 3);
  const area = factor * factor;
  const half = area >> 1;
  for (let y = 0; y < height; y++) {
    sums.fill(0);
    for (let dy = 0; dy < factor; dy++) {
      // Source pixels of one row are read in order, summed per block in locals.
      let p = (Math.min(y0 + y * factor + dy, src.height - 1) * sw + x0) * 3;
      for (let s = 0; s < width * 3; s += 3) {
        let r = 0, g = 0, b = 0;
        for (let dx = 0; dx < factor; dx++, p += 3) {
          r += data[p];
          g += data[p + 1];
          b += data[p + 2];
        }
        sums[s] += r;
        sums[s + 1] += g;
        sums[s + 2] += b;
      }
    }
    const o = y * width * 3;
    for (let i = 0; i < width * 3; i++) out[o + i] = (sums[i] + half) / area;
  }
  return { data: out, width, height };
}

/** boxDownsample for factor 2, the common case (a 640x480 frame into the 320x240 detector): two source rows at a time. */
function halveInto(data: Uint8Array, sw: number, x0: number, y0: number, width: number, height: number, out: Uint8Array): void {
  const wordAligned = LITTLE_ENDIAN && data.byteOffset % 4 === 0 && sw % 4 === 0 && x0 % 4 === 0;
  const words = wordAligned ? new Uint32Array(data.buffer, data.byteOffset, data.length >> 2) : undefined;
  let o = 0;
  for (let y = 0; y < height; y++) {
    let a = ((y0 + 2 * y) * sw + x0) * 3;
    let b = a + sw * 3;
    let x = 0;
    if (words !== undefined) {
      const pairs = width >> 1;
      for (let wa = a >> 2, wb = b >> 2; x < pairs; x++, wa += 3, wb += 3, o += 6) halvePair(words, wa, wb, out, o);
      x = pairs * 2;
      a += pairs * 12;
      b += pairs * 12;
    }
    for (; x < width; x++, a += 6, b += 6, o += 3) {
      out[o] = (data[a] + data[a + 3] + data[b] + data[b + 3] + 2) >> 2;
      out[o + 1] = (data[a + 1] + data[a + 4] + data[b + 1] + data[b + 4] + 2) >> 2;
      out[o + 2] = (data[a + 2] + data[a + 5] + data[b + 2] + data[b + 5] + 2) >> 2;
    }
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const EVEN_BYTES = 0x00ff00ff;

/**
 * Two output pixels from four source pixels of two rows, read as three 32-bit words a row (twelve
 * bytes: r0 g0 b0 r1 | g1 b1 r2 g2 | b2 r3 g3 b3, little-endian) and summed two bytes to a word:
 * the same sums and rounding as the byte loop, with a quarter of its reads (640x480, by hand: 0.44 ->
 * 0.29 ms).
 */
function halvePair(words: Uint32Array, wa: number, wb: number, out: Uint8Array, o: number): void {
  const a0 = words[wa], a1 = words[wa + 1], a2 = words[wa + 2];
  const b0 = words[wb], b1 = words[wb + 1], b2 = words[wb + 2];
  // Each sum holds two bytes' vertical sums (16 bits each): e for bytes 0 and 2 of its word, d for 1 and 3.
  const e0 = (a0 & EVEN_BYTES) + (b0 & EVEN_BYTES), d0 = ((a0 >>> 8) & EVEN_BYTES) + ((b0 >>> 8) & EVEN_BYTES);
  const e1 = (a1 & EVEN_BYTES) + (b1 & EVEN_BYTES), d1 = ((a1 >>> 8) & EVEN_BYTES) + ((b1 >>> 8) & EVEN_BYTES);
  const e2 = (a2 & EVEN_BYTES) + (b2 & EVEN_BYTES), d2 = ((a2 >>> 8) & EVEN_BYTES) + ((b2 >>> 8) & EVEN_BYTES);
  out[o] = ((e0 & 0xffff) + (d0 >>> 16) + 2) >> 2; // r0 + r1
  out[o + 1] = ((d0 & 0xffff) + (e1 & 0xffff) + 2) >> 2; // g0 + g1
  out[o + 2] = ((e0 >>> 16) + (d1 & 0xffff) + 2) >> 2; // b0 + b1
  out[o + 3] = ((e1 >>> 16) + (d2 & 0xffff) + 2) >> 2; // r2 + r3
  out[o + 4] = ((d1 >>> 16) + (e2 >>> 16) + 2) >> 2; // g2 + g3
  out[o + 5] = ((e2 & 0xffff) + (d2 >>> 16) + 2) >> 2; // b2 + b3
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
