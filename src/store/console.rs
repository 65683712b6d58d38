//! The web console's accounts (who may sign in, with which role) and the
//! audit-log reading the console offers managers and auditors.
//!
//! Only Argon2 PHC strings are stored; hashing and verifying live in
//! `console::password`. Every change to an account is audited with the
//! account that made it, like every other register change.

use std::fmt;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::atomic::atomically;
use super::{now_rfc3339, Store};

/// What an account may do in the console.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsoleRole {
    /// Everything: registers, import, accounts, logs, gates.
    Manager,
    /// Live events, opening a gate with a reason, visitor passes.
    Guard,
    /// Reads logs (events and audit), nothing else.
    Auditor,
}

impl ConsoleRole {
    pub const ALL: [ConsoleRole; 3] = [
        ConsoleRole::Manager,
        ConsoleRole::Guard,
        ConsoleRole::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConsoleRole::Manager => "manager",
            ConsoleRole::Guard => "guard",
            ConsoleRole::Auditor => "auditor",
        }
    }
}

impl fmt::Display for ConsoleRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ConsoleRole {
    type Err = String;
    fn from_str(s: &str) -> Result<ConsoleRole, String> {
        Ok(match s.trim() {
            "manager" | "物业经理" | "管理员" => ConsoleRole::Manager,
            "guard" | "保安" | "门卫" => ConsoleRole::Guard,
            "auditor" | "审计员" => ConsoleRole::Auditor,
            other => {
                return Err(format!(
                    "unknown console role {other:?}; expected manager, guard or auditor"
                ))
            }
        })
    }
}

impl ToSql for ConsoleRole {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl FromSql for ConsoleRole {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| FromSqlError::Other(e.into()))
    }
}

/// A console account name: 2..=32 letters (any script), digits, `.`, `_`, `-`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AccountName(String);

impl AccountName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for AccountName {
    type Err = String;
    fn from_str(raw: &str) -> Result<AccountName, String> {
        let s = raw.trim();
        let n = s.chars().count();
        if !(2..=32).contains(&n) {
            return Err(format!(
                "account name {s:?}: expected 2 to 32 characters, got {n}"
            ));
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '.' | '_' | '-')))
        {
            return Err(format!(
                "account name {s:?}: {c:?} is not allowed (letters, digits, '.', '_', '-')"
            ));
        }
        Ok(AccountName(s.to_string()))
    }
}

/// An account as listed (never with its password hash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub role: ConsoleRole,
    pub disabled: bool,
    pub created_at: String,
    pub created_by: String,
    pub last_login_at: Option<String>,
}

/// What a sign-in checks: the account and its stored hash.
#[derive(Clone)]
pub struct Credentials {
    pub account: Account,
    pub password_hash: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("account", &self.account)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

const ACCOUNT_COLUMNS: &str =
    "id, name, role, disabled, created_at, created_by, last_login_at, password_hash";

fn account_from_row(r: &Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        name: r.get(1)?,
        role: r.get(2)?,
        disabled: r.get(3)?,
        created_at: r.get(4)?,
        created_by: r.get(5)?,
        last_login_at: r.get(6)?,
    })
}

/// How many accounts exist (zero: the console offers its setup link).
pub fn count(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT count(*) FROM console_account", [], |r| r.get(0))?)
}

/// Every account, by name.
pub fn list(conn: &Connection) -> Result<Vec<Account>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ACCOUNT_COLUMNS} FROM console_account ORDER BY name"
    ))?;
    let rows = stmt.query_map([], account_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The account called `name` (case-insensitive) with its hash, if any.
pub fn credentials(conn: &Connection, name: &str) -> Result<Option<Credentials>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {ACCOUNT_COLUMNS} FROM console_account WHERE name = ?1"
        ))?
        .query_row([name], |r| {
            Ok(Credentials {
                account: account_from_row(r)?,
                password_hash: r.get(7)?,
            })
        })
        .optional()?)
}

fn insert(
    conn: &Connection,
    actor: &str,
    name: &AccountName,
    role: ConsoleRole,
    password_hash: &str,
) -> Result<i64> {
    if credentials(conn, name.as_str())?.is_some() {
        bail!("an account named {name} already exists");
    }
    let now = now_rfc3339();
    conn.execute(
        "INSERT INTO console_account (name, role, password_hash, created_at, created_by, updated_at, updated_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?4, ?5)",
        params![name.as_str(), role, password_hash, now, actor],
    )
    .with_context(|| format!("cannot create account {name}"))?;
    Ok(conn.last_insert_rowid())
}

/// The first account, made through the one-time setup link: always a
/// manager, and only while no account exists.
pub fn create_first(store: &Store, name: &AccountName, password_hash: &str) -> Result<i64> {
    atomically(store.conn(), |conn| {
        if count(conn)? > 0 {
            bail!("the console is already set up; sign in with an existing account");
        }
        let actor = format!("console:{name}");
        let id = insert(conn, &actor, name, ConsoleRole::Manager, password_hash)?;
        Store::audit(
            conn,
            &actor,
            "console.setup",
            Some(name.as_str()),
            Some(&json!({"role": "manager"})),
        )?;
        Ok(id)
    })
}

