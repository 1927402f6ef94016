import type { Knex } from "knex";
import { vectorParam } from "./vector-param.js";

/**
 * Reference photos one user may have registered (Register, "it is them", a Sync frame registering);
 * auto-added faces have their own cap (FACE_UPGRADE_MAX_FACES). A search reads the nearest faces
 * until it has `top_k` users, so a user holding thousands of faces near a query made it read
 * thousands of rows.
 */
export const MAX_REGISTERED_FACES = 100;

/**
 * "Not them" examples kept per user, the newest. Every search computes the distance from the query to
 * each negative example of each candidate: 10,000 of one user's took 40 ms per candidate face on
 * PostgreSQL (by hand), where 100 take well under a millisecond.
 */
export const MAX_NEGATIVE_EXAMPLES = 100;

/** Raised inside a registration's transaction so that it rolls back (its image row too). */
export class UserFull extends Error {}

/** Throws UserFull when the user (its row locked by the caller's transaction) has no room for another registered face. */
export async function ensureRoomForRegisteredFace(trx: Knex.Transaction, userId: number | string): Promise<void> {
  const [{ count }] = await trx("faces").where({ user_id: userId, origin: "registered" }).count({ count: "*" });
  if (Number(count) >= MAX_REGISTERED_FACES) throw new UserFull();
}

/**
 * Stores a negative example of the user and drops its oldest beyond MAX_NEGATIVE_EXAMPLES, in one
 * statement (a user deleted between a lookup and an insert cannot be written to); false when the
 * user does not exist.
 */
export async function insertNegativeExample(knex: Knex, collection: string, identifier: string, embedding: Float32Array, model: string): Promise<boolean> {
  // The statement's parts see the table as it was before it: the newest MAX - 1 examples already
  // there are kept, and the new one. PostgreSQL runs `dropped` though nothing reads it.
  const result = await knex.raw(
    `WITH target AS (SELECT id, collection FROM users WHERE collection = ? AND identifier = ? FOR KEY SHARE),
          added AS (INSERT INTO negative_examples (user_id, collection, embedding, model)
                    SELECT id, collection, ?::vector, ? FROM target RETURNING user_id),
          dropped AS (DELETE FROM negative_examples
                       WHERE user_id IN (SELECT user_id FROM added)
                         AND id NOT IN (SELECT id FROM negative_examples
                                         WHERE user_id IN (SELECT user_id FROM added)
                                         ORDER BY id DESC LIMIT ?))
     SELECT count(*) AS added FROM added`,
    [collection, identifier, vectorParam(embedding), model, MAX_NEGATIVE_EXAMPLES - 1],
  );
  return Number(result.rows[0].added) > 0;
}
