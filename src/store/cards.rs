//! Access cards: which card (reader format + facility code + number, or raw
//! bits) belongs to whom. The gate's lookup is one indexed read.

use anyhow::{bail, Context, Result};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::json;

use super::atomic::atomically;
use super::people::{self, holder_from_row, select_holder, Holder};
use super::{now_rfc3339, Store};
use crate::domain::{CardFormat, CardNumber, ResidentId};

impl ToSql for CardFormat {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for CardFormat {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| FromSqlError::Other(e.into()))
    }
}

/// A card in the register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Card {
    pub card: String,
    /// Masked for logs and events (`10:***45`).
    pub masked: String,
    pub format: CardFormat,
    pub person: ResidentId,
    pub created_at: String,
    pub created_by: String,
}

/// Gives `card` to `person`. The format defaults to the smallest that fits.
pub fn assign(
    store: &Store,
    actor: &str,
    person: ResidentId,
    card: &CardNumber,
    format: Option<CardFormat>,
) -> Result<CardFormat> {
    atomically(store.conn(), |conn| {
        let format = insert(conn, actor, person, card, format)?;
        Store::audit(
            conn,
            actor,
            "card.assign",
            Some(&person.to_string()),
            Some(&json!({"card": card.masked(), "format": format.as_str()})),
        )?;
        Ok(format)
    })
}

/// The insert behind [`assign`], without its audit row.
pub(crate) fn insert(
    conn: &Connection,
    actor: &str,
    person: ResidentId,
    card: &CardNumber,
    format: Option<CardFormat>,
) -> Result<CardFormat> {
    let format = match format {
        Some(f) => {
            f.check(card).map_err(anyhow::Error::msg)?;
            f
        }
        None => CardFormat::infer(card).map_err(anyhow::Error::msg)?,
    };
    people::get(conn, person)?;
    if let Some(owner) = owner(conn, card)? {
        if owner == person {
            bail!("card {card} is already assigned to {person}");
        }
        bail!("card {card} is already assigned to {owner}; revoke it first");
    }
    insert_row(conn, actor, person, card, format)?;
    Ok(format)
}

/// The bare insert, for callers that checked the person, the format and that
/// the card is free (the import, per row).
pub(crate) fn insert_row(
    conn: &Connection,
    actor: &str,
    person: ResidentId,
    card: &CardNumber,
    format: CardFormat,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO card (card_key, format, person_id, created_at, created_by) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![card.key(), format, person.0, now_rfc3339(), actor])
    .with_context(|| format!("cannot assign card {card}"))?;
    Ok(())
}

/// Takes a card out of the register; returns whose it was.
pub fn revoke(store: &Store, actor: &str, card: &CardNumber) -> Result<ResidentId> {
    atomically(store.conn(), |conn| {
        let person = owner(conn, card)?
            .ok_or_else(|| anyhow::anyhow!("card {card} is not in the register"))?;
        conn.execute("DELETE FROM card WHERE card_key = ?1", [card.key()])?;
        Store::audit(
            conn,
            actor,
            "card.revoke",
            Some(&person.to_string()),
            Some(&json!({"card": card.masked()})),
        )?;
        Ok(person)
    })
}

/// Who holds `card`, if anyone.
pub fn owner(conn: &Connection, card: &CardNumber) -> Result<Option<ResidentId>> {
    Ok(conn
        .prepare_cached("SELECT person_id FROM card WHERE card_key = ?1")?
        .query_row([card.key()], |r| r.get(0))
        .optional()?
        .map(ResidentId))
}

/// The gate's lookup: the holder of `card` with what the decision needs.
pub fn lookup(conn: &Connection, card: &CardNumber) -> Result<Option<Holder>> {
    lookup_key(conn, &card.key())
}

/// [`lookup`] by the canonical key (`card.card_key`), for callers that already have it.
pub fn lookup_key(conn: &Connection, key: &str) -> Result<Option<Holder>> {
    Ok(conn
        .prepare_cached(select_holder!(
            "FROM card c JOIN person p ON p.id = c.person_id WHERE c.card_key = ?1"
        ))?
        .query_row([key], holder_from_row)
        .optional()?)
}

/// A person's cards, oldest first.
pub fn for_person(conn: &Connection, person: ResidentId) -> Result<Vec<Card>> {
    let mut stmt = conn.prepare_cached(
        "SELECT card_key, format, created_at, created_by FROM card WHERE person_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([person.0], |r| {
        let key: String = r.get(0)?;
        let masked = key
            .parse::<CardNumber>()
            .map(|c| c.masked())
            .unwrap_or_else(|_| "?".into());
        Ok(Card {
            card: key,
            masked,
            format: r.get(1)?,
            person,
            created_at: r.get(2)?,
            created_by: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(s: &str) -> CardNumber {
        s.parse().unwrap()
    }

    #[test]
    fn infers_the_smallest_format_that_fits() {
        assert_eq!(
            CardFormat::infer(&card("10:12345")),
            Ok(CardFormat::Wiegand26)
        );
        assert_eq!(
            CardFormat::infer(&card("300:12345")),
            Ok(CardFormat::Wiegand34)
        );
        assert_eq!(
            CardFormat::infer(&card("10:100000")),
            Ok(CardFormat::Wiegand37)
        );
        assert_eq!(CardFormat::infer(&card("raw:0101")), Ok(CardFormat::Raw));
        assert!(CardFormat::infer(&card("10:1000000")).is_err());
    }

    #[test]
    fn refuses_a_card_that_does_not_fit_the_named_format() {
        let e = CardFormat::Wiegand26.check(&card("256:1")).unwrap_err();
        assert!(
            e.contains("facility code 256 does not fit wiegand26"),
            "{e}"
        );
        assert!(CardFormat::Wiegand26.check(&card("10:65536")).is_err());
        assert!(CardFormat::Raw.check(&card("10:1")).is_err());
        assert!(CardFormat::Wiegand34.check(&card("raw:01")).is_err());
    }
}
