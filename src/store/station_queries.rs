//! What the police station may read from and push to this gateway's database:
//! a resident's minimum summary (`get_resident`) and the watchlist
//! (`watchlist_set` / `watchlist_clear`). The station's remote commands reach
//! the registers only through these functions, so what leaves the gateway is
//! decided here, once.
//!
//! Architecture Invariant: a resident summary never carries an ID number,
//! phone or full name; reads are audited by the caller (the uplink), with the
//! officer id.

use anyhow::{Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::domain::{masked_name, CardNumber, Plate, ResidentId};

/// How the station names the resident it asks about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResidentKey {
    Id(ResidentId),
    Card(CardNumber),
    Plate(Plate),
}

impl std::fmt::Display for ResidentKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResidentKey::Id(id) => write!(f, "resident {id}"),
            ResidentKey::Card(c) => write!(f, "card {}", c.masked()),
            ResidentKey::Plate(p) => write!(f, "plate {p}"),
        }
    }
}

/// The least the station needs to act on a person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResidentSummary {
    /// `R42`.
    pub resident_id: String,
    /// `张*`: the family name and one star per further character.
    pub name_masked: String,
    pub role: String,
    pub status: String,
    /// `building-unit-room`, when the person belongs to a household.
    pub address: Option<String>,
    pub valid_until: Option<String>,
}

pub fn find_resident(conn: &Connection, key: &ResidentKey) -> Result<Option<ResidentSummary>> {
    const SELECT: &str = "SELECT p.id, p.name, p.role, p.status, p.valid_until, \
                          a.building, a.unit, a.room FROM person p \
                          LEFT JOIN household h ON h.id = p.household_id \
                          LEFT JOIN address a ON a.id = h.address_id";
    let (sql, arg): (String, Box<dyn rusqlite::ToSql>) = match key {
        ResidentKey::Id(id) => (format!("{SELECT} WHERE p.id = ?1"), Box::new(id.0)),
        ResidentKey::Card(card) => (
            format!("{SELECT} JOIN card c ON c.person_id = p.id WHERE c.card_key = ?1"),
            Box::new(card.key()),
        ),
        ResidentKey::Plate(plate) => (
            format!("{SELECT} JOIN vehicle v ON v.person_id = p.id WHERE v.plate = ?1"),
            Box::new(plate.as_str().to_string()),
        ),
    };
    conn.query_row(&sql, [arg.as_ref()], |r| {
        let name: String = r.get(1)?;
        let building: Option<String> = r.get(5)?;
        let unit: Option<String> = r.get(6)?;
        let room: Option<String> = r.get(7)?;
        Ok(ResidentSummary {
            resident_id: ResidentId(r.get(0)?).to_string(),
            name_masked: masked_name(&name),
            role: r.get(2)?,
            status: r.get(3)?,
            address: match (building, unit, room) {
                (Some(b), Some(u), Some(r)) => Some(format!("{b}-{u}-{r}")),
                _ => None,
            },
            valid_until: r.get(4)?,
        })
    })
    .optional()
    .with_context(|| format!("cannot look up {key}"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchKind {
    Card,
    Plate,
    Face,
}

impl WatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchKind::Card => "card",
            WatchKind::Plate => "plate",
            WatchKind::Face => "face",
        }
    }

    fn parse(s: &str) -> Option<WatchKind> {
        match s {
            "card" => Some(WatchKind::Card),
            "plate" => Some(WatchKind::Plate),
            "face" => Some(WatchKind::Face),
            _ => None,
        }
    }
}

/// What a gate does on a watchlist match, besides raising the alarm.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WatchAction {
    /// Alarm only; the ordinary decision stands.
    #[default]
    Alert,
    /// Alarm and refuse entry.
    Deny,
}

impl WatchAction {
    pub fn as_str(self) -> &'static str {
        match self {
            WatchAction::Alert => "alert",
            WatchAction::Deny => "deny",
        }
    }
}

