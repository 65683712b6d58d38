-- The compound's registers ("一标三实": standard address, real population,
-- real housing, real units). Dates are local calendar dates 'YYYY-MM-DD'
-- (inclusive); instants are RFC 3339 UTC strings with milliseconds.

CREATE TABLE address (
    id        INTEGER PRIMARY KEY,
    building  TEXT NOT NULL,
    unit      TEXT NOT NULL,
    room      TEXT NOT NULL,
    UNIQUE (building, unit, room)
);

CREATE TABLE household (
    id          INTEGER PRIMARY KEY,
    address_id  INTEGER NOT NULL REFERENCES address(id),
    kind        TEXT NOT NULL CHECK (kind IN ('owner_occupied', 'rented', 'shared_rental', 'dormitory', 'shop')),
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE INDEX household_address ON household(address_id);

CREATE TABLE person (
    id                      INTEGER PRIMARY KEY,
    name                    TEXT NOT NULL,
    -- ID documents are never stored in clear: a keyed hash for lookup
    -- (HMAC-SHA256 with the device secret over "<kind>:<number>") and a masked form for display.
    id_kind                 TEXT NOT NULL DEFAULT 'resident_id'
                            CHECK (id_kind IN ('resident_id', 'passport', 'hk_macao_permit', 'taiwan_permit', 'foreign_permanent', 'other')),
    id_hash                 BLOB UNIQUE,
    id_masked               TEXT,
    phone                   TEXT,
    role                    TEXT NOT NULL CHECK (role IN ('owner', 'family', 'tenant', 'staff', 'guard')),
    household_id            INTEGER REFERENCES household(id),
    status                  TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'moved_out')),
    valid_from              TEXT,
    valid_until             TEXT,
    floating                INTEGER NOT NULL DEFAULT 0,
    residence_permit_until  TEXT,
    notes                   TEXT,
    created_at              TEXT NOT NULL,
    created_by              TEXT NOT NULL,
    updated_at              TEXT NOT NULL,
    updated_by              TEXT NOT NULL
);
CREATE INDEX person_name ON person(name);
CREATE INDEX person_household ON person(household_id);

CREATE TABLE card (
    id          INTEGER PRIMARY KEY,
    -- Canonical key: "<facility>:<number>" for formatted cards, "raw:<bits>" for raw frames.
    card_key    TEXT NOT NULL UNIQUE,
    format      TEXT NOT NULL CHECK (format IN ('wiegand26', 'wiegand34', 'wiegand37', 'raw')),
    person_id   INTEGER NOT NULL REFERENCES person(id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE INDEX card_person ON card(person_id);

CREATE TABLE vehicle (
    id          INTEGER PRIMARY KEY,
    plate       TEXT NOT NULL UNIQUE,
    kind        TEXT,
    colour      TEXT,
    person_id   INTEGER NOT NULL REFERENCES person(id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE INDEX vehicle_person ON vehicle(person_id);

CREATE TABLE visitor_pass (
    id            INTEGER PRIMARY KEY,
    host_id       INTEGER NOT NULL REFERENCES person(id) ON DELETE CASCADE,
    visitor_name  TEXT NOT NULL,
    phone         TEXT,
    plate         TEXT,
    -- HMAC-SHA256(device secret, "pin:<6 digits>"); unique among passes so a PIN names one pass.
    pin_hash      BLOB NOT NULL UNIQUE,
    -- JSON array of gate ids, NULL = every gate.
    gates         TEXT,
    valid_from    TEXT NOT NULL,
    valid_until   TEXT NOT NULL,
    -- NULL = unlimited within the window.
    uses_left     INTEGER,
    revoked       INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    created_by    TEXT NOT NULL
);
CREATE INDEX visitor_pass_plate ON visitor_pass(plate);

-- Access groups: a person in no group may use every gate at any time; a person
-- in one or more groups (directly or through their role) only the gates and
-- weekly windows of those groups.
CREATE TABLE access_group (
    id    INTEGER PRIMARY KEY,
    name  TEXT NOT NULL UNIQUE
);

CREATE TABLE access_group_window (
    group_id      INTEGER NOT NULL REFERENCES access_group(id) ON DELETE CASCADE,
    gate          TEXT NOT NULL,
    -- Bit 0 = Monday … bit 6 = Sunday.
    days          INTEGER NOT NULL CHECK (days BETWEEN 1 AND 127),
    -- Minutes after local midnight, start inclusive, end exclusive; end > start.
    start_minute  INTEGER NOT NULL CHECK (start_minute BETWEEN 0 AND 1439),
    end_minute    INTEGER NOT NULL CHECK (end_minute BETWEEN 1 AND 1440 AND end_minute > start_minute)
);
CREATE INDEX access_group_window_group ON access_group_window(group_id);

CREATE TABLE access_group_member (
    group_id   INTEGER NOT NULL REFERENCES access_group(id) ON DELETE CASCADE,
    role       TEXT CHECK (role IN ('owner', 'family', 'tenant', 'staff', 'guard')),
    person_id  INTEGER REFERENCES person(id) ON DELETE CASCADE,
    CHECK ((role IS NULL) <> (person_id IS NULL))
);
CREATE INDEX access_group_member_person ON access_group_member(person_id);

-- Who changed or read what: the property manager's CLI (OS user), the console
-- (account), the station (officer id). Never holds an ID number or a face.
CREATE TABLE audit (
    id       INTEGER PRIMARY KEY,
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    action   TEXT NOT NULL,
    subject  TEXT,
    detail   TEXT
);
CREATE INDEX audit_at ON audit(at);
