//! Registered vehicles: which plate belongs to whom. The vehicle gate's
//! lookup is one indexed read by normalised plate.

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::json;

use super::atomic::atomically;
use super::people::{self, holder_from_row, select_holder, Holder};
use super::{now_rfc3339, Store};
use crate::domain::{Plate, ResidentId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Vehicle {
    pub plate: String,
    /// Free text: `car`, `SUV`, `motorbike` …
    pub kind: Option<String>,
    pub colour: Option<String>,
    pub person: ResidentId,
    pub created_at: String,
    pub created_by: String,
}

/// Optional description of a vehicle.
#[derive(Clone, Debug, Default)]
pub struct VehicleInfo {
    pub kind: Option<String>,
    pub colour: Option<String>,
}

/// Registers `plate` to `person`.
pub fn add(
    store: &Store,
    actor: &str,
    person: ResidentId,
    plate: &Plate,
    info: &VehicleInfo,
) -> Result<()> {
    atomically(store.conn(), |conn| {
        insert(conn, actor, person, plate, info)?;
        Store::audit(
            conn,
            actor,
            "vehicle.add",
            Some(&person.to_string()),
            Some(&json!({"plate": plate.as_str()})),
        )
    })
}

/// The insert behind [`add`], without its audit row.
pub(crate) fn insert(
    conn: &Connection,
    actor: &str,
    person: ResidentId,
    plate: &Plate,
    info: &VehicleInfo,
) -> Result<()> {
    for (what, v) in [("kind", &info.kind), ("colour", &info.colour)] {
        if v.as_ref().is_some_and(|v| v.chars().count() > 32) {
            bail!("vehicle {what} is longer than 32 characters");
        }
    }
    people::get(conn, person)?;
    if let Some(owner) = owner(conn, plate)? {
        if owner == person {
            bail!("vehicle {plate} is already registered to {person}");
        }
        bail!("vehicle {plate} is already registered to {owner}; remove it first");
    }
    insert_row(conn, actor, person, plate, info)
}

/// The bare insert, for callers that checked the person and that the plate is
/// free (the import, per row).
pub(crate) fn insert_row(
    conn: &Connection,
    actor: &str,
    person: ResidentId,
    plate: &Plate,
    info: &VehicleInfo,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO vehicle (plate, kind, colour, person_id, created_at, created_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        plate.as_str(),
        info.kind,
        info.colour,
        person.0,
        now_rfc3339(),
        actor
    ])
    .with_context(|| format!("cannot register vehicle {plate}"))?;
    Ok(())
}

/// Takes a vehicle out of the register; returns whose it was.
pub fn remove(store: &Store, actor: &str, plate: &Plate) -> Result<ResidentId> {
    atomically(store.conn(), |conn| {
        let person = owner(conn, plate)?
            .ok_or_else(|| anyhow::anyhow!("vehicle {plate} is not in the register"))?;
        conn.execute("DELETE FROM vehicle WHERE plate = ?1", [plate.as_str()])?;
        Store::audit(
            conn,
            actor,
            "vehicle.remove",
            Some(&person.to_string()),
            Some(&json!({"plate": plate.as_str()})),
        )?;
        Ok(person)
    })
}

/// Who `plate` is registered to, if anyone.
pub fn owner(conn: &Connection, plate: &Plate) -> Result<Option<ResidentId>> {
    Ok(conn
        .prepare_cached("SELECT person_id FROM vehicle WHERE plate = ?1")?
        .query_row([plate.as_str()], |r| r.get(0))
        .optional()?
        .map(ResidentId))
}

/// The vehicle gate's lookup: the holder of `plate` with what the decision needs.
pub fn lookup(conn: &Connection, plate: &Plate) -> Result<Option<Holder>> {
    Ok(conn
        .prepare_cached(select_holder!(
            "FROM vehicle v JOIN person p ON p.id = v.person_id WHERE v.plate = ?1"
        ))?
        .query_row([plate.as_str()], holder_from_row)
        .optional()?)
}

/// A person's vehicles, oldest first.
pub fn for_person(conn: &Connection, person: ResidentId) -> Result<Vec<Vehicle>> {
    let mut stmt = conn.prepare_cached(
        "SELECT plate, kind, colour, created_at, created_by FROM vehicle WHERE person_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([person.0], |r| {
        Ok(Vehicle {
            plate: r.get(0)?,
            kind: r.get(1)?,
            colour: r.get(2)?,
            person,
            created_at: r.get(3)?,
            created_by: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}
