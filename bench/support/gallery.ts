/**
 * Synthetic galleries for search benchmarks: users with one face each, whose embeddings are random
 * directions in 512 dimensions (isotropic Gaussian, normalised), generated inside the database so a
 * million rows need no round trips. Unrelated faces of a real model sit at cosine distance ~1 from
 * each other, as random directions do; a "second photo" of an enrolled user is simulated by adding
 * noise to their embedding (see `probeNear`).
 */
import type { Knex } from "knex";
import pgvector from "pgvector";

const DIMENSIONS = 512;
const BATCH = 10_000;

/** A standard normal draw in SQL (Box-Muller); `1 - random()` keeps ln() away from 0. */
const GAUSSIAN = "sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())";

/**
 * Adds `count` users named `synthetic-<n>` (n from `firstNumber`) to `collection`, one primary face
 * each, and returns how many rows now exist there. Runs in batches so PGlite's memory stays small.
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
              l2_normalize(ARRAY(SELECT ${GAUSSIAN} FROM generate_series(1, ${DIMENSIONS}) WHERE u.id IS NOT NULL)::vector),
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

/** `count` embeddings of random users of `collection`, with their identifiers. */
export async function sampleUsers(knex: Knex, collection: string, count: number): Promise<{ identifier: string; embedding: Float32Array }[]> {
  const rows = (await knex.raw(
    `SELECT u.identifier, f.embedding::text AS embedding FROM faces f JOIN users u ON u.id = f.user_id
      WHERE f.collection = ? ORDER BY random() LIMIT ?`,
    [collection, count],
  )).rows as { identifier: string; embedding: string }[];
  return rows.map((r) => ({ identifier: r.identifier, embedding: Float32Array.from(pgvector.fromSql(r.embedding) as number[]) }));
}

/**
 * A unit vector at cosine distance ~`distance` from the unit vector `embedding`: what another photo
 * of the same person looks like to the model (same-person pairs of the test photos lie at 0.2-0.5).
 */
export function probeNear(embedding: Float32Array, distance: number, random: () => number = Math.random): Float32Array {
  // For isotropic noise n with per-dimension variance s², cos(e, e + n) ~ 1 / sqrt(1 + s² d).
  const cosine = 1 - distance;
  const sigma = Math.sqrt((1 / (cosine * cosine) - 1) / embedding.length);
  const probe = embedding.map((v) => v + sigma * gaussian(random));
  const norm = Math.hypot(...probe);
  return probe.map((v) => v / norm);
}

function gaussian(random: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}
