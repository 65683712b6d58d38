//! Loads the in-memory [`access::Register`] from the database (the schema in
//! `migrations/001_registers.sql`), and writes back the one thing a decision
//! changes in the registers: a visitor pass's remaining uses.
//!
//! Full names are read only to be masked; the register keeps `张*`.
//! A row that cannot be read is reported and refused at the gate (or skipped
//! when it cannot even be keyed), never allowed to stop the load.

use anyhow::{Context, Result};
use rusqlite::{params, Connection};

use crate::access::{Bound, PassEntry, PersonEntry, Register, Window};
use crate::domain::{masked_name, GateId, PersonStatus, Plate, ResidentId, ResidentRole};

/// A register row that was read in part or skipped, phrased for the log.
pub type Warning = String;

/// The register counter bumped by every change (migration 003).
pub fn register_version(conn: &Connection) -> Result<i64> {
    conn.query_row(
        "SELECT version FROM register_version WHERE id = 1",
        [],
        |r| r.get(0),
    )
    .context("cannot read the register version")
}

/// Reads the whole register.
pub fn load(conn: &Connection, utc_offset_minutes: i32) -> Result<(Register, Vec<Warning>)> {
    let tx = conn
        .unchecked_transaction()
        .context("cannot start a read of the register")?;
    let mut reg = Register::new(utc_offset_minutes);
    let mut warnings = Vec::new();
    load_persons(&tx, &mut reg, &mut warnings).context("cannot read person")?;
    load_cards(&tx, &mut reg, &mut warnings).context("cannot read card")?;
    load_vehicles(&tx, &mut reg, &mut warnings).context("cannot read vehicle")?;
    load_passes(&tx, &mut reg, &mut warnings).context("cannot read visitor_pass")?;
    load_groups(&tx, &mut reg, &mut warnings).context("cannot read access groups")?;
    load_watchlist(&tx, &mut reg, &mut warnings).context("cannot read watchlist")?;
    load_households(&tx, &mut reg).context("cannot read household")?;
    tx.finish().ok();
    Ok((reg, warnings))
}

/// Households by address and code, and who lives in each (household gates).
fn load_households(conn: &Connection, reg: &mut Register) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT h.id, a.building || '-' || a.unit || '-' || a.room, h.code
         FROM household h JOIN address a ON a.id = h.address_id ORDER BY h.id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (id, address, code): (i64, String, Option<String>) =
            (row.get(0)?, row.get(1)?, row.get(2)?);
        reg.add_household(id, &address, code.as_deref());
    }
    let mut stmt =
        conn.prepare("SELECT id, household_id FROM person WHERE household_id IS NOT NULL")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (person, household): (i64, i64) = (row.get(0)?, row.get(1)?);
        reg.add_household_member(household, ResidentId(person));
    }
    Ok(())
}

/// Card and plate entries of the station's watchlist (faces are matched by the camera pipeline).
fn load_watchlist(
    conn: &Connection,
    reg: &mut Register,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT kind, value, action, expires_at FROM watchlist WHERE kind IN ('card', 'plate')",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let (kind, value, action, expires): (String, String, String, Option<String>) =
            (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?);
        let expires_at = match expires.as_deref().map(chrono::DateTime::parse_from_rfc3339) {
            None => None,
            Some(Ok(t)) => Some(t.with_timezone(&chrono::Utc)),
            Some(Err(e)) => {
                warnings.push(format!(
                    "watchlist {kind} {value}: bad expires_at ({e}); treated as never expiring"
                ));
                None
            }
        };
        let hit = crate::access::WatchHit {
            deny: action == "deny",
            expires_at,
        };
        match kind.as_str() {
            "card" => reg.add_watched_card(value, hit),
            _ => match value.parse::<crate::domain::Plate>() {
                Ok(plate) => reg.add_watched_plate(plate, hit),
                Err(e) => warnings.push(format!("watchlist plate {value}: {e}")),
            },
        }
    }
    Ok(())
}

fn load_persons(conn: &Connection, reg: &mut Register, warnings: &mut Vec<Warning>) -> Result<()> {
    let mut stmt =
        conn.prepare("SELECT id, name, role, status, valid_from, valid_until, residence_permit_until FROM person")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let name: String = row.get(1)?;
        let role: String = row.get(2)?;
        let status: String = row.get(3)?;
        let valid_from: Option<String> = row.get(4)?;
        let valid_until: Option<String> = row.get(5)?;
        let permit_until: Option<String> = row.get(6)?;
        let mut problems = Vec::new();
        let mut bound = |field: &str, v: Option<String>| match v.as_deref().map(Bound::parse) {
            None => None,
            Some(Ok(b)) => Some(b),
            Some(Err(e)) => {
                problems.push(format!("{field}: {e}"));
                None
            }
        };
        let valid_from = bound("valid_from", valid_from);
        let valid_until = bound("valid_until", valid_until);
        let permit_until = bound("residence_permit_until", permit_until);
        let role = role.parse::<ResidentRole>().unwrap_or_else(|e| {
            problems.push(format!("role: {e}"));
            ResidentRole::Owner
        });
        let status = status.parse::<PersonStatus>().unwrap_or_else(|e| {
            problems.push(format!("status: {e}"));
            PersonStatus::Suspended
        });
        let invalid = (!problems.is_empty()).then(|| problems.join("; "));
        if let Some(why) = &invalid {
            warnings.push(format!(
                "person {}: {why}; refused at the gates until fixed",
                ResidentId(id)
            ));
        }
        reg.add_person(PersonEntry {
            id: ResidentId(id),
            masked_name: masked_name(&name),
            role,
            status,
            valid_from,
            valid_until,
            permit_until,
            invalid,
        });
    }
    Ok(())
}

