/**
 * 1:N search at scale: latency and recall@1 of the service's own search query (the identity store)
 * against an exact scan, on synthetic galleries of 10k and 100k faces on PGlite and, when
 * BENCH_DATABASE_URL names a PostgreSQL server with pgvector, 10k, 100k and 1M faces there. Then
 * the choice for collections: 100k faces over 100 collections, searched with one filtered HNSW index
 * (iterative scans), per-collection partial indexes, list partitions, and an exact scan of the
 * collection's rows.
 *
 *   npm run bench:search                      (PGlite; the first run seeds bench/.data, ~5 min)
 *   BENCH_DATABASE_URL=postgres://... npm run bench:search   (adds the server; 1M seeds in ~15 min)
 *
 * Probes are enrolled embeddings moved to cosine distance 0.5 (a hard second photo), so the exact
 * nearest neighbour is almost always the source user; recall@1 counts agreement with the exact scan.
 */
import { collectionStrategies, gallerySearch, PROBE_DISTANCE, PROBES, searchTargets, type Row } from "./support/search-runs.js";
import { printTable } from "./table.js";

const galleryRows: Row[] = [];
const collectionRows: Row[] = [];
for (const { target, sizes, maintenanceWorkMem } of searchTargets()) {
  for (const size of sizes) galleryRows.push(...(await gallerySearch(target, size, maintenanceWorkMem, [40, 100, 200])));
  collectionRows.push(...(await collectionStrategies(target, maintenanceWorkMem)));
}
printTable(`1:N search, the service's query (top-1 user), ${PROBES} probes at cosine distance ${PROBE_DISTANCE} from an enrolled face; recall@1 against an exact scan`, galleryRows);
printTable(`Search inside one collection: 100k faces over 100 collections of 1k, top-4 faces, ${PROBES} probes`, collectionRows);
