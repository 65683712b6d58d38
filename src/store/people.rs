//! The people in the register (the "实有人口" of 一标三实): who they are, where
//! they live, their role and whether they may come in.
//!
//! ID numbers arrive as [`IdDocument`] and are stored only as a keyed hash and
//! a masked form. Every change is audited with the actor; reads of personal
//! data (`show`, `search`, a revealed phone number) are audited too.

use anyhow::{bail, Context, Result};
use chrono::NaiveDate;
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::json;

use super::addresses::{self, Address, AddressPrefix, HouseholdKind};
use super::atomic::atomically;
use super::{now_rfc3339, Store};
use crate::domain::{
    masked_name, validate_name, CardNumber, IdDocument, IdKind, PersonStatus, Phone, Plate,
    ResidentId, ResidentRole,
};

macro_rules! sql_text_enum {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }
        impl FromSql for $t {
            fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
                value.as_str()?.parse().map_err(|e: String| FromSqlError::Other(e.into()))
            }
        }
    )*};
}
sql_text_enum!(ResidentRole, PersonStatus);

impl ToSql for IdKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for IdKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| FromSqlError::Other(e.into()))
    }
}

/// What the manager enters for a new resident.
#[derive(Clone, Debug)]
pub struct NewPerson {
    pub name: String,
    pub id_document: Option<IdDocument>,
    pub phone: Option<Phone>,
    pub role: ResidentRole,
    pub address: Option<Address>,
    /// Kind of a new household at `address` (default from the role); changes
    /// the kind of an existing household when given.
    pub household_kind: Option<HouseholdKind>,
    pub valid_from: Option<NaiveDate>,
    /// A tenant's lease end (inclusive).
    pub valid_until: Option<NaiveDate>,
    /// Floating population (流动人口), with the residence permit's expiry.
    pub floating: bool,
    pub residence_permit_until: Option<NaiveDate>,
    pub notes: Option<String>,
}

impl NewPerson {
    pub fn new(name: &str, role: ResidentRole) -> NewPerson {
        NewPerson {
            name: name.to_string(),
            id_document: None,
            phone: None,
            role,
            address: None,
            household_kind: None,
            valid_from: None,
            valid_until: None,
            floating: false,
            residence_permit_until: None,
            notes: None,
        }
    }
}

/// A person as stored. The phone serialises masked; see [`reveal_phone`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Person {
    pub id: ResidentId,
    pub name: String,
    pub id_kind: Option<IdKind>,
    pub id_masked: Option<String>,
    pub phone: Option<Phone>,
    pub role: ResidentRole,
    pub status: PersonStatus,
    pub household_id: Option<i64>,
    pub household_kind: Option<HouseholdKind>,
    pub address: Option<Address>,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
    pub floating: bool,
    pub residence_permit_until: Option<NaiveDate>,
    pub notes: Option<String>,
    pub created_at: String,
    pub created_by: String,
    pub updated_at: String,
    pub updated_by: String,
}

impl Person {
    pub fn masked_name(&self) -> String {
        masked_name(&self.name)
    }
}

const PERSON_SELECT: &str =
    "SELECT p.id, p.name, p.id_kind, p.id_masked, p.phone, p.role, p.status,
        p.household_id, h.kind, a.building, a.unit, a.room, p.valid_from, p.valid_until,
        p.floating, p.residence_permit_until, p.notes, p.created_at, p.created_by,
        p.updated_at, p.updated_by
    FROM person p
    LEFT JOIN household h ON h.id = p.household_id
    LEFT JOIN address a ON a.id = h.address_id";