/// One watchlist entry as the station sends it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchEntry {
    pub kind: WatchKind,
    /// Card (`10:12345`), plate (`川A12345`), or for faces the station's
    /// reference for the entry (ASCII, ≤ 64 characters).
    pub value: String,
    /// Faces only: the embedding (64..=1024 finite numbers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
    #[serde(default)]
    pub action: WatchAction,
    /// Why the station lists it, shown in the alarm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// RFC 3339; the entry stops matching after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl WatchEntry {
    /// Checks and normalises an entry: card and plate values to their
    /// canonical form, face embeddings to unit length.
    pub fn validated(mut self) -> std::result::Result<WatchEntry, String> {
        match self.kind {
            WatchKind::Card => {
                self.value = self.value.parse::<CardNumber>()?.key();
                if self.embedding.is_some() {
                    return Err("a card entry carries no embedding".into());
                }
            }
            WatchKind::Plate => {
                self.value = self.value.parse::<Plate>()?.as_str().to_string();
                if self.embedding.is_some() {
                    return Err("a plate entry carries no embedding".into());
                }
            }
            WatchKind::Face => {
                crate::domain::validate_slug(&self.value)
                    .map_err(|p| format!("face entry value: {p}"))?;
                let Some(e) = self.embedding.as_mut() else {
                    return Err(format!("face entry {:?}: embedding is missing", self.value));
                };
                if !(64..=1024).contains(&e.len()) {
                    return Err(format!(
                        "face entry {:?}: embedding has {} numbers, expected 64..=1024",
                        self.value,
                        e.len()
                    ));
                }
                if e.iter().any(|x| !x.is_finite()) {
                    return Err(format!(
                        "face entry {:?}: embedding has a non-finite number",
                        self.value
                    ));
                }
                let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt();
                if norm < 1e-6 {
                    return Err(format!("face entry {:?}: embedding is zero", self.value));
                }
                e.iter_mut().for_each(|x| *x /= norm);
            }
        }
        if let Some(label) = &self.label {
            if label.chars().count() > 200 {
                return Err("label is longer than 200 characters".into());
            }
        }
        Ok(self)
    }
}

/// Adds or replaces entries (same kind and value), in one transaction.
pub fn watchlist_set(conn: &Connection, entries: &[WatchEntry], added_by: &str) -> Result<usize> {
    // IMMEDIATE: the write lock first, like every writer transaction.
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)
        .context("cannot start watchlist transaction")?;
    let now = crate::store::now_rfc3339();
    for e in entries {
        let blob = e.embedding.as_deref().map(super::faces::f32_blob);
        tx.execute(
            "INSERT INTO watchlist (kind, value, embedding, action, label, expires_at, added_at, added_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT(kind, value) DO UPDATE SET embedding = excluded.embedding,
               action = excluded.action, label = excluded.label, expires_at = excluded.expires_at,
               added_at = excluded.added_at, added_by = excluded.added_by",
            params![
                e.kind.as_str(),
                e.value,
                blob,
                e.action.as_str(),
                e.label,
                e.expires_at.map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true)),
                now,
                added_by
            ],
        )
        .with_context(|| format!("cannot store watchlist entry {} {}", e.kind.as_str(), e.value))?;
    }
    tx.commit().context("cannot commit watchlist")?;
    Ok(entries.len())
}

/// Removes entries: those of `kind` with the given values, every entry of
/// `kind` when `values` is empty, or the whole list when `kind` is `None`.
pub fn watchlist_clear(
    conn: &Connection,
    kind: Option<WatchKind>,
    values: &[String],
) -> Result<usize> {
    let removed = match (kind, values.is_empty()) {
        (None, _) => conn.execute("DELETE FROM watchlist", [])?,
        (Some(k), true) => conn.execute("DELETE FROM watchlist WHERE kind = ?1", [k.as_str()])?,
        (Some(k), false) => {
            let tx = rusqlite::Transaction::new_unchecked(
                conn,
                rusqlite::TransactionBehavior::Immediate,
            )?;
            let mut n = 0;
            for v in values {
                n += tx.execute(
                    "DELETE FROM watchlist WHERE kind = ?1 AND value = ?2",
                    params![k.as_str(), v],
                )?;
            }
            tx.commit()?;
            n
        }
    };
    Ok(removed)
}

