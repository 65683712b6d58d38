-- Enrolled faces. A face is kept as its embedding (what matching needs) and
-- the 112x112 aligned crop, encrypted at rest (AES-256-GCM, key derived from
-- the device secret), so a new embedder can re-embed without the original
-- photo. The photo itself is never stored.

CREATE TABLE face (
    id          INTEGER PRIMARY KEY,
    person_id   INTEGER NOT NULL REFERENCES person(id) ON DELETE CASCADE,
    -- Manifest name of the embedder that produced `embedding`.
    model       TEXT NOT NULL,
    dim         INTEGER NOT NULL CHECK (dim > 0),
    -- dim little-endian f32 values, L2-normalised.
    embedding   BLOB NOT NULL CHECK (length(embedding) = 4 * dim),
    -- 12-byte nonce || AES-256-GCM ciphertext and tag of the 112x112 BGR crop.
    crop        BLOB NOT NULL,
    -- Quality of the enrolment face (inter-eye pixels, sharpness), for review.
    eye_px      REAL,
    sharpness   REAL,
    -- 1 when `model` is not the configured embedder: not matched until `face reembed`.
    stale       INTEGER NOT NULL DEFAULT 0 CHECK (stale IN (0, 1)),
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL
);
CREATE INDEX face_person ON face(person_id);
CREATE INDEX face_model ON face(model, stale);
