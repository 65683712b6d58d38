-- The trusted time floor: the latest time the gateway had reason to trust
-- (a synchronised clock reading, the newest event it wrote, a signed station
-- timestamp). "Now" never falls below it, so an expiry before it is always
-- enforced. One row; milliseconds since the Unix epoch (UTC).
CREATE TABLE trusted_time (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    floor_ms    INTEGER NOT NULL,
    -- What last raised it: 'clock', 'events', 'station', 'running'.
    source      TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);

-- Per station key, the newest `issued_at` of a command the gateway accepted:
-- a state-changing command issued before it (minus the allowed skew) is
-- refused whatever the clock says, across restarts.
CREATE TABLE station_key_mark (
    public_key  TEXT PRIMARY KEY,
    issued_ms   INTEGER NOT NULL,
    nonce       TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