fn person_from_row(r: &Row<'_>) -> rusqlite::Result<Person> {
    let id_masked: Option<String> = r.get(3)?;
    let building: Option<String> = r.get(9)?;
    Ok(Person {
        id: ResidentId(r.get(0)?),
        name: r.get(1)?,
        id_kind: if id_masked.is_some() { r.get(2)? } else { None },
        id_masked,
        phone: phone_col(r, 4)?,
        role: r.get(5)?,
        status: r.get(6)?,
        household_id: r.get(7)?,
        household_kind: r.get(8)?,
        address: match building {
            Some(building) => Some(Address {
                building,
                unit: r.get(10)?,
                room: r.get(11)?,
            }),
            None => None,
        },
        valid_from: date_col(r, 12)?,
        valid_until: date_col(r, 13)?,
        floating: r.get(14)?,
        residence_permit_until: date_col(r, 15)?,
        notes: r.get(16)?,
        created_at: r.get(17)?,
        created_by: r.get(18)?,
        updated_at: r.get(19)?,
        updated_by: r.get(20)?,
    })
}

/// Reads a `YYYY-MM-DD` column.
pub(crate) fn date_col(r: &Row<'_>, idx: usize) -> rusqlite::Result<Option<NaiveDate>> {
    let text: Option<String> = r.get(idx)?;
    text.map(|t| {
        NaiveDate::parse_from_str(&t, "%Y-%m-%d").map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
        })
    })
    .transpose()
}

pub(crate) fn phone_col(r: &Row<'_>, idx: usize) -> rusqlite::Result<Option<Phone>> {
    let text: Option<String> = r.get(idx)?;
    text.map(|t| {
        t.parse::<Phone>().map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, e.into())
        })
    })
    .transpose()
}

pub(crate) fn date_sql(d: Option<NaiveDate>) -> Option<String> {
    d.map(|d| d.format("%Y-%m-%d").to_string())
}

fn check_new(p: &NewPerson) -> Result<String> {
    let name = validate_name(&p.name).map_err(|e| anyhow::anyhow!("name {e}"))?;
    check_window(p.valid_from, p.valid_until)?;
    if let Some(n) = &p.notes {
        if n.chars().count() > 500 {
            bail!("notes are longer than 500 characters");
        }
    }
    Ok(name)
}

fn check_window(from: Option<NaiveDate>, until: Option<NaiveDate>) -> Result<()> {
    if let (Some(f), Some(u)) = (from, until) {
        if u < f {
            bail!("valid_until {u} is before valid_from {f}");
        }
    }
    Ok(())
}

/// Adds a resident and returns the new id.
pub fn add(store: &Store, actor: &str, new: &NewPerson) -> Result<ResidentId> {
    let id_hash = new
        .id_document
        .as_ref()
        .map(|d| d.keyed_hash(store.secret()));
    atomically(store.conn(), |conn| {
        let id = insert(conn, actor, new, id_hash)?;
        Store::audit(
            conn,
            actor,
            "person.add",
            Some(&id.to_string()),
            Some(&json!({"name": masked_name(&new.name), "role": new.role.as_str()})),
        )?;
        Ok(id)
    })
}

/// The insert behind [`add`], without its audit row (the import audits once).
pub(crate) fn insert(
    conn: &Connection,
    actor: &str,
    new: &NewPerson,
    id_hash: Option<[u8; 32]>,
) -> Result<ResidentId> {
    let name = check_new(new)?;
    if let (Some(hash), Some(doc)) = (&id_hash, &new.id_document) {
        if let Some(other) = find_by_id_hash(conn, hash)? {
            bail!(
                "this {} number is already registered to {other}",
                doc.kind()
            );
        }
    }
    let household = match &new.address {
        Some(a) => Some(addresses::household_at(
            conn,
            actor,
            a,
            new.household_kind,
            HouseholdKind::default_for(new.role),
        )?),
        None => None,
    };
    insert_row(conn, actor, new, &name, id_hash, household)
}