/// A new account, made by a manager.
pub fn create(
    store: &Store,
    actor: &str,
    name: &AccountName,
    role: ConsoleRole,
    password_hash: &str,
) -> Result<i64> {
    atomically(store.conn(), |conn| {
        let id = insert(conn, actor, name, role, password_hash)?;
        Store::audit(
            conn,
            actor,
            "console.account.create",
            Some(name.as_str()),
            Some(&json!({"role": role.as_str()})),
        )?;
        Ok(id)
    })
}

fn existing(conn: &Connection, name: &str) -> Result<Account> {
    credentials(conn, name)?
        .map(|c| c.account)
        .ok_or_else(|| anyhow::anyhow!("no console account named {name:?}"))
}

/// Whether another enabled manager would remain if `name` stopped being one.
fn another_manager(conn: &Connection, name: &str) -> Result<bool> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM console_account WHERE role = 'manager' AND disabled = 0 AND name <> ?1",
        [name],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

/// Replaces an account's password hash.
pub fn set_password(store: &Store, actor: &str, name: &str, password_hash: &str) -> Result<()> {
    atomically(store.conn(), |conn| {
        let account = existing(conn, name)?;
        conn.execute(
            "UPDATE console_account SET password_hash = ?1, updated_at = ?2, updated_by = ?3 WHERE id = ?4",
            params![password_hash, now_rfc3339(), actor, account.id],
        )?;
        Store::audit(
            conn,
            actor,
            "console.account.password",
            Some(&account.name),
            None,
        )
    })
}

/// Changes an account's role; the last enabled manager keeps theirs.
pub fn set_role(store: &Store, actor: &str, name: &str, role: ConsoleRole) -> Result<()> {
    atomically(store.conn(), |conn| {
        let account = existing(conn, name)?;
        if account.role == role {
            return Ok(());
        }
        if account.role == ConsoleRole::Manager && !another_manager(conn, &account.name)? {
            bail!(
                "{} is the last manager; make another manager first",
                account.name
            );
        }
        conn.execute(
            "UPDATE console_account SET role = ?1, updated_at = ?2, updated_by = ?3 WHERE id = ?4",
            params![role, now_rfc3339(), actor, account.id],
        )?;
        Store::audit(
            conn,
            actor,
            "console.account.role",
            Some(&account.name),
            Some(&json!({"role": role.as_str(), "was": account.role.as_str()})),
        )
    })
}

/// Disables or re-enables an account; the last enabled manager stays enabled.
pub fn set_disabled(store: &Store, actor: &str, name: &str, disabled: bool) -> Result<()> {
    atomically(store.conn(), |conn| {
        let account = existing(conn, name)?;
        if account.disabled == disabled {
            return Ok(());
        }
        if disabled
            && account.role == ConsoleRole::Manager
            && !another_manager(conn, &account.name)?
        {
            bail!(
                "{} is the last enabled manager and cannot be disabled",
                account.name
            );
        }
        conn.execute(
            "UPDATE console_account SET disabled = ?1, updated_at = ?2, updated_by = ?3 WHERE id = ?4",
            params![disabled, now_rfc3339(), actor, account.id],
        )?;
        let action = if disabled {
            "console.account.disable"
        } else {
            "console.account.enable"
        };
        Store::audit(conn, actor, action, Some(&account.name), None)
    })
}

/// A successful sign-in: remembered on the account and audited.
pub fn record_login(store: &Store, name: &str, peer: &str) -> Result<()> {
    atomically(store.conn(), |conn| {
        let account = existing(conn, name)?;
        conn.execute(
            "UPDATE console_account SET last_login_at = ?1 WHERE id = ?2",
            params![now_rfc3339(), account.id],
        )?;
        Store::audit(
            conn,
            &format!("console:{}", account.name),
            "console.login",
            Some(&account.name),
            Some(&json!({"peer": peer})),
        )
    })
}

/// A refused sign-in, audited under the name that was tried (cut short: it
/// comes from anyone on the network).
pub fn record_failed_login(store: &Store, tried: &str, peer: &str, why: &str) -> Result<()> {
    let tried: String = tried.chars().filter(|c| !c.is_control()).take(40).collect();
    Store::audit(
        store.conn(),
        "console:-",
        "console.login_failed",
        Some(&tried),
        Some(&json!({"peer": peer, "why": why})),
    )
}

/// One row of the audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: Option<String>,
    pub detail: Option<String>,
}

