/**
 * The faces' HNSW index in two of the forms pgvector offers, side by side on one gallery: the full
 * vectors (what the service builds) and halfvec (16-bit floats, an expression index on
 * `embedding::halfvec(512)`), both m 32 / ef_construction 200, searched with the same probes in
 * alternating passes, so the machine's drift within a run moves both alike. Until 2026-12-05 the two
 * were compared by hand on different days, and at a million faces that is where the question stands
 * (docs/benchmarks.md, Search).
 *
 *   BENCH_DATABASE_URL=postgres://... npm run bench:index-forms   (10k, 100k and 1M faces)
 *   BENCH_SEARCH_SIZES=100000 ...                                (one size)
 *
 * PostgreSQL only: the question is the million-face search, and a PGlite gallery sizes its buffer
 * cache to its files, which a copy would change for the other benchmarks. The galleries are
 * bench:search's; each gets a copy of its synthetic faces (`index_forms`, made once) holding both indexes, so
 * the service's own table keeps its one index. The query is the bare top-4 search of one collection
 * (the service's adds its users and negative examples around it alike for both forms).
 */
import type { Knex } from "knex";
import { openGallery, type GalleryTarget } from "./support/galleries.js";
import { measure, prewarm, PROBES, probeKinds, relationExists, searchTargets, type Row } from "./support/search-runs.js";
import { vectorParam } from "../src/store/vector-param.js";
import { printTable } from "./table.js";

const EF_SEARCH_VALUES = [40, 64, 100];
const PASSES = 2;
const TABLE = "index_forms";
const COLLECTION = "default";

const FORMS = {
  vector: { index: `CREATE INDEX index_forms_vector ON ${TABLE} USING hnsw (embedding vector_cosine_ops) WITH (m = 32, ef_construction = 200)`, orderBy: "embedding <=> ?::vector" },
  halfvec: { index: `CREATE INDEX index_forms_halfvec ON ${TABLE} USING hnsw ((embedding::halfvec(512)) halfvec_cosine_ops) WITH (m = 32, ef_construction = 200)`, orderBy: "embedding::halfvec(512) <=> ?::vector::halfvec(512)" },
} as const;
type Form = keyof typeof FORMS;

/**
 * The copy of the gallery's synthetic faces with both indexes, made (and timed) when missing or
 * stale: a gallery seeded again has new ids (and the same count); the users bench runs register
 * are left out.
 */
async function prepareCopy(knex: Knex, maintenanceWorkMem: string): Promise<Record<Form, string>> {
  const synthetic = "WHERE model = 'synthetic'";
  const summary = async (table: string) => JSON.stringify((await knex.raw(`SELECT count(*)::int AS n, max(id)::text AS top FROM ${table}`)).rows[0]);
  if (!(await relationExists(knex, TABLE)) || (await summary(TABLE)) !== (await summary(`faces ${synthetic}`))) {
    await knex.raw(`DROP TABLE IF EXISTS ${TABLE}`);
    await knex.raw(`CREATE TABLE ${TABLE} AS SELECT id, user_id, collection, embedding FROM faces ${synthetic}`);
  }
  await knex.raw(`SET maintenance_work_mem = '${maintenanceWorkMem}'`);
  const built: Record<Form, string> = { vector: "before this run", halfvec: "before this run" };
  for (const form of Object.keys(FORMS) as Form[]) {
    if (await relationExists(knex, `index_forms_${form}`)) continue;
    const start = performance.now();
    await knex.raw(FORMS[form].index);
    built[form] = `${((performance.now() - start) / 1000).toFixed(0)} s`;
  }
  await knex.raw("RESET maintenance_work_mem");
  await knex.raw(`ANALYZE ${TABLE}`);
  return built;
}

async function compare(target: GalleryTarget, size: number, maintenanceWorkMem: string): Promise<Row[]> {
  const database = await openGallery(target, `gallery-${size}`, size, [COLLECTION], maintenanceWorkMem);
  const knex = database.knex;
  try {
    const built = await prepareCopy(knex, maintenanceWorkMem);
    const kinds = await probeKinds(knex, TABLE, COLLECTION);
    const megabytes: Record<Form, string> = { vector: "", halfvec: "" };
    for (const form of Object.keys(FORMS) as Form[]) megabytes[form] = ((await knex.raw("SELECT pg_relation_size(?) AS b", [`index_forms_${form}`])).rows[0].b / 2 ** 20).toFixed(0);
    await prewarm(knex, "index_forms_vector", "index_forms_halfvec");
    const rows: Row[] = [];
    for (let pass = 1; pass <= PASSES; pass++) {
      for (const efSearch of EF_SEARCH_VALUES) {
        for (const form of Object.keys(FORMS) as Form[]) {
          const search = ({ probe }: { probe: Float32Array }) => knex.transaction(async (trx) => {
            await trx.raw(`SET LOCAL hnsw.ef_search = ${efSearch}`);
            const result = await trx.raw(`SELECT user_id FROM ${TABLE} WHERE collection = ? ORDER BY ${FORMS[form].orderBy} LIMIT 4`, [COLLECTION, vectorParam(probe)]);
            return result.rows.length > 0 ? String(result.rows[0].user_id) : undefined;
          });
          for (const { kind, probes, exact } of kinds) {
            rows.push({ faces: size, index: form, "index MB": megabytes[form], built: built[form], pass, ef_search: efSearch, probes: kind, ...(await measure(probes, exact, search)) });
          }
        }
      }
    }
    return rows;
  } finally {
    await database.close();
  }
}

const servers = searchTargets().filter((t) => t.target.kind === "postgres");
if (servers.length === 0) throw new Error("bench:index-forms measures a PostgreSQL server with pgvector: set BENCH_DATABASE_URL=postgres://...");
const rows: Row[] = [];
for (const { target, sizes, maintenanceWorkMem } of servers) {
  for (const size of sizes) rows.push(...(await compare(target, size, maintenanceWorkMem)));
}
printTable(`HNSW index forms (m 32 / ef_construction 200), bare top-4 search of one collection, ${PROBES} probes of each kind, ${PASSES} alternating passes; recall@1 against an exact scan`, rows);
