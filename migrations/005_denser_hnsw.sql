-- A denser HNSW graph for the faces: m 32, ef_construction 200 instead of pgvector's defaults
-- (16, 64). Measured by hand on the 100k PostgreSQL gallery of npm run bench:search (typical
-- second photos at cosine distance 0.31): recall@1 0.97 at ef_search 40 in 4.3 ms where the old
-- graph gave 0.73 in 3.5 ms, and 0.86 at ef_search 100 in 7.4 ms. The price is build time (100k faces: 260 s instead
-- of ~60 s on 2 cores) and a slower insert per Register. Rebuilding takes that long once, at the
-- first start after upgrading; the service starts listening when it is done.
-- The graph is built fastest while it fits in maintenance_work_mem: at least 1GB for this
-- transaction (the graph of 100k faces takes 260 MB), or more where the server is configured so.
SELECT set_config('maintenance_work_mem', '1GB', true) FROM pg_settings
 WHERE name = 'maintenance_work_mem' AND setting::bigint < 1024 * 1024;
DROP INDEX faces_embedding_hnsw;
CREATE INDEX faces_embedding_hnsw ON faces USING hnsw (embedding vector_cosine_ops) WITH (m = 32, ef_construction = 200);
