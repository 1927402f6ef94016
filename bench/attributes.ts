/**
 * What Analyze's estimates are worth, measured on labelled photos: gender against the `gender` of
 * ../shared/faces/manifest.json (balanced accuracy, and accuracy by stated confidence), liveness on
 * the same real photos (share scored live) and on minivision's reference samples (spoof/), and
 * head pose checked for consistency with the detector's landmarks and with mirrored photos.
 *
 *   npm run bench:attributes
 */
import sharp from "sharp";
import { createFaceEngine } from "../src/engine/pipeline.js";
import { createOnnxRuntime } from "../src/runtime/onnx.js";
import { face, manifest } from "../test/support/testdata.js";
import { printTable } from "./table.js";

const engine = createFaceEngine({ runtime: createOnnxRuntime({ intraOpThreads: 1, workers: 2 }), limits: { maxPixels: 100_000_000 } });

async function analyzePrimary(bytes: Uint8Array) {
  const image = await engine.decode(bytes);
  const faces = await engine.locate(image, 1);
  if (faces.length === 0) return undefined;
  const [attributes] = await engine.analyze(image, faces);
  return { face: faces[0], attributes };
}

/** Pearson correlation. */
function correlation(a: number[], b: number[]): number {
  const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
  const ma = mean(a), mb = mean(b);
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) ** 2;
    bb += (b[i] - mb) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

const entries = manifest() as { file: string; identity: string; gender: "male" | "female" }[];
const gender = { male: { n: 0, right: 0 }, female: { n: 0, right: 0 } };
const byConfidence = [[0.5, 0.6], [0.6, 0.7], [0.7, 0.8], [0.8, 0.9], [0.9, 1.01]].map(([lo, hi]) => ({ lo, hi, n: 0, right: 0 }));
let live = 0, analysed = 0;
const roll: number[] = [], eyeAngle: number[] = [], yaw: number[] = [], noseOffset: number[] = [];
const mirroredYaw: number[] = [], mirroredRoll: number[] = [], mirroredPitch: number[] = [], ownYaw: number[] = [], ownRoll: number[] = [], ownPitch: number[] = [];
for (const entry of entries) {
  const bytes = face(entry.file);
  const found = await analyzePrimary(bytes);
  if (!found) continue;
  const { attributes: a, face: f } = found;
  analysed++;
  if (a.liveness >= 0.5) live++;
  gender[entry.gender].n++;
  const right = a.gender === entry.gender;
  if (right) gender[entry.gender].right++;
  const bucket = byConfidence.find((b) => a.genderConfidence >= b.lo && a.genderConfidence < b.hi)!;
  bucket.n++;
  if (right) bucket.right++;
  // Roll against the angle of the line between the eyes; yaw against how far the nose tip sits from
  // the middle of the eyes, in eye distances (both from the detector's landmarks).
  const [le, re, nose] = f.landmarks;
  eyeAngle.push((Math.atan2(re.y - le.y, re.x - le.x) * 180) / Math.PI);
  roll.push(a.pose.roll);
  noseOffset.push((nose.x - (le.x + re.x) / 2) / Math.hypot(re.x - le.x, re.y - le.y));
  yaw.push(a.pose.yaw);
  const mirrored = await analyzePrimary(new Uint8Array(await sharp(bytes).rotate().flop().png().toBuffer()));
  if (mirrored) {
    ownYaw.push(a.pose.yaw); ownRoll.push(a.pose.roll); ownPitch.push(a.pose.pitch);
    mirroredYaw.push(mirrored.attributes.pose.yaw); mirroredRoll.push(mirrored.attributes.pose.roll); mirroredPitch.push(mirrored.attributes.pose.pitch);
  }
}

const recall = (g: { n: number; right: number }) => g.right / g.n;
printTable(`Gender on ${analysed} labelled photos (manifest.json)`, [{
  "male: right": `${gender.male.right}/${gender.male.n}`,
  "female: right": `${gender.female.right}/${gender.female.n}`,
  "balanced accuracy": ((recall(gender.male) + recall(gender.female)) / 2).toFixed(3),
}]);
printTable("Gender accuracy by stated confidence", byConfidence.map((b) => ({
  confidence: `${b.lo.toFixed(1)}-${Math.min(1, b.hi).toFixed(1)}`, photos: b.n, accuracy: b.n ? (b.right / b.n).toFixed(3) : "-",
})));

const spoofRows = [];
for (const [file, expected] of [["spoof/image_F1.jpg", "fake"], ["spoof/image_F2.jpg", "fake"], ["spoof/image_T1.jpg", "real"]]) {
  const found = await analyzePrimary(face(file));
  spoofRows.push({ sample: file, reference: expected, liveness: found ? found.attributes.liveness.toFixed(3) : "no face", "here": found && found.attributes.liveness >= 0.5 ? "real" : "fake" });
}
printTable("Liveness on minivision's reference samples", spoofRows);
printTable("Liveness on the labelled real photos", [{ photos: analysed, "scored live (>= 0.5)": `${live} (${((100 * live) / analysed).toFixed(1)} %)` }]);

printTable("Head pose against the landmarks and mirrored photos (Pearson r; a mirror flips yaw and roll, keeps pitch)", [{
  "roll vs eye-line angle": correlation(roll, eyeAngle).toFixed(3),
  "yaw vs nose offset": correlation(yaw, noseOffset).toFixed(3),
  "yaw vs mirrored yaw": correlation(ownYaw, mirroredYaw).toFixed(3),
  "roll vs mirrored roll": correlation(ownRoll, mirroredRoll).toFixed(3),
  "pitch vs mirrored pitch": correlation(ownPitch, mirroredPitch).toFixed(3),
}]);
process.exit(0);