/// Every entry, expired ones included (for the console and tests).
pub fn watchlist(conn: &Connection) -> Result<Vec<WatchEntry>> {
    read_entries(
        conn,
        "SELECT kind, value, embedding, action, label, expires_at FROM watchlist ORDER BY id",
        [],
    )
}

/// The live entry for a card, if the station watches it.
pub fn watched_card(
    conn: &Connection,
    card: &CardNumber,
    now: DateTime<Utc>,
) -> Result<Option<WatchEntry>> {
    watched(conn, WatchKind::Card, &card.key(), now)
}

/// The live entry for a plate, if the station watches it.
pub fn watched_plate(
    conn: &Connection,
    plate: &Plate,
    now: DateTime<Utc>,
) -> Result<Option<WatchEntry>> {
    watched(conn, WatchKind::Plate, plate.as_str(), now)
}

/// Live face entries, for the face pipeline to compare embeddings against.
pub fn watched_faces(conn: &Connection, now: DateTime<Utc>) -> Result<Vec<WatchEntry>> {
    read_entries(
        conn,
        "SELECT kind, value, embedding, action, label, expires_at FROM watchlist
         WHERE kind = 'face' AND (expires_at IS NULL OR expires_at > ?1) ORDER BY id",
        [now.to_rfc3339_opts(SecondsFormat::Millis, true)],
    )
}

fn watched(
    conn: &Connection,
    kind: WatchKind,
    value: &str,
    now: DateTime<Utc>,
) -> Result<Option<WatchEntry>> {
    Ok(read_entries(
        conn,
        "SELECT kind, value, embedding, action, label, expires_at FROM watchlist
         WHERE kind = ?1 AND value = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
        [
            kind.as_str(),
            value,
            &now.to_rfc3339_opts(SecondsFormat::Millis, true),
        ],
    )?
    .pop())
}

