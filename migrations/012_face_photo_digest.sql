-- The SHA-256 of the photo each face was read from, whether the photo is kept or not (image_sha256
-- names a kept photo, and is NULL with FACE_STORE_IMAGES=false). The same photo registered again
-- for a user is one reference: without photos kept, every retried Register added the same face
-- once more, up to the user's limit of reference photos. Faces stored before this migration have
-- NULL here (their kept photo's image_sha256 still tells): filling it in would rewrite every face
-- row, and with it the HNSW index.
ALTER TABLE faces ADD COLUMN photo_sha256 text;
