-- One register for every gateway of a site (issue 17). `site_state` holds
-- this gateway's role and, on a gate, how far it has applied the registry's
-- change log; `applying` is 1 only inside a gate's own apply transaction (the
-- guard triggers let those writes through; it is reset before commit).
-- On the registry, capture triggers (made by `store::site_log::configure`,
-- since they depend on the role) note each changed register row in
-- `site_pending` in the changing transaction; sealing turns the pending rows
-- into the next `site_log` entry: the full new state of each row, or its
-- deletion, under a sequence number. `sig` is the registry's Ed25519
-- signature over the entry, added before it is published.

CREATE TABLE site_state (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    role               TEXT NOT NULL DEFAULT 'standalone' CHECK (role IN ('standalone', 'registry', 'gate')),
    site_id            TEXT,
    applying           INTEGER NOT NULL DEFAULT 0 CHECK (applying IN (0, 1)),
    -- Gate: the last entry applied, and when it was applied.
    applied_seq        INTEGER NOT NULL DEFAULT 0,
    applied_at         TEXT,
    -- Registry: entries up to here were compacted away (a gate behind it takes a snapshot).
    compacted_through  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO site_state (id) VALUES (1);

CREATE TABLE site_pending (
    id    INTEGER PRIMARY KEY,
    tbl   TEXT NOT NULL,
    key   INTEGER NOT NULL
);

CREATE TABLE site_log (
    seq   INTEGER PRIMARY KEY,
    at    TEXT NOT NULL,
    -- RFC 8785 canonical JSON of the entry (site, seq, changes).
    body  TEXT NOT NULL,
    -- base64 Ed25519 signature over `body`; NULL until the registry signs it.
    sig   TEXT
);

-- Gate: visitor-pass uses spent at this gate's keypads, to be reported to the
-- registry (which lowers the pass's uses_left and redistributes it, so a
-- one-use PIN used here is refused at the other gates). Filled by a trigger.
CREATE TABLE site_uses (
    id         INTEGER PRIMARY KEY,
    pass_id    INTEGER NOT NULL,
    uses_left  INTEGER NOT NULL
);
