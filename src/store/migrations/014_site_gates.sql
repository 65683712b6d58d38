-- The registry's view of its site's gates (issue 17): per gate, the register
-- entry it last reported applied (its retained `applied` topic) and when the
-- registry heard it, and the last of the gate's own events stored here
-- (its seq in the gate's log: what the registry acknowledges). A gate's events
-- are stored in `event` with the gate's event id, so a resent one is stored once.

CREATE TABLE site_gate (
    gateway      TEXT PRIMARY KEY,
    applied_seq  INTEGER NOT NULL DEFAULT 0,
    applied_at   TEXT,
    heard_at     TEXT,
    events_seq   INTEGER NOT NULL DEFAULT 0
);
