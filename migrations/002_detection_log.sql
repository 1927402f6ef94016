-- Every face seen by SyncFrame/Sync, known or not, as the dlib-based service this one replaces
-- logged them: who, when, where in which frame.
CREATE TABLE detections (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  collection  text NOT NULL REFERENCES collections (name) ON DELETE CASCADE,
  identifier  text,
  frame_id    text NOT NULL,
  track_id    integer NOT NULL,
  box_x       real NOT NULL,
  box_y       real NOT NULL,
  box_width   real NOT NULL,
  box_height  real NOT NULL,
  confidence  real NOT NULL,
  distance    real NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX detections_collection_created_at ON detections (collection, created_at);
CREATE INDEX detections_collection_identifier ON detections (collection, identifier);