/// Which audit rows to read; `None` fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditFilter {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Part of the actor (`console:wang`, `os:root`).
    pub actor: Option<String>,
    /// Start of the action (`person.`, `console.login`).
    pub action: Option<String>,
    pub limit: Option<u32>,
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Audit rows matching `filter`, newest first.
pub fn audit_rows(conn: &Connection, filter: &AuditFilter) -> Result<Vec<AuditRow>> {
    let mut sql =
        String::from("SELECT id, at, actor, action, subject, detail FROM audit WHERE 1=1");
    let mut args: Vec<String> = Vec::new();
    // `clause` holds one `?` placeholder, numbered here.
    let mut push = |clause: &str, value: String| {
        args.push(value);
        sql.push_str(&format!(
            " AND {}",
            clause.replace('?', &format!("?{}", args.len()))
        ));
    };
    if let Some(t) = filter.since {
        push("at >= ?", t.to_rfc3339_opts(SecondsFormat::Millis, true));
    }
    if let Some(t) = filter.until {
        push("at < ?", t.to_rfc3339_opts(SecondsFormat::Millis, true));
    }
    if let Some(a) = filter.actor.as_deref().filter(|a| !a.trim().is_empty()) {
        push(
            "actor LIKE ? ESCAPE '\\'",
            format!("%{}%", like_escape(a.trim())),
        );
    }
    if let Some(a) = filter.action.as_deref().filter(|a| !a.trim().is_empty()) {
        push(
            "action LIKE ? ESCAPE '\\'",
            format!("{}%", like_escape(a.trim())),
        );
    }
    sql.push_str(" ORDER BY id DESC");
    if let Some(limit) = filter.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    let mut stmt = conn.prepare(&sql).context("cannot prepare audit query")?;
    let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
        Ok(AuditRow {
            id: r.get(0)?,
            at: r.get(1)?,
            actor: r.get(2)?,
            action: r.get(3)?,
            subject: r.get(4)?,
            detail: r.get(5)?,
        })
    })?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .context("cannot read the audit log")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> (std::path::PathBuf, Store) {
        let dir = std::env::temp_dir().join(format!(
            "gh-console-store-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let store = Store::open(&dir.join("g.db"), &dir).unwrap();
        (dir, store)
    }

    fn name(s: &str) -> AccountName {
        s.parse().unwrap()
    }

    #[test]
    fn account_names_are_short_and_plain() {
        assert!("wang.li".parse::<AccountName>().is_ok());
        assert!("王经理".parse::<AccountName>().is_ok());
        assert!("a".parse::<AccountName>().is_err());
        assert!("wang li"
            .parse::<AccountName>()
            .unwrap_err()
            .contains("' '"));
        assert!("x".repeat(33).parse::<AccountName>().is_err());
    }

    #[test]
    fn first_account_only_while_none_exists_and_everything_is_audited() {
        let (dir, store) = scratch();
        assert_eq!(count(store.conn()).unwrap(), 0);
        create_first(&store, &name("wang"), "$argon2id$x").unwrap();
        let e = create_first(&store, &name("li"), "$argon2id$y").unwrap_err();
        assert!(e.to_string().contains("already set up"), "{e}");
        create(
            &store,
            "console:wang",
            &name("guard1"),
            ConsoleRole::Guard,
            "$argon2id$z",
        )
        .unwrap();
        let e = create(
            &store,
            "console:wang",
            &name("GUARD1"),
            ConsoleRole::Guard,
            "h",
        )
        .unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        let c = credentials(store.conn(), "Guard1").unwrap().unwrap();
        assert_eq!(c.account.role, ConsoleRole::Guard);
        assert!(!format!("{c:?}").contains("argon2id$z"));
        let rows = audit_rows(store.conn(), &AuditFilter::default()).unwrap();
        let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(actions, ["console.account.create", "console.setup"]);
        assert_eq!(rows[0].actor, "console:wang");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn the_last_manager_cannot_be_disabled_or_demoted() {
        let (dir, store) = scratch();
        create_first(&store, &name("wang"), "h").unwrap();
        assert!(set_disabled(&store, "console:wang", "wang", true).is_err());
        assert!(set_role(&store, "console:wang", "wang", ConsoleRole::Guard).is_err());
        create(
            &store,
            "console:wang",
            &name("zhao"),
            ConsoleRole::Manager,
            "h",
        )
        .unwrap();
        set_disabled(&store, "console:wang", "zhao", true).unwrap();
        assert!(set_role(&store, "console:wang", "wang", ConsoleRole::Auditor).is_err());
        set_disabled(&store, "console:wang", "zhao", false).unwrap();
        set_role(&store, "console:zhao", "wang", ConsoleRole::Auditor).unwrap();
        let wang = credentials(store.conn(), "wang").unwrap().unwrap();
        assert_eq!(wang.account.role, ConsoleRole::Auditor);
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn audit_filters_match_actor_part_and_action_prefix() {
        let (dir, store) = scratch();
        create_first(&store, &name("wang"), "h").unwrap();
        record_failed_login(&store, "root\u{7}", "10.0.0.9", "unknown account").unwrap();
        let failed = audit_rows(
            store.conn(),
            &AuditFilter {
                action: Some("console.login".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].subject.as_deref(), Some("root"));
        let by_wang = audit_rows(
            store.conn(),
            &AuditFilter {
                actor: Some("wang".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(by_wang.len(), 1);
        assert_eq!(by_wang[0].action, "console.setup");
        std::fs::remove_dir_all(&dir).ok();
    }
}
