//! Visitor passes: a resident invites someone for a time window, at some
//! gates, for a number of uses. The visitor gets a PIN (6 digits for a pass of
//! a day or less, `[access] long_pass_pin_digits` for a longer one, which a
//! guesser has more days to find) and a QR code carrying it; the register
//! keeps only a keyed hash of the PIN, unique among passes, so a PIN typed at a
//! keypad names exactly one pass.

use std::fmt;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::json;

use super::atomic::atomically;
use super::people::{self, phone_col};
use super::{now_rfc3339, Store};
use crate::domain::{masked_name, validate_name, GateId, PersonStatus, Phone, Plate, ResidentId};

/// Longest window a pass may cover: longer stays are residents, not visitors.
pub const MAX_WINDOW_DAYS: i64 = 31;

/// Row id of a visitor pass, shown as `V12`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PassId(pub i64);

impl fmt::Display for PassId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V{}", self.0)
    }
}

impl std::str::FromStr for PassId {
    type Err = String;
    fn from_str(s: &str) -> Result<PassId, String> {
        s.strip_prefix(['V', 'v'])
            .unwrap_or(s)
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(PassId)
            .ok_or_else(|| format!("expected a visitor pass id like V12, got {s:?}"))
    }
}

/// A visitor's PIN (6 to 12 digits). Exists in clear only between generation and the
/// printout, and between a keypad and [`lookup_pin`]. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Pin(String);

impl Pin {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A random 6-digit PIN that is not trivially guessable (not one repeated
    /// digit, not a run such as 123456).
    pub fn generate() -> Pin {
        Pin::generate_digits(PinLength::SHORT)
    }

    /// [`Pin::generate`] with `digits` digits (clamped to 6..=12).
    pub fn generate_digits(digits: usize) -> Pin {
        let digits = digits.clamp(PinLength::SHORT, PinLength::MAX);
        let mut rng = rand::rngs::OsRng;
        loop {
            let pin: String = (0..digits)
                .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
                .collect();
            if !is_weak(&pin) {
                return Pin(pin);
            }
        }
    }

    fn keyed_hash(&self, store: &Store) -> [u8; 32] {
        store.secret().keyed_hash("pin", self.0.as_bytes())
    }
}

fn is_weak(pin: &str) -> bool {
    let d: Vec<i32> = pin.bytes().map(|b| i32::from(b - b'0')).collect();
    let steps: Vec<i32> = d.windows(2).map(|w| w[1] - w[0]).collect();
    steps.iter().all(|s| *s == 0) || steps.iter().all(|s| *s == 1) || steps.iter().all(|s| *s == -1)
}

impl std::str::FromStr for Pin {
    type Err = String;
    fn from_str(s: &str) -> Result<Pin, String> {
        let s = s.trim();
        if (PinLength::SHORT..=PinLength::MAX).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_digit())
        {
            Ok(Pin(s.to_string()))
        } else {
            Err(format!(
                "a visitor PIN is {} to {} digits",
                PinLength::SHORT,
                PinLength::MAX
            ))
        }
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(******)")
    }
}

/// How many digits a new pass's PIN gets, by how long the pass is valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinLength {
    /// Digits for a pass valid for more than a day.
    pub long_pass: usize,
}

impl PinLength {
    /// Digits of a pass valid for a day or less.
    pub const SHORT: usize = 6;
    /// The longest PIN a keypad sends before `#`.
    pub const MAX: usize = crate::domain::MAX_PIN_DIGITS;

    pub fn from_config(access: &crate::config::Access) -> PinLength {
        PinLength {
            long_pass: usize::from(access.long_pass_pin_digits),
        }
    }

    /// The digits for a pass valid over `window`.
    pub fn for_window(self, window: Duration) -> usize {
        if window > Duration::days(1) {
            self.long_pass.clamp(PinLength::SHORT, PinLength::MAX)
        } else {
            PinLength::SHORT
        }
    }
}

impl Default for PinLength {
    fn default() -> Self {
        PinLength::from_config(&crate::config::Access::default())
    }
}

/// What a resident (or the guard on their behalf) asks for.
#[derive(Clone, Debug)]
pub struct NewPass {
    pub host: ResidentId,
    pub visitor_name: String,
    pub phone: Option<Phone>,
    /// A visitor vehicle pass: the vehicle gate opens for this plate in the window.
    pub plate: Option<Plate>,
    /// `None`: every gate.
    pub gates: Option<Vec<GateId>>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    /// `None`: unlimited within the window.
    pub uses: Option<u32>,
}

/// A stored pass (without its PIN, which is not stored).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VisitorPass {
    pub id: PassId,
    pub host: ResidentId,
    pub visitor_name: String,
    pub phone: Option<Phone>,
    pub plate: Option<String>,
    pub gates: Option<Vec<String>>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub uses_left: Option<i64>,
    pub revoked: bool,
    pub created_at: String,
    pub created_by: String,
}

