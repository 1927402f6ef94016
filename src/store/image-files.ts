import { randomBytes } from "node:crypto";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { OWNER_ONLY_DIRECTORY, OWNER_ONLY_FILE } from "./owner-only.js";

/** Original images on disk, named by the SHA-256 of their bytes. */
export interface ImageFiles {
  /** Writes the bytes unless a file with that hash exists; atomic (temp file + rename). */
  put(sha256: string, bytes: Uint8Array): Promise<void>;
  read(sha256: string): Promise<Uint8Array>;
  remove(sha256: string): Promise<void>;
  exists(sha256: string): Promise<boolean>;
  path(sha256: string): string;
  /** Every stored image (and leftover temporary file) with its last modification time. */
  list(): Promise<{ name: string; path: string; modified: Date }[]>;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Stores images under `root/ab/abcdef...` (two-letter fan-out keeps directories small). */
export function createImageFiles(root: string): ImageFiles {
  function path(sha256: string): string {
    // The name comes from our own hash, but a path is never built from anything else.
    if (!SHA256_HEX.test(sha256)) throw new Error(`not a sha256: ${sha256}`);
    return join(root, sha256.slice(0, 2), sha256);
  }

  async function exists(sha256: string): Promise<boolean> {
    try {
      await stat(path(sha256));
      return true;
    } catch {
      return false;
    }
  }

  return {
    path,
    exists,
    async put(sha256, bytes) {
      if (await exists(sha256)) return;
      const target = path(sha256);
      await mkdir(join(root, sha256.slice(0, 2)), { recursive: true, mode: OWNER_ONLY_DIRECTORY });
      const temporary = `${target}.${randomBytes(6).toString("hex")}.tmp`;
      try {
        await writeFile(temporary, bytes, { flush: true, mode: OWNER_ONLY_FILE });
        await rename(temporary, target);
      } catch (e) {
        await rm(temporary, { force: true });
        throw e;
      }
    },
    async read(sha256) {
      return new Uint8Array(await readFile(path(sha256)));
    },
    async remove(sha256) {
      await rm(path(sha256), { force: true });
    },
    async list() {
      const result: { name: string; path: string; modified: Date }[] = [];
      for (const dir of await readdir(root).catch(() => [] as string[])) {
        for (const name of await readdir(join(root, dir)).catch(() => [] as string[])) {
          const file = join(root, dir, name);
          const info = await stat(file).catch(() => undefined);
          if (info?.isFile()) result.push({ name, path: file, modified: info.mtime });
        }
      }
      return result;
    },
  };
}
