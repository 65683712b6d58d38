-- The event log: every access decision, alarm and device event, append-only.
-- Each row's hash covers its fields and the previous row's hash (a
-- tamper-evident chain checked by `gatehouse log verify`). Subjects appear only
-- as a resident id and a masked name, so removing a person never rewrites history.

CREATE TABLE event (
    -- The gateway sequence number: the station detects gaps with it.
    seq                INTEGER PRIMARY KEY,
    -- UUIDv7, the same on every redelivery.
    id                 TEXT NOT NULL UNIQUE,
    at                 TEXT NOT NULL,
    clock_synced       INTEGER NOT NULL,
    kind               TEXT NOT NULL CHECK (kind IN ('access', 'alarm', 'device')),
    gate               TEXT,
    direction          TEXT CHECK (direction IN ('in', 'out')),
    credential_kind    TEXT,
    credential_masked  TEXT,
    subject_id         INTEGER,
    subject_name       TEXT,
    result             TEXT CHECK (result IN ('granted', 'denied')),
    reason             TEXT,
    score              REAL,
    snapshot           TEXT,
    detail             TEXT,
    prev_hash          BLOB NOT NULL,
    hash               BLOB NOT NULL
);
CREATE INDEX event_at ON event(at);
CREATE INDEX event_gate_at ON event(gate, at);
CREATE INDEX event_subject ON event(subject_id);

-- Events not yet acknowledged (PUBACK) by the station's broker, drained in seq order.
CREATE TABLE outbox (
    seq    INTEGER PRIMARY KEY REFERENCES event(seq) ON DELETE CASCADE,
    bytes  INTEGER NOT NULL
);