fn load_cards(conn: &Connection, reg: &mut Register, warnings: &mut Vec<Warning>) -> Result<()> {
    let mut stmt = conn.prepare("SELECT card_key, person_id, format FROM card")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let key: String = row.get(0)?;
        let person = ResidentId(row.get(1)?);
        let format: String = row.get(2)?;
        match format.parse::<crate::domain::CardFormat>() {
            Ok(format) => reg.add_card_in(key, format, person),
            // The CHECK constraint keeps this out; if it got in, the card
            // matches no frame rather than every frame.
            Err(e) => {
                warnings.push(format!(
                    "card {key} of {person}: {e}; refused at the gates until fixed"
                ));
                reg.add_card_in(key, crate::domain::CardFormat::Raw, person);
            }
        }
    }
    Ok(())
}

fn load_vehicles(conn: &Connection, reg: &mut Register, warnings: &mut Vec<Warning>) -> Result<()> {
    let mut stmt = conn.prepare("SELECT id, plate, person_id FROM vehicle")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let plate: String = row.get(1)?;
        match plate.parse::<Plate>() {
            Ok(p) => reg.add_plate(p, ResidentId(row.get(2)?)),
            Err(e) => warnings.push(format!("vehicle {id}: {e}; skipped")),
        }
    }
    Ok(())
}

fn load_passes(conn: &Connection, reg: &mut Register, warnings: &mut Vec<Warning>) -> Result<()> {
    let mut stmt = conn.prepare(
        "SELECT id, host_id, visitor_name, plate, pin_hash, gates, valid_from, valid_until, uses_left, revoked
         FROM visitor_pass",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        let pin_hash: Vec<u8> = row.get(4)?;
        let gates: Option<String> = row.get(5)?;
        let from: String = row.get(6)?;
        let until: String = row.get(7)?;
        let uses_left: Option<i64> = row.get(8)?;
        let plate: Option<String> = row.get(3)?;
        let read = || -> Result<(PassEntry, [u8; 32], Option<Plate>), String> {
            let pin: [u8; 32] = pin_hash
                .as_slice()
                .try_into()
                .map_err(|_| format!("pin_hash: expected 32 bytes, got {}", pin_hash.len()))?;
            let gates = match gates.as_deref() {
                None => None,
                Some(json) => {
                    let ids: Vec<String> = serde_json::from_str(json)
                        .map_err(|e| format!("gates: expected a JSON array of gate ids ({e})"))?;
                    Some(
                        ids.into_iter()
                            .map(|g| g.parse::<GateId>().map_err(|e| format!("gates: {e}")))
                            .collect::<Result<Vec<_>, _>>()?,
                    )
                }
            };
            let plate = match plate.as_deref().filter(|p| !p.trim().is_empty()) {
                None => None,
                Some(p) => Some(p.parse::<Plate>()?),
            };
            Ok((
                PassEntry {
                    id,
                    host: ResidentId(row.get(1).map_err(|e| e.to_string())?),
                    masked_name: masked_name(&row.get::<_, String>(2).map_err(|e| e.to_string())?),
                    gates,
                    valid_from: Bound::parse(&from).map_err(|e| format!("valid_from: {e}"))?,
                    valid_until: Bound::parse(&until).map_err(|e| format!("valid_until: {e}"))?,
                    uses_left: uses_left.map(|n| n.clamp(0, i64::from(u32::MAX)) as u32),
                    revoked: row.get::<_, i64>(9).map_err(|e| e.to_string())? != 0,
                },
                pin,
                plate,
            ))
        };
        match read() {
            Ok((pass, pin, plate)) => reg.add_pass(pass, pin, plate),
            Err(e) => warnings.push(format!(
                "visitor_pass {id}: {e}; skipped (its PIN will not open)"
            )),
        }
    }
    Ok(())
}

