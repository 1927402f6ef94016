import type { Knex } from "knex";

/**
 * The detection log's rows matching `where`, newest first, once at least `expected` of them are
 * written: the service queues a frame's entries and writes them within about 100 ms
 * (src/store/detections.ts). Gives up after `timeoutMs` and returns what is there.
 */
export async function writtenDetections(knex: Knex, where: Record<string, string>, expected: number, timeoutMs = 5_000): Promise<{ identifier: string | null; frame_id: string }[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rows = await knex("detections").where(where).orderBy("id", "desc").select("identifier", "frame_id");
    if (rows.length >= expected || Date.now() > deadline) return rows;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