/// The bare insert, for callers that already validated the name, checked the
/// ID hash is free and resolved the household (the import, per row).
pub(crate) fn insert_row(
    conn: &Connection,
    actor: &str,
    new: &NewPerson,
    name: &str,
    id_hash: Option<[u8; 32]>,
    household: Option<i64>,
) -> Result<ResidentId> {
    let now = now_rfc3339();
    conn.prepare_cached(
        "INSERT INTO person (name, id_kind, id_hash, id_masked, phone, role, household_id, status,
             valid_from, valid_until, floating, residence_permit_until, notes,
             created_at, created_by, updated_at, updated_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'active', ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?13, ?14)",
    )?
    .execute(params![
        name,
        new.id_document
            .as_ref()
            .map(|d| d.kind())
            .unwrap_or(IdKind::ResidentId),
        id_hash.as_ref().map(|h| &h[..]),
        new.id_document.as_ref().map(|d| d.masked()),
        new.phone.as_ref().map(|p| p.as_str()),
        new.role,
        household,
        date_sql(new.valid_from),
        date_sql(new.valid_until),
        new.floating,
        date_sql(new.residence_permit_until),
        new.notes,
        now,
        actor,
    ])
    .context("cannot add the person")?;
    Ok(ResidentId(conn.last_insert_rowid()))
}

/// The resident whose ID document hashes to `hash`.
pub fn find_by_id_hash(conn: &Connection, hash: &[u8; 32]) -> Result<Option<ResidentId>> {
    Ok(conn
        .prepare_cached("SELECT id FROM person WHERE id_hash = ?1")?
        .query_row([&hash[..]], |r| r.get(0))
        .optional()?
        .map(ResidentId))
}

/// The resident holding this ID document, if any.
pub fn find_by_id_document(store: &Store, doc: &IdDocument) -> Result<Option<ResidentId>> {
    find_by_id_hash(store.conn(), &doc.keyed_hash(store.secret()))
}

/// A person by id, without an audit row: for code that decides, not for
/// showing someone's record to a user (use [`show`]).
pub fn get(conn: &Connection, id: ResidentId) -> Result<Person> {
    conn.prepare_cached(&format!("{PERSON_SELECT} WHERE p.id = ?1"))?
        .query_row([id.0], person_from_row)
        .optional()?
        .ok_or_else(|| anyhow::anyhow!("no resident {id}"))
}

/// Everything the register holds about a person, for display.
#[derive(Clone, Debug, Serialize)]
pub struct PersonDetail {
    #[serde(flatten)]
    pub person: Person,
    pub cards: Vec<super::cards::Card>,
    pub vehicles: Vec<super::vehicles::Vehicle>,
    pub visitor_passes: Vec<super::visitors::VisitorPass>,
    pub groups: Vec<String>,
}

/// A person's whole record, audited as a read by `actor`.
pub fn show(store: &Store, actor: &str, id: ResidentId) -> Result<PersonDetail> {
    let conn = store.conn();
    let person = get(conn, id)?;
    let detail = PersonDetail {
        cards: super::cards::for_person(conn, id)?,
        vehicles: super::vehicles::for_person(conn, id)?,
        visitor_passes: super::visitors::hosted_by(conn, id)?,
        groups: super::groups::names_for_person(conn, id, person.role)?,
        person,
    };
    Store::audit(conn, actor, "person.read", Some(&id.to_string()), None)?;
    Ok(detail)
}

/// The person's phone number in clear, audited: PIPL asks us to know who read it.
pub fn reveal_phone(store: &Store, actor: &str, id: ResidentId) -> Result<Option<Phone>> {
    let person = get(store.conn(), id)?;
    Store::audit(
        store.conn(),
        actor,
        "person.read_phone",
        Some(&id.to_string()),
        None,
    )?;
    Ok(person.phone)
}

/// Whether `doc` is the ID document registered for `id`: the desk types in
/// the number a person shows and learns yes or no (the register keeps only its
/// keyed hash, and shows it fully masked). Audited with the answer, never the
/// number. `None` when the resident has no document registered.
pub fn check_id_document(
    store: &Store,
    actor: &str,
    id: ResidentId,
    doc: &IdDocument,
) -> Result<Option<bool>> {
    let stored: Option<Vec<u8>> = store
        .conn()
        .prepare_cached("SELECT id_hash FROM person WHERE id = ?1")?
        .query_row([id.0], |r| r.get(0))
        .optional()?
        .ok_or_else(|| anyhow::anyhow!("no resident {id}"))?;
    let answer = stored.map(|h| h.as_slice() == doc.keyed_hash(store.secret()).as_slice());
    Store::audit(
        store.conn(),
        actor,
        "person.check_id",
        Some(&id.to_string()),
        Some(&serde_json::json!({ "kind": doc.kind(), "matches": answer })),
    )?;
    Ok(answer)
}

