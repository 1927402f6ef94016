-- Faces a client said are NOT a user (CorrectMatch): a later face within FACE_NEGATIVE_MAX_DISTANCE
-- of one of them is never matched to that user again.
CREATE TABLE negative_examples (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  collection  text NOT NULL,
  embedding   vector(512) NOT NULL,
  model       text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX negative_examples_user_id ON negative_examples (user_id);
