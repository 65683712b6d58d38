//! Enrolled faces: embeddings (with the model that made them) and the aligned
//! 112×112 crops, encrypted at rest with AES-256-GCM under a key derived from
//! the device secret. The enrolment photo itself is never stored.
//!
//! Writes and reads of crops are audited in the same transaction.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use anyhow::{bail, Context, Result};
use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use serde_json::json;

use super::{now_rfc3339, Store};
use crate::domain::ResidentId;
use crate::secret::DeviceSecret;

/// Purpose string for [`DeviceSecret::derive_key`].
pub const CROP_KEY_PURPOSE: &str = "face-crop";
const NONCE_LEN: usize = 12;

/// A face to store.
#[derive(Clone, Debug)]
pub struct NewFace<'a> {
    pub model: &'a str,
    /// L2-normalised embedding.
    pub embedding: &'a [f32],
    /// The aligned crop's pixels (plaintext; encrypted here).
    pub crop: &'a [u8],
    pub eye_px: f32,
    pub sharpness: f32,
}

/// A stored face without its biometric payload (for listings).
#[derive(Clone, Debug, PartialEq)]
pub struct FaceSummary {
    pub id: i64,
    pub person: ResidentId,
    pub model: String,
    pub stale: bool,
    pub created_at: String,
}

fn aad(person: ResidentId) -> Vec<u8> {
    // Binds a crop to its person: a ciphertext moved to another row does not decrypt.
    format!("gatehouse face-crop v1 person {}", person.0).into_bytes()
}

fn cipher(secret: &DeviceSecret) -> Result<Aes256Gcm> {
    Aes256Gcm::new_from_slice(&secret.derive_key(CROP_KEY_PURPOSE))
        .map_err(|_| anyhow::anyhow!("face crop key has the wrong length"))
}

/// nonce ‖ ciphertext+tag.
pub fn encrypt_crop(secret: &DeviceSecret, person: ResidentId, crop: &[u8]) -> Result<Vec<u8>> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    let aad = aad(person);
    let sealed = cipher(secret)?
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: crop,
                aad: &aad,
            },
        )
        .map_err(|_| anyhow::anyhow!("cannot encrypt face crop"))?;
    let mut out = nonce.to_vec();
    out.extend(sealed);
    Ok(out)
}

pub fn decrypt_crop(secret: &DeviceSecret, person: ResidentId, blob: &[u8]) -> Result<Vec<u8>> {
    if blob.len() < NONCE_LEN + 16 {
        bail!("stored face crop of {person} is too short to be valid");
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let aad = aad(person);
    cipher(secret)?
        .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad: &aad })
        .map_err(|_| {
            anyhow::anyhow!(
                "stored face crop of {person} does not decrypt: damaged, moved, or from another device"
            )
        })
}

/// An embedding as stored: little-endian f32 (faces, watchlist, strangers).
pub(crate) fn f32_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The numbers of a stored embedding (a trailing partial number is ignored).
pub(crate) fn blob_f32(b: &[u8]) -> impl Iterator<Item = f32> + '_ {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

pub fn person_exists(conn: &Connection, person: ResidentId) -> Result<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM person WHERE id = ?1", [person.0], |_| Ok(()))
        .optional()
        .context("cannot look up person")?
        .is_some())
}

/// Stores a person's new faces, all or none, with one audit row.
pub fn enroll(
    conn: &mut Connection,
    secret: &DeviceSecret,
    person: ResidentId,
    faces: &[NewFace<'_>],
    actor: &str,
) -> Result<Vec<i64>> {
    // IMMEDIATE: the console and the CLI write faces beside the daemon's
    // writer; a deferred transaction that read first would fail with
    // SQLITE_BUSY at its first write instead of waiting its turn.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if !person_exists(&tx, person)? {
        bail!("no resident {person} in the register");
    }
    let now = now_rfc3339();
    let mut ids = Vec::with_capacity(faces.len());
    for face in faces {
        if face.embedding.is_empty() {
            bail!("refusing to store an empty embedding");
        }
        tx.execute(
            "INSERT INTO face (person_id, model, dim, embedding, crop, eye_px, sharpness, stale, created_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9)",
            params![
                person.0,
                face.model,
                face.embedding.len() as i64,
                f32_blob(face.embedding),
                encrypt_crop(secret, person, face.crop)?,
                face.eye_px as f64,
                face.sharpness as f64,
                now,
                actor
            ],
        )
        .context("cannot store face")?;
        ids.push(tx.last_insert_rowid());
    }
    Store::audit(
        &tx,
        actor,
        "face.enroll",
        Some(&person.to_string()),
        Some(&json!({ "faces": ids, "model": faces.first().map(|f| f.model) })),
    )?;
    tx.commit()?;
    Ok(ids)
}

/// Deletes every face of a person; returns how many there were.
pub fn remove(conn: &mut Connection, person: ResidentId, actor: &str) -> Result<usize> {
    // IMMEDIATE: the console and the CLI write faces beside the daemon's
    // writer; a deferred transaction that read first would fail with
    // SQLITE_BUSY at its first write instead of waiting its turn.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let n = tx
        .execute("DELETE FROM face WHERE person_id = ?1", [person.0])
        .context("cannot delete faces")?;
    Store::audit(
        &tx,
        actor,
        "face.remove",
        Some(&person.to_string()),
        Some(&json!({ "faces": n })),
    )?;
    tx.commit()?;
    Ok(n)
}

/// Flags faces made by another embedder than `current` as stale (and clears
/// the flag on those made by it). Returns how many are stale now.
pub fn mark_stale(conn: &Connection, current: &str) -> Result<usize> {
    conn.execute(
        "UPDATE face SET stale = (model <> ?1) WHERE stale <> (model <> ?1)",
        [current],
    )
    .context("cannot update stale flags")?;
    let n: i64 = conn.query_row("SELECT count(*) FROM face WHERE stale = 1", [], |r| {
        r.get(0)
    })?;
    Ok(n as usize)
}

