-- A denser HNSW graph for the faces: m 32, ef_construction 200 instead of pgvector's defaults
-- (16, 64). Measured on 100k faces on PostgreSQL (npm run bench:search, typical second photos at
-- cosine distance 0.31): recall@1 0.97 at ef_search 40 in 4.3 ms where the old graph gave 0.73 in
-- 3.5 ms, and 0.86 at ef_search 100 in 7.4 ms. The price is build time (100k faces: 260 s instead
-- of ~60 s on 2 cores) and a slower insert per Register. Rebuilding takes that long once, at the
-- first start after upgrading (a server's log shows the migration running meanwhile).
SET LOCAL maintenance_work_mem = '1GB';
DROP INDEX faces_embedding_hnsw;
CREATE INDEX faces_embedding_hnsw ON faces USING hnsw (embedding vector_cosine_ops) WITH (m = 32, ef_construction = 200);
