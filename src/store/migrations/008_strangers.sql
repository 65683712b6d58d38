-- Faces of people not in the register, seen at the gates, kept for
-- `[face] stranger_days` (then purged) so that someone who keeps coming back
-- without being registered (a tenant nobody registered) can be reported to
-- the community police, which wants exactly that. Only the embedding and the
-- name of the snapshot file are kept; never a photo in the database.
CREATE TABLE stranger_sighting (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    -- The site-local calendar day of `at` (YYYY-MM-DD): visits count by day.
    day         TEXT NOT NULL,
    gate        TEXT NOT NULL,
    model       TEXT NOT NULL,
    -- Little-endian f32, unit length.
    embedding   BLOB NOT NULL,
    snapshot    TEXT,
    -- The unknown_face event this sighting belongs to.
    event_seq   INTEGER,
    -- The stranger: the id of the first sighting of this face (its own id
    -- for a face not seen before).
    stranger    INTEGER NOT NULL,
    -- Set on the sighting that raised a recurring_stranger alarm.
    reported_at TEXT
);
CREATE INDEX stranger_sighting_at ON stranger_sighting(at);
CREATE INDEX stranger_sighting_stranger ON stranger_sighting(stranger);