impl VisitorPass {
    /// Within its window, not revoked, uses left.
    pub fn is_usable_at(&self, at: DateTime<Utc>) -> bool {
        !self.revoked
            && self.valid_from <= at
            && at < self.valid_until
            && self.uses_left.is_none_or(|n| n > 0)
    }

    pub fn allows_gate(&self, gate: &GateId) -> bool {
        self.gates
            .as_ref()
            .is_none_or(|gs| gs.iter().any(|g| g == gate.as_str()))
    }
}

/// A visitor pass as the gate's lookups see it ([`lookup_pin`],
/// [`for_plate`]): the visitor's masked name, never the full name or phone
/// (the desk's full view is [`VisitorPass`], read by `get`, `list` and
/// [`passes_for_plate`], audited by their callers).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GatePass {
    pub id: PassId,
    pub host: ResidentId,
    /// `周*`, as events carry it.
    pub masked_name: String,
    pub plate: Option<String>,
    pub gates: Option<Vec<String>>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub uses_left: Option<i64>,
    pub revoked: bool,
}

impl From<VisitorPass> for GatePass {
    fn from(p: VisitorPass) -> GatePass {
        GatePass {
            id: p.id,
            host: p.host,
            masked_name: masked_name(&p.visitor_name),
            plate: p.plate,
            gates: p.gates,
            valid_from: p.valid_from,
            valid_until: p.valid_until,
            uses_left: p.uses_left,
            revoked: p.revoked,
        }
    }
}

impl GatePass {
    /// Within its window, not revoked, uses left.
    pub fn is_usable_at(&self, at: DateTime<Utc>) -> bool {
        !self.revoked
            && self.valid_from <= at
            && at < self.valid_until
            && self.uses_left.is_none_or(|n| n > 0)
    }

    pub fn allows_gate(&self, gate: &GateId) -> bool {
        self.gates
            .as_ref()
            .is_none_or(|gs| gs.iter().any(|g| g == gate.as_str()))
    }
}

/// A freshly issued pass with its PIN and the QR payload to hand the visitor.
#[derive(Clone, Debug)]
pub struct IssuedPass {
    pub pass: VisitorPass,
    pub pin: Pin,
    pub qr_payload: String,
}

const PASS_COLUMNS: &str =
    "id, host_id, visitor_name, phone, plate, gates, valid_from, valid_until, \
     uses_left, revoked, created_at, created_by";

fn pass_from_row(r: &Row<'_>) -> rusqlite::Result<VisitorPass> {
    let instant = |idx: usize| -> rusqlite::Result<DateTime<Utc>> {
        let s: String = r.get(idx)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    idx,
                    rusqlite::types::Type::Text,
                    e.into(),
                )
            })
    };
    let gates: Option<String> = r.get(5)?;
    Ok(VisitorPass {
        id: PassId(r.get(0)?),
        host: ResidentId(r.get(1)?),
        visitor_name: r.get(2)?,
        phone: phone_col(r, 3)?,
        plate: r.get(4)?,
        gates: gates
            .map(|g| serde_json::from_str::<Vec<String>>(&g))
            .transpose()
            .map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(5, rusqlite::types::Type::Text, e.into())
            })?,
        valid_from: instant(6)?,
        valid_until: instant(7)?,
        uses_left: r.get(8)?,
        revoked: r.get(9)?,
        created_at: r.get(10)?,
        created_by: r.get(11)?,
    })
}

