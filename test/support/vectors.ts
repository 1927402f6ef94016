import { createHash } from "node:crypto";
import { EMBEDDING_SIZE } from "../../src/engine/embed.js";
import type { StoredFace } from "../../src/store/identities.js";

/** A unit vector at cosine distance `distance` from axis 0, turned towards axis `axis`. */
export function vectorAt(distance: number, axis: number): Float32Array {
  const v = new Float32Array(EMBEDDING_SIZE);
  const cos = 1 - distance;
  v[0] = cos;
  v[axis] = Math.sqrt(1 - cos * cos);
  return v;
}

/** A seeded pseudo-random unit vector (mulberry32), so a failure can be replayed. */
export function randomUnit(seed: number): Float32Array {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
  };
  return unit(Float32Array.from({ length: EMBEDDING_SIZE }, next));
}

/** `base` moved part of the way towards a random direction (`amount` 0: base itself). */
export function near(base: Float32Array, seed: number, amount: number): Float32Array {
  const other = randomUnit(seed);
  return unit(base.map((x, i) => (1 - amount) * x + amount * other[i]));
}

function unit(v: Float32Array): Float32Array {
  const norm = Math.hypot(...v);
  return v.map((x) => x / norm);
}

/** A reference face with this embedding and plausible quality fields; its "photo" is the embedding (the same embedding twice is the same photo). */
export function storedFace(embedding: Float32Array): StoredFace {
  const photoSha256 = createHash("sha256").update(new Uint8Array(embedding.buffer, embedding.byteOffset, embedding.byteLength)).digest("hex");
  return { embedding, model: "test", box: { x: 0, y: 0, width: 100, height: 100 }, score: 0.99, sharpness: 100, brightness: 120, photoSha256 };
}
