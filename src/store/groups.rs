//! Access groups: which roles and persons may use which gates at which weekly
//! times. A person in no group may use every gate at any time; a person in one
//! or more groups (directly or through their role) only what those groups
//! allow. The decision itself belongs to the gate code; this is the register.

use anyhow::{bail, Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::json;

use super::atomic::atomically;
use super::people;
use super::Store;
use crate::domain::{GateId, ResidentId, ResidentRole};
use crate::units::{format_days, format_minute};

/// A weekly window at one gate: `days` bit 0 = Monday … bit 6 = Sunday;
/// minutes after local midnight, start inclusive, end exclusive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    pub gate: GateId,
    pub days: u8,
    pub start_minute: u16,
    pub end_minute: u16,
}

impl Window {
    pub fn new(gate: GateId, days: u8, start_minute: u16, end_minute: u16) -> Result<Window> {
        if days == 0 || days > 0x7f {
            bail!("days must name at least one weekday");
        }
        if start_minute >= 1440 || end_minute > 1440 || end_minute <= start_minute {
            bail!("a window ends after it starts, within one day");
        }
        Ok(Window {
            gate,
            days,
            start_minute,
            end_minute,
        })
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} {}-{}",
            self.gate,
            format_days(self.days),
            format_minute(self.start_minute),
            format_minute(self.end_minute)
        )
    }
}

/// Who a group applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Member {
    Role(ResidentRole),
    Person(ResidentId),
}

impl std::fmt::Display for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Member::Role(r) => write!(f, "role {r}"),
            Member::Person(p) => write!(f, "{p}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccessGroup {
    pub id: i64,
    pub name: String,
    pub windows: Vec<Window>,
    pub members: Vec<Member>,
}

fn check_name(name: &str) -> Result<String> {
    let n = name.trim();
    if n.is_empty() || n.chars().count() > 32 || n.chars().any(char::is_control) {
        bail!("a group name has 1 to 32 printable characters, got {name:?}");
    }
    Ok(n.to_string())
}

fn group_id(conn: &Connection, name: &str) -> Result<i64> {
    conn.query_row(
        "SELECT id FROM access_group WHERE name = ?1",
        [name.trim()],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| anyhow::anyhow!("no access group {:?}", name.trim()))
}

pub fn create(store: &Store, actor: &str, name: &str) -> Result<i64> {
    let name = check_name(name)?;
    atomically(store.conn(), |conn| {
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM access_group WHERE name = ?1)",
            [&name],
            |r| r.get(0),
        )?;
        if exists {
            bail!("access group {name:?} already exists");
        }
        conn.execute("INSERT INTO access_group (name) VALUES (?1)", [&name])?;
        let id = conn.last_insert_rowid();
        Store::audit(conn, actor, "group.add", Some(&name), None)?;
        Ok(id)
    })
}

pub fn remove(store: &Store, actor: &str, name: &str) -> Result<()> {
    atomically(store.conn(), |conn| {
        let id = group_id(conn, name)?;
        conn.execute("DELETE FROM access_group WHERE id = ?1", [id])?;
        Store::audit(conn, actor, "group.remove", Some(name.trim()), None)
    })
}

pub fn add_window(store: &Store, actor: &str, name: &str, w: &Window) -> Result<()> {
    atomically(store.conn(), |conn| {
        let id = group_id(conn, name)?;
        let dup: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM access_group_window WHERE group_id = ?1 AND gate = ?2
                 AND days = ?3 AND start_minute = ?4 AND end_minute = ?5)",
            params![id, w.gate.as_str(), w.days, w.start_minute, w.end_minute],
            |r| r.get(0),
        )?;
        if dup {
            bail!("group {:?} already has the window {w}", name.trim());
        }
        conn.execute(
            "INSERT INTO access_group_window (group_id, gate, days, start_minute, end_minute)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![id, w.gate.as_str(), w.days, w.start_minute, w.end_minute],
        )
        .context("cannot add the window")?;
        Store::audit(
            conn,
            actor,
            "group.window.add",
            Some(name.trim()),
            Some(&json!({"window": w.to_string()})),
        )
    })
}

/// Removes a group's windows at `gate` (every gate when `None`); returns how many.
pub fn clear_windows(
    store: &Store,
    actor: &str,
    name: &str,
    gate: Option<&GateId>,
) -> Result<usize> {
    atomically(store.conn(), |conn| {
        let id = group_id(conn, name)?;
        let n = conn.execute(
            "DELETE FROM access_group_window WHERE group_id = ?1 AND (?2 IS NULL OR gate = ?2)",
            params![id, gate.map(GateId::as_str)],
        )?;
        Store::audit(
            conn,
            actor,
            "group.window.clear",
            Some(name.trim()),
            Some(&json!({"gate": gate.map(GateId::as_str), "removed": n})),
        )?;
        Ok(n)
    })
}