fn read_entries<P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
) -> Result<Vec<WatchEntry>> {
    let mut stmt = conn.prepare(sql).context("cannot prepare watchlist read")?;
    let rows = stmt.query_map(params, |r| {
        let kind: String = r.get(0)?;
        let blob: Option<Vec<u8>> = r.get(2)?;
        let action: String = r.get(3)?;
        let expires: Option<String> = r.get(5)?;
        Ok(WatchEntry {
            kind: WatchKind::parse(&kind).unwrap_or(WatchKind::Card),
            value: r.get(1)?,
            embedding: blob.map(|b| super::faces::blob_f32(&b).collect()),
            action: if action == "deny" {
                WatchAction::Deny
            } else {
                WatchAction::Alert
            },
            label: r.get(4)?,
            expires_at: expires
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc)),
        })
    })?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .context("cannot read the watchlist")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn scratch() -> (std::path::PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!(
            "gh-station-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let store = Store::open(&dir.join("g.db"), &dir).unwrap();
        (dir, store)
    }

    fn enrol(conn: &Connection) -> i64 {
        let now = crate::store::now_rfc3339();
        conn.execute(
            "INSERT INTO address (building, unit, room) VALUES ('3', '2', '1501')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO household (address_id, kind, created_at, created_by) VALUES (1, 'rented', ?1, 't')",
            [&now],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO person (name, id_masked, phone, role, household_id, valid_until, created_at, created_by, updated_at, updated_by)
             VALUES ('张三丰', '5101**********1234', '13800000000', 'tenant', 1, '2027-06-30', ?1, 't', ?1, 't')",
            [&now],
        )
        .unwrap();
        let id = conn.last_insert_rowid();
        conn.execute(
            "INSERT INTO card (card_key, format, person_id, created_at, created_by) VALUES ('10:12345', 'wiegand26', ?1, ?2, 't')",
            params![id, now],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO vehicle (plate, person_id, created_at, created_by) VALUES ('川A12345', ?1, ?2, 't')",
            params![id, now],
        )
        .unwrap();
        id
    }

    #[test]
    fn finds_a_resident_by_id_card_or_plate_with_minimum_fields() {
        let (dir, store) = scratch();
        let id = enrol(store.conn());
        let expected = ResidentSummary {
            resident_id: format!("R{id}"),
            name_masked: "张**".into(),
            role: "tenant".into(),
            status: "active".into(),
            address: Some("3-2-1501".into()),
            valid_until: Some("2027-06-30".into()),
        };
        for key in [
            ResidentKey::Id(ResidentId(id)),
            ResidentKey::Card("10:12345".parse().unwrap()),
            ResidentKey::Plate("川a12345".parse().unwrap()),
        ] {
            assert_eq!(
                find_resident(store.conn(), &key).unwrap().as_ref(),
                Some(&expected),
                "{key}"
            );
        }
        let json = serde_json::to_string(&expected).unwrap();
        assert!(!json.contains("1380") && !json.contains("5101") && !json.contains("三丰"));
        assert_eq!(
            find_resident(store.conn(), &ResidentKey::Id(ResidentId(999))).unwrap(),
            None
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn watchlist_entries_are_normalised_persisted_replaced_and_cleared() {
        let (dir, store) = scratch();
        let card = WatchEntry {
            kind: WatchKind::Card,
            value: "12345".into(),
            embedding: None,
            action: WatchAction::Deny,
            label: Some("case 2026-17".into()),
            expires_at: None,
        }
        .validated()
        .unwrap();
        assert_eq!(card.value, "0:12345");
        let face = WatchEntry {
            kind: WatchKind::Face,
            value: "case-17-a".into(),
            embedding: Some(vec![3.0; 128]),
            action: WatchAction::Alert,
            label: None,
            expires_at: Some(Utc::now() + chrono::Duration::hours(1)),
        }
        .validated()
        .unwrap();
        let norm: f32 = face.embedding.as_ref().unwrap().iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
        watchlist_set(store.conn(), &[card.clone(), face.clone()], "station:o-1").unwrap();
        // Setting the same card again replaces it.
        let mut relabelled = card.clone();
        relabelled.action = WatchAction::Alert;
        watchlist_set(store.conn(), &[relabelled], "station:o-2").unwrap();
        assert_eq!(watchlist(store.conn()).unwrap().len(), 2);
        let now = Utc::now();
        let hit = watched_card(store.conn(), &"0:12345".parse().unwrap(), now)
            .unwrap()
            .unwrap();
        assert_eq!(hit.action, WatchAction::Alert);
        assert_eq!(
            watched_faces(store.conn(), now).unwrap()[0].embedding,
            face.embedding
        );
        // An expired entry stops matching.
        let later = now + chrono::Duration::hours(2);
        assert!(watched_faces(store.conn(), later).unwrap().is_empty());
        assert_eq!(
            watchlist_clear(store.conn(), Some(WatchKind::Card), &["0:12345".into()]).unwrap(),
            1
        );
        assert_eq!(
            watched_card(store.conn(), &"0:12345".parse().unwrap(), now).unwrap(),
            None
        );
        assert_eq!(watchlist_clear(store.conn(), None, &[]).unwrap(), 1);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn watchlist_rejects_bad_entries_with_a_reason() {
        let bad = |kind, value: &str, embedding| {
            WatchEntry {
                kind,
                value: value.into(),
                embedding,
                action: WatchAction::Alert,
                label: None,
                expires_at: None,
            }
            .validated()
            .unwrap_err()
        };
        assert!(bad(WatchKind::Plate, "XA12345", None).contains("province"));
        assert!(bad(WatchKind::Face, "case-1", Some(vec![1.0; 10])).contains("64..=1024"));
        assert!(bad(WatchKind::Face, "case-1", None).contains("missing"));
        assert!(bad(WatchKind::Card, "10:abc", None).contains("not a number"));
    }
}