fn instant_sql(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The text a QR code carries: site, pass and PIN. A gate's QR reader hands
/// it to [`parse_qr_payload`]; the PIN is then checked like a typed one.
pub fn qr_payload(site: &str, pass: PassId, pin: &Pin) -> String {
    format!("GH1;site={site};pass={pass};pin={}", pin.as_str())
}

/// The parts of a [`qr_payload`], if `text` is one.
pub fn parse_qr_payload(text: &str) -> Option<(String, PassId, Pin)> {
    let rest = text.trim().strip_prefix("GH1;")?;
    let (mut site, mut pass, mut pin) = (None, None, None);
    for field in rest.split(';') {
        match field.split_once('=')? {
            ("site", v) => site = Some(v.to_string()),
            ("pass", v) => pass = v.parse().ok(),
            ("pin", v) => pin = v.parse().ok(),
            _ => return None,
        }
    }
    Some((site?, pass?, pin?))
}

/// Issues a pass with a fresh PIN unique among all stored passes, of the
/// default length for its window ([`issue_with`] takes the site's).
pub fn issue(store: &Store, actor: &str, new: &NewPass, site: &str) -> Result<IssuedPass> {
    issue_with(store, actor, new, site, PinLength::default())
}

/// [`issue`] with the PIN length from the config (`PinLength::from_config`).
pub fn issue_with(
    store: &Store,
    actor: &str,
    new: &NewPass,
    site: &str,
    pins: PinLength,
) -> Result<IssuedPass> {
    let visitor_name =
        validate_name(&new.visitor_name).map_err(|e| anyhow::anyhow!("visitor name {e}"))?;
    if new.valid_until <= new.valid_from {
        bail!("the pass must end after it starts");
    }
    if new.valid_until - new.valid_from > Duration::days(MAX_WINDOW_DAYS) {
        bail!("a visitor pass covers at most {MAX_WINDOW_DAYS} days; register longer stays as residents");
    }
    if new.uses == Some(0) {
        bail!("uses must be at least 1");
    }
    if new.gates.as_ref().is_some_and(|g| g.is_empty()) {
        bail!("a pass names at least one gate (or none, for every gate)");
    }
    let gates_json = new
        .gates
        .as_ref()
        .map(|g| serde_json::to_string(&g.iter().map(GateId::as_str).collect::<Vec<_>>()))
        .transpose()?;
    atomically(store.conn(), |conn| {
        let host = people::get(conn, new.host)?;
        if host.status != PersonStatus::Active {
            bail!(
                "host {} is {} and cannot invite visitors",
                new.host,
                host.status
            );
        }
        let digits = pins.for_window(new.valid_until - new.valid_from);
        let mut pin_and_hash = None;
        for _ in 0..64 {
            let pin = Pin::generate_digits(digits);
            let hash = pin.keyed_hash(store);
            let taken: bool = conn
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM visitor_pass WHERE pin_hash = ?1)")?
                .query_row([&hash[..]], |r| r.get(0))?;
            if !taken {
                pin_and_hash = Some((pin, hash));
                break;
            }
        }
        let Some((pin, hash)) = pin_and_hash else {
            bail!("no free PIN found; purge ended visitor passes");
        };
        conn.execute(
            "INSERT INTO visitor_pass (host_id, visitor_name, phone, plate, pin_hash, gates,
                 valid_from, valid_until, uses_left, revoked, created_at, created_by)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10, ?11)",
            params![
                new.host.0,
                visitor_name,
                new.phone.as_ref().map(|p| p.as_str()),
                new.plate.as_ref().map(|p| p.as_str()),
                &hash[..],
                gates_json,
                instant_sql(new.valid_from),
                instant_sql(new.valid_until),
                new.uses,
                now_rfc3339(),
                actor,
            ],
        )
        .context("cannot store the visitor pass")?;
        let id = PassId(conn.last_insert_rowid());
        Store::audit(
            conn,
            actor,
            "visitor.issue",
            Some(&id.to_string()),
            Some(&json!({
                "host": new.host.to_string(),
                "visitor": masked_name(&visitor_name),
                "plate": new.plate.as_ref().map(|p| p.as_str()),
                "valid_until": instant_sql(new.valid_until),
            })),
        )?;
        let pass = get(conn, id)?;
        let qr_payload = qr_payload(site, id, &pin);
        Ok(IssuedPass {
            pass,
            pin,
            qr_payload,
        })
    })
}

pub fn get(conn: &Connection, id: PassId) -> Result<VisitorPass> {
    conn.prepare_cached(&format!(
        "SELECT {PASS_COLUMNS} FROM visitor_pass WHERE id = ?1"
    ))?
    .query_row([id.0], pass_from_row)
    .optional()?
    .ok_or_else(|| anyhow::anyhow!("no visitor pass {id}"))
}

/// The pass a PIN belongs to (whatever its state: the gate decides), as
/// the gate sees it: masked name only.
pub fn lookup_pin(store: &Store, pin: &Pin) -> Result<Option<GatePass>> {
    Ok(store
        .conn()
        .prepare_cached(&format!(
            "SELECT {PASS_COLUMNS} FROM visitor_pass WHERE pin_hash = ?1"
        ))?
        .query_row([&pin.keyed_hash(store)[..]], pass_from_row)
        .optional()?
        .map(GatePass::from))
}

/// Passes for a visitor vehicle, newest window first, as the gate sees
/// them: masked names only.
pub fn for_plate(conn: &Connection, plate: &Plate) -> Result<Vec<GatePass>> {
    Ok(passes_for_plate(conn, plate)?
        .into_iter()
        .map(GatePass::from)
        .collect())
}

