import { OUTSIDE, type Affine, type RgbImage } from "./image.js";

/**
 * Keys' cubic convolution parameter: -0.5 is Catmull-Rom (PIL's and libvips' bicubic; OpenCV uses
 * -0.75). Chosen as the standard, not tuned: -0.75 and -0.6 measured alike (docs/benchmarks.md).
 */
const KEYS_A = -0.5;

/** Rounded and clamped: cubic taps overshoot past 0 and 255 at edges. */
function toByte(v: number): number {
  return v < 0 ? 0 : v > 254.5 ? 255 : v + 0.5;
}

/** Keys' kernel for |x| <= 1 and for 1 < |x| < 2. */
function near(x: number): number {
  return ((KEYS_A + 2) * x - (KEYS_A + 3)) * x * x + 1;
}
function far(x: number): number {
  return ((KEYS_A * x - 5 * KEYS_A) * x + 8 * KEYS_A) * x - 4 * KEYS_A;
}

/**
 * Samples `src` through `map` into a new width x height RGB image with bicubic interpolation (4x4
 * taps, edges clamped), for maps that enlarge: a 24 px face warped to 112 px keeps sharper features
 * than bilinear gives it. Pixels whose sample falls outside the source are OUTSIDE, as warpAffine's.
 */
export function warpAffineCubic(src: RgbImage, map: Affine, width: number, height: number): RgbImage {
  const out = new Uint8Array(width * height * 3);
  const { data, width: sw, height: sh } = src;
  const [a, b, c, d, e, f] = map;
  const stride = sw * 3;
  // Weights and tap positions in locals, not per-pixel arrays: the same sums in the same order, 0.74 ->
  // 0.51 ms per 112x112 face (by hand, 2026-12-03).
  let o = 0;
  for (let v = 0; v < height; v++) {
    for (let u = 0; u < width; u++, o += 3) {
      const x = a * u + b * v + c, y = d * u + e * v + f;
      const x0 = Math.floor(x), y0 = Math.floor(y);
      if (x0 < -1 || y0 < -1 || x0 >= sw || y0 >= sh) {
        out[o] = out[o + 1] = out[o + 2] = OUTSIDE;
        continue;
      }
      const tx = x - x0, ty = y - y0;
      const wx0 = far(1 + tx), wx1 = near(tx), wx2 = near(1 - tx), wx3 = far(2 - tx);
      const p0 = clampedTap(x0 - 1, sw) * 3, p1 = clampedTap(x0, sw) * 3, p2 = clampedTap(x0 + 1, sw) * 3, p3 = clampedTap(x0 + 2, sw) * 3;
      let r = 0, g = 0, bl = 0;
      for (let j = 0; j < 4; j++) {
        const row = clampedTap(y0 - 1 + j, sh) * stride;
        const wy = j === 0 ? far(1 + ty) : j === 1 ? near(ty) : j === 2 ? near(1 - ty) : far(2 - ty);
        const q0 = row + p0, q1 = row + p1, q2 = row + p2, q3 = row + p3;
        r += (data[q0] * wx0 + data[q1] * wx1 + data[q2] * wx2 + data[q3] * wx3) * wy;
        g += (data[q0 + 1] * wx0 + data[q1 + 1] * wx1 + data[q2 + 1] * wx2 + data[q3 + 1] * wx3) * wy;
        bl += (data[q0 + 2] * wx0 + data[q1 + 2] * wx1 + data[q2 + 2] * wx2 + data[q3 + 2] * wx3) * wy;
      }
      out[o] = toByte(r); out[o + 1] = toByte(g); out[o + 2] = toByte(bl);
    }
  }
  return { data: out, width, height };
}

/** A tap's column or row, edges repeated. */
function clampedTap(i: number, size: number): number {
  return i < 0 ? 0 : i >= size ? size - 1 : i;
}
