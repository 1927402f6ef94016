import type { OnnxRuntime } from "../runtime/onnx.js";
import type { BoxPx } from "./geometry.js";
import { cropMap, toPlanarTensor, warpAffine, type RgbImage } from "./image.js";

/** Attributes estimated for one face. */
export interface FaceAttributes {
  /** Passive, single-frame anti-spoofing score, 0..1 (MiniFASNet pair): 0.5 and above reads as live. */
  liveness: number;
  age: number;
  gender: "male" | "female";
  genderConfidence: number;
  expression: string;
  expressionConfidence: number;
  pose: { yaw: number; pitch: number; roll: number };
}

/**
 * Class order of fr_expression's seven outputs: FER-2013's, as ResidualMaskingNetwork (the likely
 * source) names them in FER_2013_EMO_DICT.
 */
export const EXPRESSIONS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"] as const;

const IMAGENET_MEAN = [0.485 * 255, 0.456 * 255, 0.406 * 255] as const;
const IMAGENET_STD = [0.229 * 255, 0.224 * 255, 0.225 * 255] as const;

/**
 * Runs the liveness pair (as its reference implementation does) and the faceplugin package's age,
 * gender, expression and pose models (each with the crop and normalisation its lib/*.js uses, where
 * not stated otherwise) on one face.
 */
export async function analyzeFace(runtime: OnnxRuntime, image: RgbImage, box: BoxPx): Promise<FaceAttributes> {
  const [liveness, age, gender, expression, pose] = await Promise.all([
    predictLiveness(runtime, image, box),
    predictSsr(runtime, "age", image, box).then((v) => v * 101),
    predictSsr(runtime, "gender", image, box),
    predictExpression(runtime, image, box),
    predictPose(runtime, image, box),
  ]);
  return {
    liveness,
    age,
    gender: gender >= 0.5 ? "male" : "female",
    // The probability of the label given: the model's value for "male", or 1 minus it for "female".
    genderConfidence: gender >= 0.5 ? gender : 1 - gender,
    expression: expression.label,
    expressionConfidence: expression.confidence,
    pose,
  };
}

/**
 * The face box grown by `scale` around its centre, then shifted (not shrunk) to stay inside the
 * image, as the package's alignLivenessImage/alignAgeImage do.
 */
function scaledBoxInside(image: RgbImage, box: BoxPx, scale: number): BoxPx {
  const s = Math.min((image.height - 1) / box.height, (image.width - 1) / box.width, scale);
  const w = box.width * s;
  const h = box.height * s;
  let x = box.x + box.width / 2 - w / 2;
  let y = box.y + box.height / 2 - h / 2;
  x = Math.min(Math.max(0, x), image.width - 1 - w);
  y = Math.min(Math.max(0, y), image.height - 1 - h);
  return { x: Math.max(0, x), y: Math.max(0, y), width: w, height: h };
}

function crop(image: RgbImage, b: BoxPx, size: number): RgbImage {
  return warpAffine(image, cropMap(b.x, b.y, b.width, b.height, size, size), size, size);
}

/**
 * Passive, single-frame anti-spoofing as minivision's Silent-Face-Anti-Spoofing `test.py` does it:
 * MiniFASNetV2 on the face box scaled 2.7x and MiniFASNetV1SE on it scaled 4x (each crop by
 * `referenceCrop`, resized bilinearly without antialiasing like cv2.resize, BGR 0..255), softmax of
 * each, summed. Returns the mean probability of class 1 ("real").
 */
async function predictLiveness(runtime: OnnxRuntime, image: RgbImage, box: BoxPx): Promise<number> {
  const run = async (model: "liveness_v2" | "liveness_v1se", scale: number) => {
    const b = referenceCrop(image, box, scale);
    const input = warpAffine(image, cropMap(b.x, b.y, b.width, b.height, LIVENESS_SIZE, LIVENESS_SIZE), LIVENESS_SIZE, LIVENESS_SIZE, 1);
    const out = await runtime.run(model, { data: toPlanarTensor(input, "bgr", [0, 0, 0], [1, 1, 1]), dims: [1, 3, LIVENESS_SIZE, LIVENESS_SIZE] });
    return softmax(out.output.data as Float32Array)[1];
  };
  const [v2, v1se] = await Promise.all([run("liveness_v2", 2.7), run("liveness_v1se", 4)]);
  return (v2 + v1se) / 2;
}

const LIVENESS_SIZE = 80;

/**
 * `CropImage._get_new_box` of the reference (src/generate_patches.py): the box scaled around its
 * centre and shifted inside as scaledBoxInside does, then its corners truncated to whole pixels;
 * the crop includes its bottom-right pixel.
 */
