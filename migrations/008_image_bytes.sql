-- The bytes of kept photos, in the database when the service runs on a PostgreSQL server, so
-- instances on different machines need no shared volume (the embedded default keeps files under
-- FACE_DATA_DIR/images). A row goes with its image's row. JPEG and PNG bytes are compressed
-- already: EXTERNAL stores them out of line without trying to compress them again.
CREATE TABLE image_bytes (
  sha256  text PRIMARY KEY REFERENCES images (sha256) ON DELETE CASCADE,
  bytes   bytea NOT NULL
);
ALTER TABLE image_bytes ALTER COLUMN bytes SET STORAGE EXTERNAL;