/// Filters for [`search`]; all given filters must match.
#[derive(Clone, Debug, Default)]
pub struct Search {
    /// Part of the name.
    pub name: Option<String>,
    pub address: Option<AddressPrefix>,
    pub card: Option<CardNumber>,
    pub plate: Option<Plate>,
    pub id_document: Option<IdDocument>,
    pub phone: Option<Phone>,
    pub role: Option<ResidentRole>,
    pub status: Option<PersonStatus>,
    pub limit: Option<u32>,
}

/// A row of the resident list.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PersonSummary {
    pub id: ResidentId,
    pub name: String,
    pub role: ResidentRole,
    pub status: PersonStatus,
    pub address: Option<Address>,
    pub phone: Option<Phone>,
    pub valid_until: Option<NaiveDate>,
    pub cards: Vec<String>,
    pub plates: Vec<String>,
}

/// Residents matching `filter`, in id order. Audited as a read (which filters
/// were used and how many matched; never the values searched for).
pub fn search(store: &Store, actor: &str, filter: &Search) -> Result<Vec<PersonSummary>> {
    let mut wheres: Vec<String> = Vec::new();
    let mut args: Vec<Box<dyn ToSql>> = Vec::new();
    let mut used: Vec<&str> = Vec::new();
    let mut arg = |w: &mut Vec<String>, clause: &str, value: Box<dyn ToSql>| {
        args.push(value);
        w.push(clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(name) = &filter.name {
        used.push("name");
        let pattern = format!(
            "%{}%",
            name.trim()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        arg(&mut wheres, "p.name LIKE ? ESCAPE '\\'", Box::new(pattern));
    }
    if let Some(a) = &filter.address {
        used.push("address");
        arg(&mut wheres, "a.building = ?", Box::new(a.building.clone()));
        if let Some(u) = &a.unit {
            arg(&mut wheres, "a.unit = ?", Box::new(u.clone()));
        }
        if let Some(r) = &a.room {
            arg(&mut wheres, "a.room = ?", Box::new(r.clone()));
        }
    }
    if let Some(card) = &filter.card {
        used.push("card");
        arg(
            &mut wheres,
            "p.id IN (SELECT person_id FROM card WHERE card_key = ?)",
            Box::new(card.key()),
        );
    }
    if let Some(plate) = &filter.plate {
        used.push("plate");
        arg(
            &mut wheres,
            "p.id IN (SELECT person_id FROM vehicle WHERE plate = ?)",
            Box::new(plate.as_str().to_string()),
        );
    }
    if let Some(doc) = &filter.id_document {
        used.push("id_number");
        arg(
            &mut wheres,
            "p.id_hash = ?",
            Box::new(doc.keyed_hash(store.secret()).to_vec()),
        );
    }
    if let Some(phone) = &filter.phone {
        used.push("phone");
        arg(
            &mut wheres,
            "p.phone = ?",
            Box::new(phone.as_str().to_string()),
        );
    }
    if let Some(role) = filter.role {
        used.push("role");
        arg(&mut wheres, "p.role = ?", Box::new(role));
    }
    if let Some(status) = filter.status {
        used.push("status");
        arg(&mut wheres, "p.status = ?", Box::new(status));
    }
    let mut sql = String::from(
        "SELECT p.id, p.name, p.role, p.status, a.building, a.unit, a.room, p.phone, p.valid_until,
            (SELECT group_concat(card_key, ' ') FROM card c WHERE c.person_id = p.id),
            (SELECT group_concat(plate, ' ') FROM vehicle v WHERE v.person_id = p.id)
         FROM person p
         LEFT JOIN household h ON h.id = p.household_id
         LEFT JOIN address a ON a.id = h.address_id",
    );
    if !wheres.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&wheres.join(" AND "));
    }
    sql.push_str(" ORDER BY p.id");
    if let Some(limit) = filter.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    let conn = store.conn();
    let mut stmt = conn.prepare(&sql)?;
    let split = |s: Option<String>| -> Vec<String> {
        s.map(|s| s.split(' ').map(str::to_string).collect())
            .unwrap_or_default()
    };
    let rows = stmt
        .query_map(params_from_iter(args.iter()), |r| {
            let building: Option<String> = r.get(4)?;
            Ok(PersonSummary {
                id: ResidentId(r.get(0)?),
                name: r.get(1)?,
                role: r.get(2)?,
                status: r.get(3)?,
                address: match building {
                    Some(building) => Some(Address {
                        building,
                        unit: r.get(5)?,
                        room: r.get(6)?,
                    }),
                    None => None,
                },
                phone: phone_col(r, 7)?,
                valid_until: date_col(r, 8)?,
                cards: split(r.get(9)?),
                plates: split(r.get(10)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("cannot list residents")?;
    Store::audit(
        conn,
        actor,
        "person.search",
        None,
        Some(&json!({"filters": used, "results": rows.len()})),
    )?;
    Ok(rows)
}

/// Changes to a person; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct PersonUpdate {
    pub name: Option<String>,
    pub id_document: Option<Option<IdDocument>>,
    pub phone: Option<Option<Phone>>,
    pub role: Option<ResidentRole>,
    pub address: Option<Option<Address>>,
    pub household_kind: Option<HouseholdKind>,
    pub valid_from: Option<Option<NaiveDate>>,
    pub valid_until: Option<Option<NaiveDate>>,
    pub floating: Option<bool>,
    pub residence_permit_until: Option<Option<NaiveDate>>,
    pub notes: Option<Option<String>>,
}

/// Applies `change` and returns the names of the fields that really changed
/// (empty: nothing was written, not even an audit row).
pub fn update(
    store: &Store,
    actor: &str,
    id: ResidentId,
    change: &PersonUpdate,
) -> Result<Vec<&'static str>> {
    let id_hash = match &change.id_document {
        Some(Some(doc)) => Some(Some(doc.keyed_hash(store.secret()))),
        Some(None) => Some(None),
        None => None,
    };
    atomically(store.conn(), |conn| {
        let changed = apply_update(conn, actor, id, change, id_hash)?;
        if !changed.is_empty() {
            Store::audit(
                conn,
                actor,
                "person.update",
                Some(&id.to_string()),
                Some(&json!({ "fields": changed })),
            )?;
        }
        Ok(changed)
    })
}

/// The update behind [`update`], without its audit row.
pub(crate) fn apply_update(
    conn: &Connection,
    actor: &str,
    id: ResidentId,
    change: &PersonUpdate,
    id_hash: Option<Option<[u8; 32]>>,
) -> Result<Vec<&'static str>> {
    let current = get(conn, id)?;
    let mut sets: Vec<(&'static str, Box<dyn ToSql>)> = Vec::new();
    if let Some(name) = &change.name {
        let name = validate_name(name).map_err(|e| anyhow::anyhow!("name {e}"))?;
        if name != current.name {
            sets.push(("name", Box::new(name)));
        }
    }
    if let (Some(doc), Some(hash)) = (&change.id_document, id_hash) {
        let current_hash: Option<Vec<u8>> = conn
            .prepare_cached("SELECT id_hash FROM person WHERE id = ?1")?
            .query_row([id.0], |r| r.get(0))?;
        if current_hash.as_deref() != hash.as_ref().map(|h| &h[..]) {
            if let (Some(h), Some(d)) = (&hash, doc) {
                if let Some(other) = find_by_id_hash(conn, h)?.filter(|o| *o != id) {
                    bail!("this {} number is already registered to {other}", d.kind());
                }
            }
            sets.push(("id_hash", Box::new(hash.map(|h| h.to_vec()))));
            sets.push(("id_masked", Box::new(doc.as_ref().map(|d| d.masked()))));
            sets.push((
                "id_kind",
                Box::new(doc.as_ref().map(|d| d.kind()).unwrap_or(IdKind::ResidentId)),
            ));
        }
    }
    if let Some(phone) = &change.phone {
        if *phone != current.phone {
            sets.push((
                "phone",
                Box::new(phone.as_ref().map(|p| p.as_str().to_string())),
            ));
        }
    }
    let role = change.role.unwrap_or(current.role);
    if role != current.role {
        sets.push(("role", Box::new(role)));
    }
    let valid_from = change.valid_from.unwrap_or(current.valid_from);
    let valid_until = change.valid_until.unwrap_or(current.valid_until);
    check_window(valid_from, valid_until)?;
    if valid_from != current.valid_from {
        sets.push(("valid_from", Box::new(date_sql(valid_from))));
    }
    if valid_until != current.valid_until {
        sets.push(("valid_until", Box::new(date_sql(valid_until))));
    }
    if let Some(f) = change.floating.filter(|f| *f != current.floating) {
        sets.push(("floating", Box::new(f)));
    }
    if let Some(p) = change
        .residence_permit_until
        .filter(|p| *p != current.residence_permit_until)
    {
        sets.push(("residence_permit_until", Box::new(date_sql(p))));
    }
    if let Some(n) = change.notes.as_ref().filter(|n| **n != current.notes) {
        if n.as_ref().is_some_and(|n| n.chars().count() > 500) {
            bail!("notes are longer than 500 characters");
        }
        sets.push(("notes", Box::new(n.clone())));
    }
    let address = change.address.as_ref().unwrap_or(&current.address);
    let kind_changes = change
        .household_kind
        .is_some_and(|k| Some(k) != current.household_kind);
    if *address != current.address || (kind_changes && address.is_some()) {
        let household = match address {
            Some(a) => Some(addresses::household_at(
                conn,
                actor,
                a,
                change.household_kind,
                HouseholdKind::default_for(role),
            )?),
            None => None,
        };
        if household != current.household_id {
            sets.push(("household_id", Box::new(household)));
        }
    }
    let mut changed: Vec<&'static str> = sets
        .iter()
        .map(|(c, _)| match *c {
            "id_hash" | "id_masked" | "id_kind" => "id_number",
            "household_id" => "address",
            c => c,
        })
        .collect();
    changed.dedup();
    if sets.is_empty() {
        return Ok(changed);
    }
    let mut sql = String::from("UPDATE person SET ");
    for (i, (col, _)) in sets.iter().enumerate() {
        sql.push_str(&format!("{col} = ?{}, ", i + 1));
    }
    let n = sets.len();
    sql.push_str(&format!(
        "updated_at = ?{}, updated_by = ?{} WHERE id = ?{}",
        n + 1,
        n + 2,
        n + 3
    ));
    let mut values: Vec<Box<dyn ToSql>> = sets.into_iter().map(|(_, v)| v).collect();
    values.push(Box::new(now_rfc3339()));
    values.push(Box::new(actor.to_string()));
    values.push(Box::new(id.0));
    conn.execute(&sql, params_from_iter(values.iter()))
        .with_context(|| format!("cannot update {id}"))?;
    Ok(changed)
}

/// Suspends, reactivates or moves out a resident. Returns the previous status.
pub fn set_status(
    store: &Store,
    actor: &str,
    id: ResidentId,
    status: PersonStatus,
) -> Result<PersonStatus> {
    atomically(store.conn(), |conn| {
        let before: PersonStatus = conn
            .query_row("SELECT status FROM person WHERE id = ?1", [id.0], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| anyhow::anyhow!("no resident {id}"))?;
        if before == status {
            return Ok(before);
        }
        conn.execute(
            "UPDATE person SET status = ?1, updated_at = ?2, updated_by = ?3 WHERE id = ?4",
            params![status, now_rfc3339(), actor, id.0],
        )?;
        let action = match status {
            PersonStatus::Active => "person.resume",
            PersonStatus::Suspended => "person.suspend",
            PersonStatus::MovedOut => "person.move_out",
        };
        Store::audit(
            conn,
            actor,
            action,
            Some(&id.to_string()),
            Some(&json!({"was": before.as_str()})),
        )?;
        Ok(before)
    })
}

/// What [`remove`] deleted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub id: ResidentId,
    pub masked_name: String,
    pub cards: i64,
    pub vehicles: i64,
    pub visitor_passes: i64,
}

/// Deletes a person and, by cascade, their cards, vehicles, visitor passes,
/// group memberships and (once the face issue adds them) biometrics. Past
/// events keep only the resident id and the masked name. With SQLite's
/// secure_delete and a WAL checkpoint the deleted bytes are overwritten in the
/// file, not merely unlinked.
pub fn remove(store: &Store, actor: &str, id: ResidentId) -> Result<Removed> {
    let conn = store.conn();
    conn.pragma_update(None, "secure_delete", true)
        .context("cannot enable secure_delete")?;
    let removed = atomically(conn, |conn| {
        let person = get(conn, id)?;
        let count = |table: &str, col: &str| -> Result<i64> {
            Ok(conn.query_row(
                &format!("SELECT count(*) FROM {table} WHERE {col} = ?1"),
                [id.0],
                |r| r.get(0),
            )?)
        };
        let removed = Removed {
            id,
            masked_name: person.masked_name(),
            cards: count("card", "person_id")?,
            vehicles: count("vehicle", "person_id")?,
            visitor_passes: count("visitor_pass", "host_id")?,
        };
        conn.execute("DELETE FROM person WHERE id = ?1", [id.0])
            .with_context(|| format!("cannot remove {id}"))?;
        Store::audit(
            conn,
            actor,
            "person.remove",
            Some(&id.to_string()),
            Some(&json!({
                "name": removed.masked_name,
                "cards": removed.cards,
                "vehicles": removed.vehicles,
                "visitor_passes": removed.visitor_passes,
            })),
        )?;
        Ok(removed)
    })?;
    // Old page images in the WAL still hold the record until a checkpoint
    // copies the zeroed pages back; a busy reader only delays that.
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
        r.get::<_, i64>(0)
    }) {
        tracing::warn!(error = %e, "checkpoint after removing a person did not complete");
    }
    Ok(removed)
}

/// The person a credential belongs to, as the gate needs it: enough to decide,
/// and only the masked name (what events carry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub person: ResidentId,
    pub masked_name: String,
    pub role: ResidentRole,
    pub status: PersonStatus,
    pub valid_from: Option<NaiveDate>,
    pub valid_until: Option<NaiveDate>,
}

