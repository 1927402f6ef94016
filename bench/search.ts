/**
 * 1:N search at scale: latency and recall@1 of the service's own search query (the identity store)
 * against an exact scan, on synthetic galleries of 10k and 100k faces on PGlite and, when
 * BENCH_DATABASE_URL names a PostgreSQL server with pgvector, 10k, 100k and 1M faces there. Then
 * the choice for collections: 100k faces over 100 collections, searched with one filtered HNSW index
 * (iterative scans), per-collection partial indexes, list partitions, and an exact scan of the
 * collection's rows.
 *
 *   npm run bench:search                      (PGlite; the first run seeds bench/.data, up to 40 min)
 *   BENCH_DATABASE_URL=postgres://... npm run bench:search   (adds the server; the 1M seed takes about an hour)
 *
 * Probes are enrolled embeddings moved to cosine distance 0.31 (a typical second photo) and 0.5 (a
 * hard one); recall@1 counts agreement of the top user with an exact scan.
 *   BENCH_SEARCH_SIZES=10000,100000 leaves out the million.
 */
import { collectionStrategies, gallerySearch, PROBE_DISTANCES, PROBES, searchTargets, type Row } from "./support/search-runs.js";
import { printTable } from "./table.js";

/**
 * ef_search values of the sweep. At 200 the planner already estimates the HNSW scan dearer than
 * reading the table and sorts every row instead (exact, and ~145 ms at 100k on PostgreSQL).
 */
const EF_SEARCH_VALUES = [40, 64, 100];
const galleryRows: Row[] = [];
const collectionRows: Row[] = [];
for (const { target, sizes, maintenanceWorkMem } of searchTargets()) {
  for (const size of sizes) galleryRows.push(...(await gallerySearch(target, size, maintenanceWorkMem, EF_SEARCH_VALUES)));
  collectionRows.push(...(await collectionStrategies(target, maintenanceWorkMem)));
}
printTable(`1:N search, the service's query (top-1 user), ${PROBES} probes of each kind (cosine distance from an enrolled face); recall@1 against an exact scan`, galleryRows);
printTable(`Search inside one collection: 100k faces over 100 collections of 1k, top-4 faces, ${PROBES} probes at distance ${PROBE_DISTANCES.hard}`, collectionRows);
