-- The uplink to the police station: command nonces (replay protection), the
-- station's watchlist, and the uplink's own counters.

-- Every nonce of a signed command this gateway has seen, accepted or refused
-- after its signature checked out. Kept until the command has expired (a
-- replay after that is refused as expired anyway), then pruned.
CREATE TABLE uplink_nonce (
    nonce       TEXT PRIMARY KEY,
    officer     TEXT NOT NULL,
    command     TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    seen_at     TEXT NOT NULL
);
CREATE INDEX uplink_nonce_expires ON uplink_nonce(expires_at);

-- Cards, plates and face embeddings the station asks this gateway to alert on.
-- A match raises an alarm event at once; `action` says whether the gate also
-- refuses entry ('deny') or only reports ('alert').
CREATE TABLE watchlist (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('card', 'plate', 'face')),
    -- Canonical card key ("10:12345") or normalised plate; for faces the
    -- station's reference for the entry.
    value       TEXT NOT NULL,
    -- Faces: little-endian f32 embedding, L2-normalised.
    embedding   BLOB,
    action      TEXT NOT NULL DEFAULT 'alert' CHECK (action IN ('alert', 'deny')),
    -- Why the station lists it (case number, description); shown in alarms.
    label       TEXT,
    expires_at  TEXT,
    added_at    TEXT NOT NULL,
    added_by    TEXT NOT NULL,
    UNIQUE (kind, value),
    CHECK ((kind = 'face') = (embedding IS NOT NULL))
);

-- Small counters that must survive restarts (events dropped from the backlog).
CREATE TABLE uplink_state (
    key    TEXT PRIMARY KEY,
    value  INTEGER NOT NULL
);