/// `SELECT` of the columns [`holder_from_row`] reads (person aliased `p`)
/// followed by the rest of a query, as one literal: the gate's lookups run
/// per credential and should not format their SQL each time.
macro_rules! select_holder {
    ($($rest:literal),+) => {
        concat!("SELECT p.id, p.name, p.role, p.status, p.valid_from, p.valid_until ", $($rest),+)
    };
}
pub(crate) use select_holder;

pub(crate) fn holder_from_row(r: &Row<'_>) -> rusqlite::Result<Holder> {
    let name: String = r.get(1)?;
    Ok(Holder {
        person: ResidentId(r.get(0)?),
        masked_name: masked_name(&name),
        role: r.get(2)?,
        status: r.get(3)?,
        valid_from: date_col(r, 4)?,
        valid_until: date_col(r, 5)?,
    })
}

/// The holder record of a person by id (for face matches, which name a person directly).
pub fn holder(conn: &Connection, id: ResidentId) -> Result<Option<Holder>> {
    Ok(conn
        .prepare_cached(select_holder!("FROM person p WHERE p.id = ?1"))?
        .query_row([id.0], holder_from_row)
        .optional()?)
}

/// Every person who belongs to a household, with its id (the face
/// calibration keeps a household's members out of each other's impostors).
pub fn households_by_person(conn: &Connection) -> Result<Vec<(ResidentId, i64)>> {
    let mut stmt = conn
        .prepare("SELECT id, household_id FROM person WHERE household_id IS NOT NULL")
        .context("cannot read households")?;
    let rows = stmt
        .query_map([], |r| Ok((ResidentId(r.get(0)?), r.get::<_, i64>(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()
        .context("cannot read households")?;
    Ok(rows)
}
