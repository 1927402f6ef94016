import type { OnnxRuntime } from "../runtime/onnx.js";
import type { BoxPx, PointPx } from "./geometry.js";

export type { PointPx } from "./geometry.js";
import { cropMap, toGrey, warpAffine, type RgbImage } from "./image.js";


const INPUT_SIZE = 64;

/**
 * Predicts 68 landmarks with the package's fr_landmark model (grey 64x64 crop of the square face
 * box, x/256) and reduces them to the five points of the ArcFace template.
 */
export async function predictFivePoints(runtime: OnnxRuntime, image: RgbImage, box: BoxPx): Promise<PointPx[]> {
  const crop = warpAffine(image, cropMap(box.x, box.y, box.width, box.height, INPUT_SIZE, INPUT_SIZE), INPUT_SIZE, INPUT_SIZE);
  const grey = toGrey(crop);
  for (let i = 0; i < grey.length; i++) grey[i] /= 256;
  const out = await runtime.run("landmark", { data: grey, dims: [1, 1, INPUT_SIZE, INPUT_SIZE] });
  const raw = out.output.data as Float32Array;
  const points: PointPx[] = [];
  for (let i = 0; i < 68; i++) points.push({ x: box.x + raw[i * 2] * box.width, y: box.y + raw[i * 2 + 1] * box.height });
  return fivePointsOf68(points);
}

/**
 * The 68-point (iBUG) scheme reduced as the package does: eye centres from four eyelid points each,
 * the nose tip, and each mouth corner averaged between outer and inner lip.
 */
export function fivePointsOf68(p: PointPx[]): PointPx[] {
  const mean = (...idx: number[]): PointPx => ({
    x: idx.reduce((s, i) => s + p[i].x, 0) / idx.length,
    y: idx.reduce((s, i) => s + p[i].y, 0) / idx.length,
  });
  return [mean(37, 38, 40, 41), mean(43, 44, 46, 47), mean(30), mean(48, 60), mean(54, 64)];
}