/// Passes for a visitor vehicle with the visitor's full record, for the
/// desk (the console's vehicle search, which audits it).
pub fn passes_for_plate(conn: &Connection, plate: &Plate) -> Result<Vec<VisitorPass>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PASS_COLUMNS} FROM visitor_pass WHERE plate = ?1 ORDER BY valid_until DESC"
    ))?;
    let rows = stmt.query_map([plate.as_str()], pass_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Uses one entry of a pass. False when none is left; unlimited passes always succeed.
pub fn consume_use(conn: &Connection, id: PassId) -> Result<bool> {
    let changed = conn
        .prepare_cached(
            "UPDATE visitor_pass SET uses_left = uses_left - 1 WHERE id = ?1 AND uses_left > 0",
        )?
        .execute([id.0])?;
    if changed == 1 {
        return Ok(true);
    }
    let unlimited: Option<bool> = conn
        .prepare_cached("SELECT uses_left IS NULL FROM visitor_pass WHERE id = ?1")?
        .query_row([id.0], |r| r.get(0))
        .optional()?;
    Ok(unlimited.unwrap_or(false))
}

pub fn revoke(store: &Store, actor: &str, id: PassId) -> Result<()> {
    atomically(store.conn(), |conn| {
        let pass = get(conn, id)?;
        if pass.revoked {
            bail!("visitor pass {id} is already revoked");
        }
        conn.execute("UPDATE visitor_pass SET revoked = 1 WHERE id = ?1", [id.0])?;
        Store::audit(conn, actor, "visitor.revoke", Some(&id.to_string()), None)
    })
}

/// Passes, newest first; with `usable_at`, only those usable then.
pub fn list(conn: &Connection, usable_at: Option<DateTime<Utc>>) -> Result<Vec<VisitorPass>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {PASS_COLUMNS} FROM visitor_pass ORDER BY id DESC"
    ))?;
    let rows = stmt
        .query_map([], pass_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(match usable_at {
        Some(at) => rows.into_iter().filter(|p| p.is_usable_at(at)).collect(),
        None => rows,
    })
}

pub fn hosted_by(conn: &Connection, host: ResidentId) -> Result<Vec<VisitorPass>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PASS_COLUMNS} FROM visitor_pass WHERE host_id = ?1 ORDER BY id DESC"
    ))?;
    let rows = stmt.query_map([host.0], pass_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Deletes passes whose window ended before `before` (their PINs become free
/// again). For the daemon's retention sweep. Returns how many went.
pub fn purge_ended(store: &Store, actor: &str, before: DateTime<Utc>) -> Result<usize> {
    atomically(store.conn(), |conn| {
        let n = conn.execute(
            "DELETE FROM visitor_pass WHERE valid_until < ?1",
            [instant_sql(before)],
        )?;
        if n > 0 {
            Store::audit(
                conn,
                actor,
                "visitor.purge",
                None,
                Some(&json!({"passes": n, "ended_before": instant_sql(before)})),
            )?;
        }
        Ok(n)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pins_are_six_digits_and_never_trivial() {
        for _ in 0..2000 {
            let pin = Pin::generate();
            assert_eq!(pin.as_str().len(), 6);
            assert!(pin.as_str().bytes().all(|b| b.is_ascii_digit()));
            assert!(!is_weak(pin.as_str()));
        }
        assert!(is_weak("111111") && is_weak("123456") && is_weak("987654"));
        assert!(!is_weak("123457"));
        assert_eq!(
            format!("{:?}", "482913".parse::<Pin>().unwrap()),
            "Pin(******)"
        );
    }

    #[test]
    fn a_pass_valid_for_more_than_a_day_gets_a_longer_pin() {
        let pins = PinLength { long_pass: 8 };
        assert_eq!(pins.for_window(Duration::hours(24)), 6);
        assert_eq!(pins.for_window(Duration::hours(25)), 8);
        assert_eq!(pins.for_window(Duration::days(31)), 8);
        assert_eq!(
            PinLength { long_pass: 40 }.for_window(Duration::days(2)),
            12
        );
        for _ in 0..500 {
            let pin = Pin::generate_digits(8);
            assert_eq!(pin.as_str().len(), 8);
            assert!(!is_weak(pin.as_str()));
        }
        assert!("48291377".parse::<Pin>().is_ok());
        assert!("48291".parse::<Pin>().is_err());
        assert!("4829137712345".parse::<Pin>().is_err());
    }

    #[test]
    fn qr_payload_round_trips() {
        let pin: Pin = "482913".parse().unwrap();
        let text = qr_payload("qingbo", PassId(12), &pin);
        assert_eq!(text, "GH1;site=qingbo;pass=V12;pin=482913");
        let (site, pass, back) = parse_qr_payload(&text).unwrap();
        assert_eq!((site.as_str(), pass, back), ("qingbo", PassId(12), pin));
        assert!(parse_qr_payload("GH1;site=x;pass=V1").is_none());
        assert!(parse_qr_payload("hello").is_none());
    }
}
