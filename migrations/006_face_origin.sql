-- Where each reference face came from: 'registered' (Register, CorrectMatch "it is them", a Sync
-- registration) or 'auto' (auto-healing added it from a Recognize). Registered faces are permanent:
-- auto-healing only adds a better capture and makes it the primary reference, and its additions
-- are capped per user, so a run of Recognize calls can neither drift a person's references away
-- from what was registered nor replace them. Faces stored before this migration count as registered.
ALTER TABLE faces ADD COLUMN origin text NOT NULL DEFAULT 'registered' CHECK (origin IN ('registered', 'auto'));
