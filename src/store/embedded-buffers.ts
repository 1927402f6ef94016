import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";

/**
 * PostgreSQL's default (and PGlite's): enough for a gallery of ~25k faces with its HNSW index
 * (2.6 KB per face at m 32) and the heap beside it.
 */
const MIN_SHARED_BUFFERS_MB = 128;
/**
 * PGlite allocates and touches all of shared_buffers at start (measured: 387 MiB RSS with 128 MB,
 * 794 with 512 MB, 1336 with 1 GB), inside a 2 GB WebAssembly memory that index builds also need
 * (maintenance_work_mem is 1 GB while migration 005 runs). 512 MB holds the index of ~200k faces.
 */
const MAX_SHARED_BUFFERS_MB = 512;
const STEP_MB = 64;

/**
 * shared_buffers for an embedded database whose relation files take `relationBytes` on disk: all of
 * them when that fits between the bounds. A page PGlite does not hold in its buffers is read
 * through its WebAssembly file layer on every access: on the 100k-face gallery of the benchmarks
 * (585 MB of relations, a 260 MB index) the service's search took 17.7 ms with the default 128 MB
 * and 8.5 ms with 512 MB (p50, measured by hand; docs/benchmarks.md, Search).
 */
export function sharedBuffersMbFor(relationBytes: number): number {
  const wanted = Math.ceil(relationBytes / 2 ** 20 / STEP_MB) * STEP_MB;
  return Math.min(MAX_SHARED_BUFFERS_MB, Math.max(MIN_SHARED_BUFFERS_MB, wanted));
}

/** Bytes of the relation files under a PostgreSQL data directory (`base/`; WAL excluded); 0 when there are none yet. */
export async function relationBytesIn(pgdata: string): Promise<number> {
  const entries = await readdir(join(pgdata, "base"), { recursive: true, withFileTypes: true }).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return [];
    throw e;
  });
  const sizes = await Promise.all(entries.filter((e) => e.isFile()).map(async (e) => (await stat(join(e.parentPath, e.name))).size));
  return sizes.reduce((a, b) => a + b, 0);
}
