/**
 * Synthetic galleries for search benchmarks: users with one face each, generated inside the database
 * so a million rows need no round trips.
 *
 * The embeddings are calibrated to the model. Over the labelled photos (`npm run bench:embeddings`)
 * the cosine similarity of two different people has mean 0.006 and standard deviation 0.090: that is
 * what random directions in 1/0.090² ≈ 123 dimensions give (sd 1/sqrt(d)), so a synthetic face is a
 * random unit vector in 123 of the 512 dimensions (the rest zero; a rotation would not change any
 * distance). Isotropic random vectors in all 512 (sd 0.044) would be far harder for an approximate
 * index than real faces are. A "second photo" of an enrolled user moves their embedding to a chosen
 * distance within the same subspace (see `probeNear`).
 */
import type { Knex } from "knex";
import pgvector from "pgvector";
import { EMBEDDING_SIZE } from "../../src/engine/embed.js";

/** Effective dimension of the model's embeddings (see above). */
export const SYNTHETIC_DIMENSIONS = 123;
const BATCH = 10_000;

/** A standard normal draw in SQL (Box-Muller); `1 - random()` keeps ln() away from 0. */
const GAUSSIAN = "sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())";

/**
 * Adds `count` users named `synthetic-<n>` (n from `firstNumber`) to `collection`, one primary face
 * each. Runs in batches so PGlite's memory stays small.
 */
export async function seedSyntheticUsers(knex: Knex, collection: string, count: number, firstNumber = 0): Promise<void> {
  await knex("collections").insert({ name: collection }).onConflict("name").ignore();
  for (let start = firstNumber; start < firstNumber + count; start += BATCH) {
    const end = Math.min(firstNumber + count, start + BATCH) - 1;
    // `WHERE u.id IS NOT NULL` ties the inner query to each row: without it the planner evaluates
    // the subquery once and every user gets the same embedding.
    await knex.raw(
      `WITH new_users AS (
         INSERT INTO users (collection, identifier)
         SELECT ?, 'synthetic-' || n FROM generate_series(?::int, ?::int) n
         RETURNING id, collection)
       INSERT INTO faces (user_id, collection, embedding, model, is_primary, box_x, box_y, box_width, box_height, score, sharpness, brightness)
       SELECT u.id, u.collection,
              l2_normalize(ARRAY(SELECT CASE WHEN d <= ${SYNTHETIC_DIMENSIONS} THEN ${GAUSSIAN} ELSE 0 END
                                  FROM generate_series(1, ${EMBEDDING_SIZE}) d WHERE u.id IS NOT NULL)::vector),
              'synthetic', true, 0, 0, 112, 112, 1, 100, 128
         FROM new_users u`,
      [collection, start, end],
    );
  }
}

/**
 * Runs `load` with the faces' HNSW index dropped and rebuilds it afterwards with the same
 * definition: building an index over a million rows once is several times faster than growing it
 * row by row.
 */
export async function withIndexRebuiltAfter(knex: Knex, maintenanceWorkMem: string, load: () => Promise<void>): Promise<void> {
  const indexes = (await knex.raw(`SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'faces' AND indexdef LIKE '%USING hnsw%'`)).rows as { indexname: string; indexdef: string }[];
  for (const index of indexes) await knex.raw(`DROP INDEX ${index.indexname}`);
  await load();
  await knex.raw(`SET maintenance_work_mem = '${maintenanceWorkMem}'`);
  for (const index of indexes) await knex.raw(index.indexdef);
  await knex.raw("RESET maintenance_work_mem");
}

/**
 * `count` embeddings of random synthetic users of `collection`, with their identifiers: only they
 * lie in the subspace probeNear moves a face within (a real face registered there would be probed
 * at the wrong distance).
 */
export async function sampleUsers(knex: Knex, collection: string, count: number): Promise<{ identifier: string; embedding: Float32Array }[]> {
  const rows = (await knex.raw(
    `SELECT u.identifier, f.embedding::text AS embedding FROM faces f JOIN users u ON u.id = f.user_id
      WHERE f.collection = ? AND f.model = 'synthetic' ORDER BY random() LIMIT ?`,
    [collection, count],
  )).rows as { identifier: string; embedding: string }[];
  return rows.map((r) => ({ identifier: r.identifier, embedding: Float32Array.from(pgvector.fromSql(r.embedding) as number[]) }));
}

/**
 * A unit vector at cosine distance ~`distance` from the unit vector `embedding`: what another photo
 * of the same person looks like to the model (same-person pairs of the test photos lie at 0.2-0.5).
 */
export function probeNear(embedding: Float32Array, distance: number, random: () => number = Math.random): Float32Array {
  // For isotropic noise n with per-dimension variance s² over d dimensions, cos(e, e + n) ~ 1 / sqrt(1 + s² d).
  const cosine = 1 - distance;
  const sigma = Math.sqrt((1 / (cosine * cosine) - 1) / SYNTHETIC_DIMENSIONS);
  const probe = embedding.map((v, i) => (i < SYNTHETIC_DIMENSIONS ? v + sigma * gaussian(random) : v));
  const norm = Math.hypot(...probe);
  return probe.map((v) => v / norm);
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}