fn load_groups(conn: &Connection, reg: &mut Register, warnings: &mut Vec<Warning>) -> Result<()> {
    let mut stmt = conn.prepare("SELECT id FROM access_group")?;
    let ids = stmt
        .query_map([], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for id in ids {
        reg.add_group(id);
    }
    let mut stmt = conn.prepare(
        "SELECT group_id, gate, days, start_minute, end_minute FROM access_group_window",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let group: i64 = row.get(0)?;
        let gate: String = row.get(1)?;
        match gate.parse::<GateId>() {
            Ok(gate) => reg.add_window(
                group,
                Window {
                    gate,
                    days: row.get::<_, i64>(2)?.clamp(0, 127) as u8,
                    start_minute: row.get::<_, i64>(3)?.clamp(0, 1440) as u16,
                    end_minute: row.get::<_, i64>(4)?.clamp(0, 1440) as u16,
                },
            ),
            // The group still restricts its members; this window just grants nothing.
            Err(e) => warnings.push(format!("access_group_window of group {group}: gate {e}")),
        }
    }
    let mut stmt = conn.prepare("SELECT group_id, role, person_id FROM access_group_member")?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let group: i64 = row.get(0)?;
        let role: Option<String> = row.get(1)?;
        let person: Option<i64> = row.get(2)?;
        match (role, person) {
            (_, Some(p)) => reg.add_person_member(group, ResidentId(p)),
            (Some(role), None) => match role.parse::<ResidentRole>() {
                Ok(role) => reg.add_role_member(group, role),
                Err(e) => warnings.push(format!("access_group_member of group {group}: {e}")),
            },
            (None, None) => {}
        }
    }
    Ok(())
}

/// Counts one use of a limited visitor pass (after a grant). Returns whether
/// a use was taken (false for unlimited or already used-up passes).
pub fn consume_visitor_use(conn: &Connection, pass_id: i64) -> Result<bool> {
    let n = conn
        .execute(
            "UPDATE visitor_pass SET uses_left = uses_left - 1
             WHERE id = ?1 AND uses_left IS NOT NULL AND uses_left > 0",
            params![pass_id],
        )
        .with_context(|| format!("cannot count a use of visitor pass {pass_id}"))?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{decide, AccessState, Credential, DenyReason, GateContext, Now, PinHash};
    use crate::store::Store;

    #[test]
    fn loads_the_register_and_counts_visitor_uses() {
        let dir = std::env::temp_dir().join(format!(
            "gh-snap-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let store = Store::open(&dir.join("g.db"), &dir).unwrap();
        let c = store.conn();
        let v0 = register_version(c).unwrap();
        let pin = store.secret().keyed_hash("pin", b"246810");
        c.execute_batch(
            "INSERT INTO person (id, name, role, status, valid_until, created_at, created_by, updated_at, updated_by)
               VALUES (1, '张三', 'owner', 'active', NULL, 'now', 't', 'now', 't'),
                      (2, '李四', 'tenant', 'active', 'next tuesday', 'now', 't', 'now', 't');
             INSERT INTO card (card_key, format, person_id, created_at, created_by)
               VALUES ('10:12345', 'wiegand26', 1, 'now', 't');
             INSERT INTO vehicle (plate, person_id, created_at, created_by) VALUES ('川A12345', 1, 'now', 't');",
        )
        .unwrap();
        c.execute(
            "INSERT INTO visitor_pass (id, host_id, visitor_name, pin_hash, gates, valid_from, valid_until, uses_left, created_at, created_by)
             VALUES (5, 1, '周客人', ?1, '[\"east\"]', '2000-01-01', '2999-12-31', 1, 'now', 't')",
            params![pin.to_vec()],
        )
        .unwrap();
        assert!(
            register_version(c).unwrap() > v0,
            "triggers bump the version"
        );
        let (reg, warnings) = load(c, 480).unwrap();
        assert_eq!(reg.person_count(), 2);
        assert_eq!(reg.person(ResidentId(1)).unwrap().masked_name, "张*");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("R2") && warnings[0].contains("valid_until"),
            "{warnings:?}"
        );

        let gate =
            GateContext::from_config(&crate::config::Config::demo().gates[0], &Default::default());
        let now = Now {
            wall: chrono::Utc::now(),
            mono: Default::default(),
            clock_synced: true,
        };
        let s = AccessState::new();
        let card = Credential::Card(
            "10:12345"
                .parse::<crate::domain::CardNumber>()
                .unwrap()
                .into(),
        );
        assert!(decide(&reg, &s, &card, &gate, &now).is_granted());
        let bad_row = Credential::Face {
            resident: ResidentId(2),
            score: 0.9,
        };
        assert_eq!(
            decide(&reg, &s, &bad_row, &gate, &now).reason(),
            Some(DenyReason::InvalidRecord)
        );
        let pin_cred = Credential::Pin(PinHash::of(store.secret(), "246810"));
        assert!(decide(&reg, &s, &pin_cred, &gate, &now).is_granted());

        assert!(consume_visitor_use(c, 5).unwrap());
        assert!(!consume_visitor_use(c, 5).unwrap(), "no uses left");
        let (reg, _) = load(c, 480).unwrap();
        assert_eq!(
            decide(&reg, &s, &pin_cred, &gate, &now).reason(),
            Some(DenyReason::VisitorPassUsedUp)
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
