import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import catalogue from "../../models/catalogue.json" with { type: "json" };
import { flushDenormalWeights } from "./denormal-weights.js";
import { rewritePRelu } from "./prelu-rewrite.js";

/** Names of the models in models/catalogue.json. */
export type ModelName = keyof typeof catalogue.models;

/** Version string stored with every embedding, so a model change can be detected and re-embedded. */
export const EMBEDDING_MODEL = `faceplugin-fr_feature@${catalogue.models.feature.sha256.slice(0, 12)}`;

/** The project's models/ folder: committed model files with their licences, and those scripts/postinstall.mjs fetched. */
const MODELS_DIR = fileURLToPath(new URL("../../models/", import.meta.url));

/**
 * Reads a model file from models/ and checks it against the catalogue's sha256, so a
 * corrupted or swapped file fails loudly at start instead of returning wrong faces.
 */
export async function loadModelBytes(name: ModelName): Promise<Uint8Array> {
  const entry = catalogue.models[name];
  const path = join(MODELS_DIR, entry.file);
  const bytes = await readFile(path).catch((e: NodeJS.ErrnoException) => {
    if (e.code !== "ENOENT") throw e;
    throw new Error(`model ${name} is missing at ${path}; npm install fetches it (or run: node scripts/postinstall.mjs)`);
  });
  const sha256 = createHash("sha256").update(bytes).digest("hex");
  if (sha256 !== entry.sha256) {
    throw new Error(`model ${name} at ${path} has sha256 ${sha256}, expected ${entry.sha256}; reinstall with npm ci`);
  }
  return bytes;
}

/**
 * A model's bytes as the inference sessions load them: checked, its PRelus rewritten as operators
 * onnxruntime runs faster (prelu-rewrite.ts), denormal weights flushed to zero (denormal-weights.ts).
 */
export async function loadModelForSession(name: ModelName): Promise<Uint8Array> {
  const { model } = rewritePRelu(await loadModelBytes(name));
  flushDenormalWeights(model);
  return model;
}