/// Changes whenever a face is enrolled, removed or re-embedded (the
/// cameras poll it to reload their gallery).
pub fn gallery_version(conn: &Connection) -> Result<(i64, i64, i64)> {
    conn.query_row(
        "SELECT count(*), coalesce(max(id), 0), coalesce(sum(stale), 0) FROM face",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .context("cannot read the face table's version")
}

/// Calls `f(resident, embedding)` for every current face made by `model`,
/// grouped by resident: the gallery, read without a second copy in memory.
/// Returns the number of rows.
pub fn for_each_gallery_row(
    conn: &Connection,
    model: &str,
    mut f: impl FnMut(ResidentId, &[f32]) -> Result<()>,
) -> Result<usize> {
    let mut stmt = conn.prepare_cached(
        "SELECT person_id, embedding FROM face WHERE model = ?1 AND stale = 0 ORDER BY person_id, id",
    )?;
    let mut rows = stmt.query([model])?;
    let mut buf: Vec<f32> = Vec::new();
    let mut n = 0;
    while let Some(row) = rows.next().context("cannot read face embeddings")? {
        let resident = ResidentId(row.get(0)?);
        let blob = row
            .get_ref(1)?
            .as_blob()
            .context("face embedding is not a blob")?;
        buf.clear();
        buf.extend(blob_f32(blob));
        f(resident, &buf)?;
        n += 1;
    }
    Ok(n)
}

/// Number of residents with at least one current face made by `model`
/// (the N of the 1:N search).
pub fn count_residents(conn: &Connection, model: &str) -> Result<usize> {
    let n: i64 = conn.query_row(
        "SELECT count(DISTINCT person_id) FROM face WHERE model = ?1 AND stale = 0",
        [model],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

/// Number of current faces made by `model` (to size the gallery up front).
pub fn count_current(conn: &Connection, model: &str) -> Result<usize> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM face WHERE model = ?1 AND stale = 0",
        [model],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

pub fn list(conn: &Connection, person: Option<ResidentId>) -> Result<Vec<FaceSummary>> {
    let mut stmt = conn.prepare(
        "SELECT id, person_id, model, stale, created_at FROM face
         WHERE ?1 IS NULL OR person_id = ?1 ORDER BY person_id, id",
    )?;
    let rows = stmt
        .query_map([person.map(|p| p.0)], |r| {
            Ok(FaceSummary {
                id: r.get(0)?,
                person: ResidentId(r.get(1)?),
                model: r.get(2)?,
                stale: r.get::<_, i64>(3)? != 0,
                created_at: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Faces not made by `model`, with their decrypted crops, for re-embedding.
/// Reading crops is audited.
pub fn crops_to_reembed(
    conn: &Connection,
    secret: &DeviceSecret,
    model: &str,
    actor: &str,
) -> Result<Vec<(i64, ResidentId, Vec<u8>)>> {
    let mut stmt = conn.prepare(
        "SELECT id, person_id, crop FROM face WHERE model <> ?1 OR stale = 1 ORDER BY id",
    )?;
    let sealed = stmt
        .query_map([model], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                ResidentId(r.get(1)?),
                r.get::<_, Vec<u8>>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut out = Vec::with_capacity(sealed.len());
    for (id, person, blob) in sealed {
        let crop = decrypt_crop(secret, person, &blob).with_context(|| format!("face {id}"))?;
        out.push((id, person, crop));
    }
    Store::audit(
        conn,
        actor,
        "face.read_crops",
        None,
        Some(&json!({ "faces": out.len(), "purpose": "reembed", "model": model })),
    )?;
    Ok(out)
}

/// Replaces embeddings after re-embedding, all in one transaction.
pub fn update_embeddings(
    conn: &mut Connection,
    model: &str,
    updates: &[(i64, Vec<f32>)],
    actor: &str,
) -> Result<()> {
    // IMMEDIATE: the console and the CLI write faces beside the daemon's
    // writer; a deferred transaction that read first would fail with
    // SQLITE_BUSY at its first write instead of waiting its turn.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for (id, embedding) in updates {
        tx.execute(
            "UPDATE face SET model = ?2, dim = ?3, embedding = ?4, stale = 0 WHERE id = ?1",
            params![id, model, embedding.len() as i64, f32_blob(embedding)],
        )
        .with_context(|| format!("cannot update face {id}"))?;
    }
    Store::audit(
        &tx,
        actor,
        "face.reembed",
        None,
        Some(&json!({ "faces": updates.len(), "model": model })),
    )?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_decrypt_only_for_their_person_and_key() {
        let dir = std::env::temp_dir().join(format!("gh-facecrypt-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a")).unwrap();
        std::fs::create_dir_all(dir.join("b")).unwrap();
        let a = DeviceSecret::load_or_create(&dir.join("a")).unwrap();
        let b = DeviceSecret::load_or_create(&dir.join("b")).unwrap();
        let crop = vec![7u8; 300];
        let sealed = encrypt_crop(&a, ResidentId(1), &crop).unwrap();
        assert!(
            !sealed.windows(16).any(|w| w == [7u8; 16]),
            "plaintext visible"
        );
        assert_eq!(decrypt_crop(&a, ResidentId(1), &sealed).unwrap(), crop);
        assert!(decrypt_crop(&a, ResidentId(2), &sealed).is_err());
        assert!(decrypt_crop(&b, ResidentId(1), &sealed).is_err());
        assert!(decrypt_crop(&a, ResidentId(1), &sealed[..10]).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