pub fn add_member(store: &Store, actor: &str, name: &str, member: Member) -> Result<()> {
    atomically(store.conn(), |conn| {
        let id = group_id(conn, name)?;
        if let Member::Person(p) = member {
            people::get(conn, p)?;
        }
        if members_of(conn, id)?.contains(&member) {
            bail!("{member} is already in group {:?}", name.trim());
        }
        let (role, person) = columns(member);
        conn.execute(
            "INSERT INTO access_group_member (group_id, role, person_id) VALUES (?1, ?2, ?3)",
            params![id, role, person],
        )?;
        Store::audit(
            conn,
            actor,
            "group.member.add",
            Some(name.trim()),
            Some(&json!({"member": member.to_string()})),
        )
    })
}

pub fn remove_member(store: &Store, actor: &str, name: &str, member: Member) -> Result<()> {
    atomically(store.conn(), |conn| {
        let id = group_id(conn, name)?;
        let (role, person) = columns(member);
        let n = conn.execute(
            "DELETE FROM access_group_member WHERE group_id = ?1 AND role IS ?2 AND person_id IS ?3",
            params![id, role, person],
        )?;
        if n == 0 {
            bail!("{member} is not in group {:?}", name.trim());
        }
        Store::audit(
            conn,
            actor,
            "group.member.remove",
            Some(name.trim()),
            Some(&json!({"member": member.to_string()})),
        )
    })
}

fn columns(m: Member) -> (Option<ResidentRole>, Option<i64>) {
    match m {
        Member::Role(r) => (Some(r), None),
        Member::Person(p) => (None, Some(p.0)),
    }
}

fn members_of(conn: &Connection, group: i64) -> Result<Vec<Member>> {
    let mut stmt = conn.prepare_cached(
        "SELECT role, person_id FROM access_group_member WHERE group_id = ?1 ORDER BY role IS NULL, role, person_id",
    )?;
    let rows = stmt.query_map([group], |r| {
        let role: Option<ResidentRole> = r.get(0)?;
        let person: Option<i64> = r.get(1)?;
        Ok(match (role, person) {
            (Some(role), _) => Member::Role(role),
            (None, Some(p)) => Member::Person(ResidentId(p)),
            (None, None) => Member::Person(ResidentId(0)),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

fn windows_of(conn: &Connection, group: i64) -> Result<Vec<Window>> {
    let mut stmt = conn.prepare_cached(
        "SELECT gate, days, start_minute, end_minute FROM access_group_window
         WHERE group_id = ?1 ORDER BY gate, start_minute",
    )?;
    let rows = stmt.query_map([group], |r| {
        let gate: String = r.get(0)?;
        Ok(Window {
            gate: GateId::try_from(gate).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
            })?,
            days: r.get(1)?,
            start_minute: r.get(2)?,
            end_minute: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every group with its windows and members, by name.
pub fn list(conn: &Connection) -> Result<Vec<AccessGroup>> {
    let groups: Vec<(i64, String)> = conn
        .prepare("SELECT id, name FROM access_group ORDER BY name")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    groups
        .into_iter()
        .map(|(id, name)| {
            Ok(AccessGroup {
                id,
                windows: windows_of(conn, id)?,
                members: members_of(conn, id)?,
                name,
            })
        })
        .collect()
}

/// The groups that apply to a person, directly or through their role.
pub fn names_for_person(
    conn: &Connection,
    person: ResidentId,
    role: ResidentRole,
) -> Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT g.name FROM access_group g JOIN access_group_member m ON m.group_id = g.id
         WHERE m.person_id = ?1 OR m.role = ?2 ORDER BY g.name",
    )?;
    let rows = stmt.query_map(params![person.0, role], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The windows that bind a person, for the access decision: `None` when they
/// are in no group (every gate at any time), else the union of their groups'
/// windows (possibly empty: in a group with no window means no access).
pub fn windows_for(
    conn: &Connection,
    person: ResidentId,
    role: ResidentRole,
) -> Result<Option<Vec<Window>>> {
    let ids: Vec<i64> = conn
        .prepare_cached(
            "SELECT DISTINCT group_id FROM access_group_member WHERE person_id = ?1 OR role = ?2",
        )?
        .query_map(params![person.0, role], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if ids.is_empty() {
        return Ok(None);
    }
    let mut windows = Vec::new();
    for id in ids {
        windows.extend(windows_of(conn, id)?);
    }
    Ok(Some(windows))
}
