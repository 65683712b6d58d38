//! Standard addresses of the compound (building, unit, room: the "标准地址" of
//! 一标三实) and the households living at them.

use std::fmt;

use anyhow::{Context, Result};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::{now_rfc3339, Store};
use crate::domain::ResidentRole;

/// `3-2-501`: building 3, unit 2, room 501.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address {
    pub building: String,
    pub unit: String,
    pub room: String,
}

impl Address {
    /// Builds an address from its three parts, dropping the usual suffixes
    /// (`3栋`, `2单元`, `501室`) so every spelling lands on the same row.
    pub fn new(building: &str, unit: &str, room: &str) -> Result<Address, String> {
        let building = strip_suffix(building, &["号楼", "栋", "幢"]);
        let unit = strip_suffix(unit, &["单元"]);
        let room = strip_suffix(room, &["室", "号"]);
        for (what, part) in [("building", &building), ("unit", &unit), ("room", &room)] {
            if part.is_empty() {
                return Err(format!("the {what} is empty"));
            }
            if part.chars().count() > 16 {
                return Err(format!("the {what} {part:?} is longer than 16 characters"));
            }
            if part.contains('-') || part.chars().any(char::is_control) {
                return Err(format!(
                    "the {what} {part:?} contains '-' or a control character"
                ));
            }
        }
        Ok(Address {
            building,
            unit,
            room,
        })
    }
}

fn strip_suffix(s: &str, suffixes: &[&str]) -> String {
    let s = s.trim();
    suffixes
        .iter()
        .find_map(|suf| s.strip_suffix(suf))
        .unwrap_or(s)
        .trim()
        .to_string()
}

impl std::str::FromStr for Address {
    type Err = String;
    /// `3-2-501`, or `3栋2单元501室` / `3号楼2单元501`.
    fn from_str(raw: &str) -> Result<Address, String> {
        let s = raw.trim();
        let parts: Vec<&str> = s.split('-').collect();
        if parts.len() == 3 {
            return Address::new(parts[0], parts[1], parts[2]);
        }
        let written = ["号楼", "栋", "幢"].iter().find_map(|m| {
            let (b, rest) = s.split_once(m)?;
            let (u, r) = rest.split_once("单元")?;
            Some((b, u, r))
        });
        match written {
            Some((b, u, r)) => Address::new(b, u, r),
            None => Err(format!(
                "{s:?} is not an address; write building-unit-room, e.g. 3-2-501"
            )),
        }
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.building, self.unit, self.room)
    }
}

/// A search over addresses: `3` (a building), `3-2` (a unit) or `3-2-501`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPrefix {
    pub building: String,
    pub unit: Option<String>,
    pub room: Option<String>,
}

