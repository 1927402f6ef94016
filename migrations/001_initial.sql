-- Every row that belongs to a person belongs to a collection: galleries of different customers or
-- sites never see each other, and deleting a collection deletes everything in it.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE collections (
  name        text PRIMARY KEY,
  created_at  timestamptz NOT NULL DEFAULT now()
);

INSERT INTO collections (name) VALUES ('default');

-- Original images, named by the SHA-256 of their bytes: the same photo is stored once.
CREATE TABLE images (
  sha256        text PRIMARY KEY,
  content_type  text NOT NULL,
  byte_size     integer NOT NULL,
  width         integer NOT NULL,
  height        integer NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  collection  text NOT NULL REFERENCES collections (name) ON DELETE CASCADE,
  identifier  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (collection, identifier)
);

-- One row per reference photo of a user; exactly one of them is the primary reference, the one
-- GetUserFace returns and auto-healing replaces.
CREATE TABLE faces (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id       bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  collection    text NOT NULL,
  embedding     vector(512) NOT NULL,
  model         text NOT NULL,
  image_sha256  text REFERENCES images (sha256),
  is_primary    boolean NOT NULL DEFAULT false,
  box_x         real NOT NULL,
  box_y         real NOT NULL,
  box_width     real NOT NULL,
  box_height    real NOT NULL,
  score         real NOT NULL,
  sharpness     real NOT NULL,
  brightness    real NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX faces_user_id ON faces (user_id);
CREATE INDEX faces_collection ON faces (collection);
CREATE INDEX faces_image_sha256 ON faces (image_sha256);
CREATE UNIQUE INDEX faces_one_primary_per_user ON faces (user_id) WHERE is_primary;
-- Cosine distance (<=>) on unit vectors; m and ef_construction are pgvector's defaults.
CREATE INDEX faces_embedding_hnsw ON faces USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64);
