-- ExportUser reads a person's detection log a page at a time, newest first, from where the
-- previous page ended (id < the last id it gave): this index finds each page without sorting all
-- of the person's entries, which a camera adds to at every frame. It also serves what
-- (collection, identifier) served.
CREATE INDEX detections_person_id ON detections (collection, identifier, id);
DROP INDEX detections_collection_identifier;