function referenceCrop(image: RgbImage, box: BoxPx, scale: number): BoxPx {
  const b = scaledBoxInside(image, box, scale);
  const left = Math.trunc(b.x), top = Math.trunc(b.y);
  return { x: left, y: top, width: Math.trunc(b.x + b.width) - left + 1, height: Math.trunc(b.y + b.height) - top + 1 };
}

/**
 * The square of the box's longer side around its centre: SSR-Net was fed square crops. On the
 * labelled photos gender's balanced accuracy was 0.699 on YuNet's (taller) box and 0.759 on this.
 */
function squareAround(box: BoxPx): BoxPx {
  const side = Math.max(box.width, box.height);
  return { x: box.x + box.width / 2 - side / 2, y: box.y + box.height / 2 - side / 2, width: side, height: side };
}

/** SSR-Net (age and gender share it): box x1.4, 64x64, ImageNet normalisation, three-stage soft regression. */
async function predictSsr(runtime: OnnxRuntime, model: "age" | "gender", image: RgbImage, box: BoxPx): Promise<number> {
  const input = crop(image, scaledBoxInside(image, squareAround(box), 1.4), 64);
  const data = toPlanarTensor(input, "rgb", IMAGENET_MEAN, IMAGENET_STD);
  const out = await runtime.run(model, { data, dims: [1, 3, 64, 64] });
  const get = (name: string) => Array.from(out[name].data as Float32Array);
  const prob = [get("prob_stage_1"), get("prob_stage_2"), get("prob_stage_3")];
  const delta = [get("stage1_delta_k")[0], get("stage2_delta_k")[0], get("stage3_delta_k")[0]];
  const offset = [get("index_offset_stage1"), get("index_offset_stage2"), get("index_offset_stage3")];
  // mergeAge/mergeGender of the package with s1 = s2 = s3 = 3 and lambda_local = lambda_d = 1.
  let value = 0;
  let denominator = 1;
  for (let stage = 0; stage < 3; stage++) {
    denominator *= 3 * (1 + delta[stage]);
    let sum = 0;
    for (let i = 0; i < 3; i++) sum += (i + offset[stage][i]) * prob[stage][i];
    value += sum / denominator;
  }
  return value;
}

/**
 * The package's crop: box extended 1.2x to the right and down, clipped, 224x224 RGB, x/255.
 * ResidualMaskingNetwork's own (a grey square of 1.1x the box around its centre) was tried: it read
 * the smiling test portraits obama.jpg and biden.jpg as neutral (0.54, 0.99), so it is not used.
 */
async function predictExpression(runtime: OnnxRuntime, image: RgbImage, box: BoxPx): Promise<{ label: string; confidence: number }> {
  const w = Math.min(box.width * 1.2, image.width - box.x);
  const h = Math.min(box.height * 1.2, image.height - box.y);
  const input = crop(image, { x: box.x, y: box.y, width: w, height: h }, 224);
  const data = toPlanarTensor(input, "rgb", [0, 0, 0], [255, 255, 255]);
  const out = await runtime.run("expression", { data, dims: [1, 3, 224, 224] });
  const p = softmax(out.output.data as Float32Array);
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  return { label: EXPRESSIONS[best] ?? "unknown", confidence: p[best] };
}

/** HopeNet-style: box grown by a quarter on each side, 224x224, ImageNet; 66 bins of 3 degrees from -99. */
async function predictPose(runtime: OnnxRuntime, image: RgbImage, box: BoxPx): Promise<{ yaw: number; pitch: number; roll: number }> {
  const x1 = Math.max(0, box.x - box.width / 4);
  const y1 = Math.max(0, box.y - box.height / 4);
  const x2 = Math.min(image.width, box.x + box.width * 1.25);
  const y2 = Math.min(image.height, box.y + box.height * 1.25);
  const input = crop(image, { x: x1, y: y1, width: x2 - x1, height: y2 - y1 }, 224);
  const data = toPlanarTensor(input, "rgb", IMAGENET_MEAN, IMAGENET_STD);
  const out = await runtime.run("pose", { data, dims: [1, 3, 224, 224] });
  const angle = (name: string) => softmax(out[name].data as Float32Array).reduce((s, p, i) => s + p * i, 0) * 3 - 99;
  return { yaw: angle("output"), pitch: angle("617"), roll: angle("618") };
}

/** Numerically stable softmax. */
export function softmax(logits: Float32Array | number[]): number[] {
  const max = Math.max(...logits);
  const exps = Array.from(logits, (v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}