impl std::str::FromStr for AddressPrefix {
    type Err = String;
    fn from_str(raw: &str) -> Result<AddressPrefix, String> {
        if let Ok(a) = raw.parse::<Address>() {
            return Ok(AddressPrefix {
                building: a.building,
                unit: Some(a.unit),
                room: Some(a.room),
            });
        }
        let parts: Vec<&str> = raw.trim().split('-').map(str::trim).collect();
        if parts.iter().any(|p| p.is_empty()) || parts.len() > 2 {
            return Err(format!(
                "{raw:?} is not an address or part of one; write 3, 3-2 or 3-2-501"
            ));
        }
        Ok(AddressPrefix {
            building: strip_suffix(parts[0], &["号楼", "栋", "幢"]),
            unit: parts.get(1).map(|u| strip_suffix(u, &["单元"])),
            room: None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HouseholdKind {
    OwnerOccupied,
    Rented,
    SharedRental,
    Dormitory,
    Shop,
}

impl HouseholdKind {
    pub const ALL: [HouseholdKind; 5] = [
        HouseholdKind::OwnerOccupied,
        HouseholdKind::Rented,
        HouseholdKind::SharedRental,
        HouseholdKind::Dormitory,
        HouseholdKind::Shop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HouseholdKind::OwnerOccupied => "owner_occupied",
            HouseholdKind::Rented => "rented",
            HouseholdKind::SharedRental => "shared_rental",
            HouseholdKind::Dormitory => "dormitory",
            HouseholdKind::Shop => "shop",
        }
    }

    /// The kind of household a new resident of `role` starts at an address.
    pub fn default_for(role: ResidentRole) -> HouseholdKind {
        match role {
            ResidentRole::Owner | ResidentRole::Family => HouseholdKind::OwnerOccupied,
            ResidentRole::Tenant => HouseholdKind::Rented,
            ResidentRole::Staff | ResidentRole::Guard => HouseholdKind::Dormitory,
        }
    }
}

impl std::str::FromStr for HouseholdKind {
    type Err = String;
    fn from_str(s: &str) -> Result<HouseholdKind, String> {
        Ok(match s.trim() {
            "owner_occupied" | "自住" => HouseholdKind::OwnerOccupied,
            "rented" | "出租" => HouseholdKind::Rented,
            "shared_rental" | "群租" | "合租" => HouseholdKind::SharedRental,
            "dormitory" | "宿舍" => HouseholdKind::Dormitory,
            "shop" | "商铺" => HouseholdKind::Shop,
            other => {
                return Err(format!(
                    "unknown household kind {other:?}; expected one of {}",
                    HouseholdKind::ALL.map(|k| k.as_str()).join(", ")
                ))
            }
        })
    }
}

impl fmt::Display for HouseholdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ToSql for HouseholdKind {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for HouseholdKind {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| FromSqlError::Other(e.into()))
    }
}

/// The row id of `address`, inserting it if new.
pub fn ensure_address(conn: &Connection, address: &Address) -> Result<i64> {
    let mut find = conn
        .prepare_cached("SELECT id FROM address WHERE building = ?1 AND unit = ?2 AND room = ?3")?;
    let existing: Option<i64> = find
        .query_row(params![address.building, address.unit, address.room], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(id) = existing {
        return Ok(id);
    }
    conn.prepare_cached("INSERT INTO address (building, unit, room) VALUES (?1, ?2, ?3)")?
        .execute(params![address.building, address.unit, address.room])
        .with_context(|| format!("cannot add address {address}"))?;
    Ok(conn.last_insert_rowid())
}

/// The household at `address` that a new resident joins: the existing one
/// (its kind changed to `kind` when one is given and differs), else a new
/// household of `kind` or `default_kind`. Call inside the person's transaction.
pub fn household_at(
    conn: &Connection,
    actor: &str,
    address: &Address,
    kind: Option<HouseholdKind>,
    default_kind: HouseholdKind,
) -> Result<i64> {
    let address_id = ensure_address(conn, address)?;
    let existing: Option<(i64, HouseholdKind)> = conn
        .prepare_cached("SELECT id, kind FROM household WHERE address_id = ?1 ORDER BY id LIMIT 1")?
        .query_row([address_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    match existing {
        Some((id, current)) => {
            if let Some(kind) = kind.filter(|k| *k != current) {
                conn.execute(
                    "UPDATE household SET kind = ?1 WHERE id = ?2",
                    params![kind, id],
                )?;
                Store::audit(
                    conn,
                    actor,
                    "household.update",
                    Some(&format!("H{id}")),
                    Some(&serde_json::json!({"kind": kind.as_str(), "was": current.as_str()})),
                )?;
            }
            Ok(id)
        }
        None => {
            let kind = kind.unwrap_or(default_kind);
            conn.prepare_cached(
                "INSERT INTO household (address_id, kind, created_at, created_by) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![address_id, kind, now_rfc3339(), actor])
            .with_context(|| format!("cannot add a household at {address}"))?;
            Ok(conn.last_insert_rowid())
        }
    }
}

/// Assigns the household code keyed at household gates to the household at
/// `address` (`None` removes it); audited as `household.code`. Call inside
/// `store::atomic::atomically`, so the site change log carries the change.
/// Returns the household's id.
pub fn set_household_code(
    conn: &Connection,
    actor: &str,
    address: &Address,
    code: Option<&str>,
) -> Result<i64> {
    if let Some(code) = code {
        crate::access::valid_household_code(code).map_err(anyhow::Error::msg)?;
    }
    let found: Option<(i64, Option<String>)> = conn
        .prepare_cached(
            "SELECT h.id, h.code FROM household h JOIN address a ON a.id = h.address_id
             WHERE a.building = ?1 AND a.unit = ?2 AND a.room = ?3 ORDER BY h.id LIMIT 1",
        )?
        .query_row(params![address.building, address.unit, address.room], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let Some((id, was)) = found else {
        anyhow::bail!("no household at {address}: register a resident there first");
    };
    if was.as_deref() == code {
        return Ok(id);
    }
    if let Some(code) = code {
        let taken: Option<i64> = conn
            .prepare_cached("SELECT id FROM household WHERE code = ?1 AND id != ?2")?
            .query_row(params![code, id], |r| r.get(0))
            .optional()?;
        if let Some(other) = taken {
            let at: String = conn.query_row(
                "SELECT a.building || '-' || a.unit || '-' || a.room FROM household h
                 JOIN address a ON a.id = h.address_id WHERE h.id = ?1",
                [other],
                |r| r.get(0),
            )?;
            anyhow::bail!("household code {code} is already the code of {at}");
        }
    }
    conn.execute(
        "UPDATE household SET code = ?1 WHERE id = ?2",
        params![code, id],
    )
    .with_context(|| format!("cannot set the household code of {address}"))?;
    Store::audit(
        conn,
        actor,
        "household.code",
        Some(&format!("H{id}")),
        Some(&serde_json::json!({"address": address.to_string(), "code": code, "was": was})),
    )?;
    Ok(id)
}

/// A household as the register lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Household {
    pub id: i64,
    pub address: Address,
    pub kind: HouseholdKind,
    pub members: i64,
    /// The number keyed for it at household gates (`None`: none assigned).
    pub code: Option<String>,
}

/// Every household with its address and number of members, in address order.
pub fn households(conn: &Connection) -> Result<Vec<Household>> {
    let mut stmt = conn.prepare(
        "SELECT h.id, a.building, a.unit, a.room, h.kind,
                (SELECT count(*) FROM person p WHERE p.household_id = h.id), h.code
         FROM household h JOIN address a ON a.id = h.address_id
         ORDER BY a.building, a.unit, a.room, h.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Household {
            id: r.get(0)?,
            address: Address {
                building: r.get(1)?,
                unit: r.get(2)?,
                room: r.get(3)?,
            },
            kind: r.get(4)?,
            members: r.get(5)?,
            code: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_dashed_and_written_forms_to_the_same_value() {
        let a: Address = "3-2-501".parse().unwrap();
        assert_eq!(a, "3栋2单元501室".parse().unwrap());
        assert_eq!(a, "3号楼2单元501".parse().unwrap());
        assert_eq!(a, Address::new("3栋", "2单元", "501室").unwrap());
        assert_eq!(a.to_string(), "3-2-501");
        assert!("3-2".parse::<Address>().is_err());
        assert!("3--501"
            .parse::<Address>()
            .unwrap_err()
            .contains("unit is empty"));
    }

    #[test]
    fn address_prefixes_match_buildings_and_units() {
        let p: AddressPrefix = "3-2".parse().unwrap();
        assert_eq!((p.building.as_str(), p.unit.as_deref()), ("3", Some("2")));
        let p: AddressPrefix = "3栋".parse().unwrap();
        assert_eq!((p.building.as_str(), p.unit), ("3", None));
        assert!("3-2-5-1".parse::<AddressPrefix>().is_err());
    }

    #[test]
    fn household_codes_are_short_unique_and_audited() {
        use crate::store::atomic::atomically;
        use crate::store::people::{self, NewPerson};
        let dir = std::env::temp_dir().join(format!(
            "gh-hh-code-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let store = Store::open(&dir.join("g.db"), &dir).unwrap();
        for a in ["3-2-501", "3-2-502"] {
            let mut new = NewPerson::new("王五", ResidentRole::Owner);
            new.address = Some(a.parse().unwrap());
            people::add(&store, "test", &new).unwrap();
        }
        let set = |a: &str, code: Option<&str>| {
            let a: Address = a.parse().unwrap();
            atomically(store.conn(), |c| set_household_code(c, "clerk", &a, code))
                .map_err(|e| format!("{e:#}"))
        };
        set("3-2-501", Some("3251")).unwrap();
        let e = set("3-2-502", Some("3251")).unwrap_err();
        assert!(e.contains("already the code of 3-2-501"), "{e}");
        let e = set("3-2-502", Some("123456")).unwrap_err();
        assert!(e.contains("1 to 5 digits"), "{e}");
        let e = set("9-9-909", Some("99")).unwrap_err();
        assert!(e.contains("no household at 9-9-909"), "{e}");
        let listed = households(store.conn()).unwrap();
        assert_eq!(listed[0].code.as_deref(), Some("3251"));
        assert_eq!(listed[1].code, None);
        let audited: i64 = store
            .conn()
            .query_row(
                "SELECT count(*) FROM audit WHERE action = 'household.code'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(audited, 1);
        // Removing the code frees it.
        set("3-2-501", None).unwrap();
        set("3-2-502", Some("3251")).unwrap();
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn household_kinds_accept_english_and_chinese() {
        assert_eq!(
            "群租".parse::<HouseholdKind>().unwrap(),
            HouseholdKind::SharedRental
        );
        assert_eq!(
            "shop".parse::<HouseholdKind>().unwrap(),
            HouseholdKind::Shop
        );
        assert!("hotel".parse::<HouseholdKind>().is_err());
    }
}
