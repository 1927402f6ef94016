import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import { warpAffine, type RgbImage } from "../src/engine/image.js";
import { letterbox } from "../src/engine/letterbox.js";
import { face } from "./support/testdata.js";

/** The JavaScript letterbox the engine uses up to 1080p, for comparison. */
function letterboxInJs(image: RgbImage, x: number, y: number, w: number, h: number, outW: number, outH: number): RgbImage {
  const scale = Math.max(w / outW, h / outH);
  return warpAffine(image, [scale, 0, x + scale * 0.5 - 0.5, 0, scale, y + scale * 0.5 - 0.5], outW, outH);
}

function meanAbsoluteDifference(a: RgbImage, b: RgbImage): number {
  let sum = 0;
  for (let i = 0; i < a.data.length; i++) sum += Math.abs(a.data[i] - b.data[i]);
  return sum / a.data.length;
}

describe("letterboxing a large image on libvips' threads", () => {
  it("gives the model the same input as the JavaScript path, for the whole frame, a tile, a padded canvas and an enlarged closer look", async () => {
    // 3000x3748: over the 1080p size up to which the JavaScript path is used.
    const { data, info } = await sharp(face("face_recognition/obama.jpg")).resize({ width: 3000 }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const image: RgbImage = { data: new Uint8Array(data), width: info.width, height: info.height };
    const regions: [number, number, number, number][] = [
      [0, 0, image.width, image.height],
      [640, 480, 1000, 750],
      [-image.width / 2, -image.height / 2, image.width * 2, image.height * 2],
      // Enlarged 2.5 times, starting inside a pixel (a closer look at a small face).
      [1200.6, 1500.3, 128.4, 96.3],
    ];
    for (const [x, y, w, h] of regions) {
      const viaLibvips = await letterbox(image, x, y, w, h, 320, 240);
      const viaJs = letterboxInJs(image, x, y, w, h, 320, 240);
      const difference = meanAbsoluteDifference(viaLibvips.input, viaJs);
      assert.ok(difference < 4, `region ${[x, y, w, h]}: mean difference ${difference.toFixed(2)} of 255`);
      // The mapping back to the image agrees with the region to within a source pixel or step.
      const scale = Math.max(w / 320, h / 240);
      const step = Math.max(1, scale);
      assert.ok(Math.abs(viaLibvips.originX - x) <= step && Math.abs(viaLibvips.originY - y) <= step);
      assert.ok(Math.abs(viaLibvips.scaleX - scale) / scale < 0.01 && Math.abs(viaLibvips.scaleY - scale) / scale < 0.01);
    }
  });
});
