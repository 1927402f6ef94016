/**
 * The image resampling fast paths (axis-aligned maps, halving, row copies) must produce exactly what
 * the plain per-pixel bilinear formula and block averages produce: compared here with straightforward
 * reference implementations on random images and maps, edges and outside regions included.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { boxDownsample, warpAffine, type Affine, type RgbImage } from "../src/engine/image.js";

function randomImage(width: number, height: number, seed: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  let state = seed;
  for (let i = 0; i < data.length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    data[i] = state >>> 24;
  }
  return { data, width, height };
}

/** Bilinear sampling pixel by pixel, grey (127) outside, edges clamped: the definition. */
function referenceWarp(src: RgbImage, [a, b, c, d, e, f]: Affine, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * 3);
  const at = (x: number, y: number, ch: number) =>
    src.data[(Math.min(Math.max(y, 0), src.height - 1) * src.width + Math.min(Math.max(x, 0), src.width - 1)) * 3 + ch];
  for (let v = 0; v < height; v++) {
    for (let u = 0; u < width; u++) {
      const x = a * u + b * v + c;
      const y = d * u + e * v + f;
      const x0 = Math.floor(x);
      const y0 = Math.floor(y);
      const outside = x0 < -1 || y0 < -1 || x0 >= src.width || y0 >= src.height;
      const fx = x - x0;
      const fy = y - y0;
      const [w00, w01, w10, w11] = [(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy];
      for (let ch = 0; ch < 3; ch++) {
        out[(v * width + u) * 3 + ch] = outside
          ? 127
          : at(x0, y0, ch) * w00 + at(x0 + 1, y0, ch) * w01 + at(x0, y0 + 1, ch) * w10 + at(x0 + 1, y0 + 1, ch) * w11 + 0.5;
      }
    }
  }
  return out;
}

function referenceBoxDownsample(src: RgbImage, factor: number): Uint8Array {
  const width = Math.floor(src.width / factor);
  const height = Math.floor(src.height / factor);
  const out = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let ch = 0; ch < 3; ch++) {
        let sum = 0;
        for (let dy = 0; dy < factor; dy++) for (let dx = 0; dx < factor; dx++) sum += src.data[((y * factor + dy) * src.width + x * factor + dx) * 3 + ch];
        out[(y * width + x) * 3 + ch] = Math.floor((sum + Math.floor((factor * factor) / 2)) / (factor * factor));
      }
    }
  }
  return out;
}

test("axis-aligned and rotated warps equal per-pixel bilinear sampling, outside and edges included", () => {
  const src = randomImage(37, 23, 7);
  const maps: Affine[] = [
    [1, 0, 0, 0, 1, 0], // copy
    [1, 0, -1, 0, 1, -1], // copy shifted so the first column and row read the clamped edge
    [1, 0, -5, 0, 1, 3], // copy with grey borders
    [1, 0, 30, 0, 1, 20], // mostly outside
    [0.75, 0, 0.3, 0, 1.25, -0.6], // fractional scales
    [1.7, 0, -2.2, 0, 1.9, 0.4], // shrinking less than 2x (no averaging)
    [0.9, 0.2, 1.5, -0.2, 0.9, 4.25], // rotation
  ];
  for (const map of maps) {
    const got = warpAffine(src, map, 41, 29, 1);
    assert.deepEqual(got.data, referenceWarp(src, map, 41, 29), `map ${map.join(", ")}`);
  }
});

test("box downsampling (halving and larger factors) equals plain block averages", () => {
  for (const [w, h] of [[40, 30], [41, 31], [7, 5]]) {
    const src = randomImage(w, h, w * h);
    for (const factor of [2, 3, 4]) {
      assert.deepEqual(boxDownsample(src, factor).data, referenceBoxDownsample(src, factor), `${w}x${h} by ${factor}`);
    }
  }
});

test("halving a region equals plain block averages of that region, whether its rows can be read as 32-bit words or not", () => {
  const src = randomImage(40, 30, 11);
  const crop = (x0: number, y0: number, x1: number, y1: number): RgbImage => {
    const data = new Uint8Array((x1 - x0) * (y1 - y0) * 3);
    for (let y = y0; y < y1; y++) data.set(src.data.subarray((y * 40 + x0) * 3, (y * 40 + x1) * 3), (y - y0) * (x1 - x0) * 3);
    return { data, width: x1 - x0, height: y1 - y0 };
  };
  // Word-aligned rows with an odd number of output pixels, unaligned starts, the whole frame.
  for (const [x0, y0, x1, y1] of [[4, 2, 19, 29], [8, 1, 40, 30], [3, 1, 40, 30], [0, 0, 40, 30], [0, 3, 6, 9]]) {
    assert.deepEqual(boxDownsample(src, 2, x0, y0, x1, y1).data, referenceBoxDownsample(crop(x0, y0, x1, y1), 2), `region ${x0},${y0} to ${x1},${y1}`);
  }
  // A view into a larger buffer that does not start on a 4-byte boundary.
  const shifted = new Uint8Array(src.data.length + 1);
  shifted.set(src.data, 1);
  assert.deepEqual(boxDownsample({ ...src, data: shifted.subarray(1) }, 2).data, referenceBoxDownsample(src, 2));
});

test("a letterbox that shrinks 2x reads the averaged frame 1:1", () => {
  const src = randomImage(64, 48, 3);
  const letterbox: Affine = [2, 0, 0.5, 0, 2, 0.5];
  assert.deepEqual(warpAffine(src, letterbox, 32, 32).data.subarray(0, 32 * 24 * 3), referenceBoxDownsample(src, 2));
  assert.ok(warpAffine(src, letterbox, 32, 32).data.subarray(32 * 24 * 3).every((v) => v === 127), "rows below the frame are grey");
});
