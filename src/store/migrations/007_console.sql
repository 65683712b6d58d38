-- The web console's accounts (issue 8). Passwords are Argon2id PHC strings;
-- there is no default account: the first manager is created through the
-- one-time setup link the daemon logs. Sessions live in the daemon's memory.

CREATE TABLE console_account (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE COLLATE NOCASE,
    role           TEXT NOT NULL CHECK (role IN ('manager', 'guard', 'auditor')),
    password_hash  TEXT NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL,
    created_by     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    updated_by     TEXT NOT NULL,
    last_login_at  TEXT
);
