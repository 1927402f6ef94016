import { test } from "node:test";

/** What `npm run test:postgres` runs without a server: the whole pass, counted as one skip. */
test("the whole suite again on a PostgreSQL server with pgvector", {
  skip: "TEST_DATABASE_URL is not set: point it at a PostgreSQL server with pgvector (postgres://user:pass@host:5432/db; the user creates a database per test server), or run .ci/run, which starts one",
}, () => {});
