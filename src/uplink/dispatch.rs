//! Obeying (or refusing) one station command: check where the reply would
//! go, verify at the trusted "now", check the nonce, the key's high-water
//! mark and the clock, audit, execute, and build the signed reply. Every
//! command that reaches the gateway leaves exactly one
//! `uplink.command.accepted` or `uplink.command.refused` audit row with the
//! officer id (plus `uplink.command.failed` when an accepted command could
//! not be carried out).
//!
//! Time: the trusted "now" is max(`GatewayActions::now`, the stored trusted
//! floor). A synchronised reading raises the floor; so does an accepted
//! command's `issued_at` (less the skew): a signed station timestamp. Nonces
//! are kept until their command's expiry is behind the floor by more than
//! the skew, so a clock moved forward and back cannot revive one.

use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, SecondsFormat, Utc};
use ed25519_dalek::SigningKey;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::actions::{GatewayActions, RemoteOpen};
use super::args::*;
use super::command::{self, Refusal, RefusalCode, Reply, SignedCommand, Verified};
use super::db::Db;
use super::settings::UplinkSettings;
use crate::domain::{GateId, ResidentId};
use crate::store::events::{self, EventFilter};
use crate::store::station_queries::{self, ResidentKey};
use crate::store::{atomic, nonces, outbox, trusted_time, Store};

/// What the gateway trusts about time when a command arrives.
#[derive(Clone, Copy, Debug)]
struct TrustedNow {
    /// max(clock, floor).
    now: DateTime<Utc>,
    /// The clock as read.
    clock: DateTime<Utc>,
    synced: bool,
}

pub(crate) struct Dispatcher<A> {
    pub settings: Arc<UplinkSettings>,
    pub db: Db,
    pub actions: Arc<A>,
    pub reply_key: SigningKey,
}

impl<A: GatewayActions> Dispatcher<A> {
    /// Handles one message from `…/cmd/{topic_command}` whose MQTT v5 response
    /// topic is `response_topic`, and returns the reply, or `None` when the
    /// reply may not be sent there (refused and audited, nothing done).
    pub async fn handle(
        &self,
        topic_command: &str,
        payload: &[u8],
        response_topic: Option<&str>,
    ) -> Option<Reply> {
        if let Err(refusal) = command::check_reply_topic(response_topic) {
            let claimed = command::parse(payload).ok();
            self.audit_refusal(claimed.as_ref(), topic_command, &refusal, false)
                .await;
            return None;
        }
        Some(self.answer(topic_command, payload).await)
    }

    /// The trusted "now": the clock, never below the stored floor; a
    /// synchronised reading raises the floor first.
    async fn trusted_now(&self) -> Result<TrustedNow> {
        let clock = self.actions.now();
        let synced = self.actions.clock_synced();
        let floor = self
            .db
            .call(move |store| {
                if synced {
                    trusted_time::raise(store.conn(), clock, "clock")?;
                }
                trusted_time::load(store.conn())
            })
            .await?;
        Ok(TrustedNow {
            now: floor.map_or(clock, |f| f.max(clock)),
            clock,
            synced,
        })
    }

    async fn answer(&self, topic_command: &str, payload: &[u8]) -> Reply {
        let cmd = match command::parse(payload) {
            Ok(cmd) => cmd,
            Err(refusal) => {
                self.audit_refusal(None, topic_command, &refusal, true)
                    .await;
                return self.reply(Some(topic_command), None, Err(refusal));
            }
        };
        let nonce = Some(cmd.nonce.as_str());
        let trusted = match self.trusted_now().await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot read the trusted time floor");
                let refusal = Refusal::new(
                    RefusalCode::Failed,
                    "the gateway could not read its trusted time; nothing was done",
                );
                return self.reply(Some(topic_command), nonce, Err(refusal));
            }
        };
        let verified = match command::verify(
            &cmd,
            topic_command,
            self.settings.topics.site(),
            self.settings.topics.gateway(),
            &self.settings.station_keys,
            trusted.now,
        ) {
            Ok(v) => v,
            Err(refusal) => {
                self.audit_refusal(Some(&cmd), topic_command, &refusal, true)
                    .await;
                return self.reply(Some(topic_command), nonce, Err(refusal));
            }
        };
        let key = self
            .settings
            .station_keys
            .get(verified.key_index)
            .map(command::public_key_text)
            .unwrap_or_default();
        let summary = audit_args(&verified);
        let admitted = {
            let v = verified.clone();
            self.db
                .call(move |store| admit(store, &v, &summary, &key, trusted))
                .await
        };
        match admitted {
            Ok(None) => {}
            Ok(Some(refusal)) => {
                return self.reply(Some(topic_command), nonce, Err(refusal));
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "cannot record a station command");
                let refusal = Refusal::new(
                    RefusalCode::Failed,
                    "the gateway could not record the command; nothing was done",
                );
                return self.reply(Some(topic_command), nonce, Err(refusal));
            }
        }
        let outcome = self.execute(&verified).await;
        if let Err(refusal) = &outcome {
            let (actor, v, r) = (actor(&verified.officer), verified.clone(), refusal.clone());
            let logged = self
                .db
                .call(move |store| {
                    Store::audit(
                        store.conn(),
                        &actor,
                        "uplink.command.failed",
                        Some(&v.command),
                        Some(&json!({"officer": v.officer, "nonce": v.nonce, "code": r.code, "message": r.message})),
                    )
                })
                .await;
            if let Err(e) = logged {
                tracing::error!(error = %format!("{e:#}"), "cannot audit a failed station command");
            }
        }
        tracing::info!(
            command = %verified.command,
            officer = %verified.officer,
            ok = outcome.is_ok(),
            "station command"
        );
        self.reply(Some(topic_command), nonce, outcome)
    }

    fn reply(
        &self,
        command: Option<&str>,
        nonce: Option<&str>,
        outcome: Result<Value, Refusal>,
    ) -> Reply {
        let (ok, result, error) = match outcome {
            Ok(v) => (true, Some(v), None),
            Err(r) => (false, None, Some(r)),
        };
        Reply {
            ok,
            site: self.settings.topics.site().to_string(),
            gateway: self.settings.topics.gateway().to_string(),
            command: command.map(str::to_string),
            nonce: nonce.map(str::to_string),
            at: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            result,
            error,
            signature: None,
        }
        .sign(&self.reply_key)
    }

    /// `verified_officer`: whether the signature was checked before this
    /// refusal (else the officer id is only a claim, and the actor says so).
    async fn audit_refusal(
        &self,
        cmd: Option<&SignedCommand>,
        topic_command: &str,
        refusal: &Refusal,
        verified_officer: bool,
    ) {
        let actor = match cmd {
            Some(c)
                if verified_officer
                    && !matches!(
                        refusal.code,
                        RefusalCode::Unsigned | RefusalCode::BadSignature
                    ) =>
            {
                actor(&c.officer)
            }
            Some(c) => format!("station-unverified:{}", c.officer),
            None => "station-unverified:unknown".to_string(),
        };
        let detail = json!({
            "officer": cmd.map(|c| c.officer.clone()),
            "nonce": cmd.map(|c| c.nonce.clone()),
            "code": refusal.code,
            "message": refusal.message,
        });
        let subject = topic_command.to_string();
        let logged = self
            .db
            .call(move |store| {
                Store::audit(
                    store.conn(),
                    &actor,
                    "uplink.command.refused",
                    Some(&subject),
                    Some(&detail),
                )
            })
            .await;
        if let Err(e) = logged {
            tracing::error!(error = %format!("{e:#}"), "cannot audit a refused station command");
        }
        tracing::warn!(command = topic_command, code = refusal.code.as_str(), reason = %refusal.message, "refused station command");
    }

    async fn execute(&self, v: &Verified) -> Result<Value, Refusal> {
        match v.command.as_str() {
            "ping" => self.ping().await,
            "query_events" => self.query_events(args(&v.args)?).await,
            "get_resident" => self.get_resident(v, args(&v.args)?).await,
            "open_gate" => self.open_gate(v, args(&v.args)?).await,
            "watchlist_set" => self.watchlist_set(v, args(&v.args)?).await,
            "watchlist_clear" => self.watchlist_clear(args(&v.args)?).await,
            "get_snapshot" => self.get_snapshot(v, args(&v.args)?).await,
            other => Err(Refusal::new(
                RefusalCode::UnknownCommand,
                format!("unknown command {other:?}"),
            )),
        }
    }

    async fn ping(&self) -> Result<Value, Refusal> {
        let clock_synced = self.actions.clock_synced();
        let (head, depth) = self
            .db
            .read(|conn| Ok((outbox::head_seq(conn)?, outbox::depth(conn)?)))
            .await
            .map_err(failed)?;
        Ok(json!({
            "pong": true,
            "version": env!("CARGO_PKG_VERSION"),
            "head_seq": head,
            "outbox_depth": depth.events,
            "clock_synced": clock_synced,
        }))
    }

    async fn query_events(&self, a: QueryEventsArgs) -> Result<Value, Refusal> {
        let subject_id = a
            .resident
            .as_deref()
            .map(|r| r.parse::<ResidentId>().map(|id| id.0))
            .transpose()
            .map_err(bad_args)?;
        if let Some(g) = &a.gate {
            g.parse::<GateId>().map_err(bad_args)?;
        }
        let page = a.limit.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
        let filter = EventFilter {
            since: a.since,
            until: a.until,
            gate: a.gate,
            subject_id,
            result: a.result,
            kind: a.kind,
            credential_kind: a.credential_kind,
            after_seq: a.after_seq,
            // One more than the page tells whether another page follows.
            limit: Some(page + 1),
            newest_first: false,
        };
        let rows = self
            .db
            .read(move |conn| events::query(conn, &filter))
            .await
            .map_err(failed)?;
        let more = rows.len() > page as usize;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut truncated = false;
        for rec in rows.iter().take(page as usize) {
            let p =
                super::snapshots::payload(self.settings.face_snapshots, rec, &self.settings.topics);
            let p = serde_json::to_value(p).map_err(|e| failed(e.into()))?;
            bytes += p.to_string().len();
            if bytes > MAX_PAGE_BYTES && !out.is_empty() {
                truncated = true;
                break;
            }
            out.push((rec.seq, p));
        }
        let next_after_seq = if more || truncated {
            out.last().map(|(seq, _)| *seq)
        } else {
            None
        };
        Ok(json!({
            "events": out.into_iter().map(|(_, p)| p).collect::<Vec<_>>(),
            "next_after_seq": next_after_seq,
            "page_limit": MAX_PAGE,
        }))
    }

    async fn get_resident(&self, v: &Verified, a: GetResidentArgs) -> Result<Value, Refusal> {
        let key = match (a.resident, a.card, a.plate) {
            (Some(r), None, None) => ResidentKey::Id(r.parse().map_err(bad_args)?),
            (None, Some(c), None) => ResidentKey::Card(c.parse().map_err(bad_args)?),
            (None, None, Some(p)) => ResidentKey::Plate(p.parse().map_err(bad_args)?),
            _ => {
                return Err(bad_args(
                    "give exactly one of resident, card or plate".into(),
                ))
            }
        };
        let actions = self.actions.clone();
        let officer = v.officer.clone();
        let found = self
            .db
            .call(move |store| {
                let found = actions.get_resident(store.conn(), &key)?;
                // Who read whom: a row per personal-data read, subject = the resident.
                Store::audit(
                    store.conn(),
                    &actor(&officer),
                    "uplink.resident.read",
                    found.as_ref().map(|r| r.resident_id.as_str()),
                    Some(&json!({"officer": officer, "by": key.to_string(), "found": found.is_some()})),
                )?;
                Ok(found)
            })
            .await
            .map_err(failed)?;
        Ok(json!({ "found": found.is_some(), "resident": found }))
    }

    async fn open_gate(&self, v: &Verified, a: OpenGateArgs) -> Result<Value, Refusal> {
        let gate: GateId = a.gate.parse().map_err(bad_args)?;
        let reason = a.reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            return Err(bad_args("reason: expected 1..=200 characters".into()));
        }
        let order = RemoteOpen {
            gate,
            officer: v.officer.clone(),
            reason: reason.to_string(),
            nonce: v.nonce.clone(),
        };
        self.actions.open_gate(order).await.map_err(failed)
    }

    async fn watchlist_set(&self, v: &Verified, a: WatchlistSetArgs) -> Result<Value, Refusal> {
        if a.entries.is_empty() || a.entries.len() > MAX_WATCH_ENTRIES {
            return Err(bad_args(format!(
                "entries: expected 1..={MAX_WATCH_ENTRIES}"
            )));
        }
        let entries = a
            .entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                e.validated()
                    .map_err(|p| bad_args(format!("entries[{i}]: {p}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let by = actor(&v.officer);
        let stored = self
            .db
            .call(move |store| station_queries::watchlist_set(store.conn(), &entries, &by))
            .await
            .map_err(failed)?;
        self.actions.watchlist_changed();
        Ok(json!({ "stored": stored }))
    }

    async fn watchlist_clear(&self, a: WatchlistClearArgs) -> Result<Value, Refusal> {
        if a.kind.is_none() && !a.values.is_empty() {
            return Err(bad_args("values need a kind".into()));
        }
        let removed = self
            .db
            .call(move |store| station_queries::watchlist_clear(store.conn(), a.kind, &a.values))
            .await
            .map_err(failed)?;
        self.actions.watchlist_changed();
        Ok(json!({ "removed": removed }))
    }
}

impl<A: GatewayActions> Dispatcher<A> {
    /// A snapshot `face_snapshots` held back, sent on an officer's signed
    /// request (see `uplink::snapshots`).
    async fn get_snapshot(
        &self,
        v: &Verified,
        a: super::snapshots::GetSnapshotArgs,
    ) -> Result<Value, Refusal> {
        if a.reason.trim().is_empty() || a.reason.chars().count() > 200 {
            return Err(bad_args("reason: expected 1..=200 characters".into()));
        }
        let dir = self.settings.data_dir.join("snapshots");
        let officer = v.officer.clone();
        self.db
            .call(move |store| super::snapshots::get(store, &dir, &actor(&officer), &officer, &a))
            .await
            .map_err(failed)
    }
}

/// The audit actor for a verified officer.
fn actor(officer: &str) -> String {
    format!("station:{officer}")
}

fn args<T: DeserializeOwned>(v: &Value) -> Result<T, Refusal> {
    serde_json::from_value(v.clone()).map_err(|e| bad_args(e.to_string()))
}

fn bad_args(message: String) -> Refusal {
    Refusal::new(RefusalCode::BadArguments, message)
}

fn failed(e: anyhow::Error) -> Refusal {
    Refusal::new(RefusalCode::Failed, format!("{e:#}"))
}

/// The arguments as the audit log keeps them: face embeddings are replaced by
/// their length (they are large and biometric).
fn audit_args(v: &Verified) -> Value {
    let mut args = v.args.clone();
    if let Some(entries) = args.get_mut("entries").and_then(Value::as_array_mut) {
        for e in entries {
            if let Some(len) = e.get("embedding").and_then(Value::as_array).map(Vec::len) {
                e["embedding"] = json!(format!("<{len} numbers>"));
            }
        }
    }
    args
}

/// Refuses a replay (a nonce seen before), a stale or clock-blind
/// state-changing command ([`command::check_freshness`]), else records the
/// nonce, raises the key's high-water mark and the trusted floor, and audits
/// the accepted command, in one transaction, so an accepted command is always
/// audited and never runs twice.
fn admit(
    store: &Store,
    v: &Verified,
    args: &Value,
    key: &str,
    trusted: TrustedNow,
) -> Result<Option<Refusal>> {
    // BEGIN IMMEDIATE: the nonce check and its insert are one step for any
    // other writer of this database.
    atomic::atomically(store.conn(), |tx| {
        let floor = trusted_time::stored(tx)?;
        if let Some(floor) = floor {
            nonces::prune(tx, floor - command::CLOCK_SKEW)?;
        }
        let seen = nonces::seen_at(tx, &v.nonce)?;
        let detail =
            json!({"officer": v.officer, "nonce": v.nonce, "key_index": v.key_index, "args": args});
        let refusal = match seen {
            Some(seen_at) => Some(Refusal::new(
                RefusalCode::Replayed,
                format!("nonce {} was already used at {seen_at}", v.nonce),
            )),
            None => {
                command::check_freshness(v, trusted.synced, trusted_time::key_mark(tx, key)?, floor)
                    .err()
            }
        };
        if let Some(refusal) = refusal {
            let mut detail = detail;
            detail["code"] = json!(refusal.code);
            detail["message"] = json!(refusal.message);
            detail["clock"] = json!(rfc3339(trusted.clock));
            detail["trusted_now"] = json!(rfc3339(trusted.now));
            detail["clock_synced"] = json!(trusted.synced);
            Store::audit(
                tx,
                &actor(&v.officer),
                "uplink.command.refused",
                Some(&v.command),
                Some(&detail),
            )?;
            tracing::warn!(command = %v.command, officer = %v.officer, code = refusal.code.as_str(), "refused station command");
            return Ok(Some(refusal));
        }
        nonces::insert(
            tx,
            &nonces::SeenNonce {
                nonce: &v.nonce,
                officer: &v.officer,
                command: &v.command,
                expires_at: v.expires_at,
                seen_at: trusted.now,
            },
        )?;
        trusted_time::raise_key_mark(tx, key, v.issued_at, &v.nonce)?;
        trusted_time::raise(tx, v.issued_at - command::CLOCK_SKEW, "station")?;
        Store::audit(
            tx,
            &actor(&v.officer),
            "uplink.command.accepted",
            Some(&v.command),
            Some(&detail),
        )?;
        Ok(None)
    })
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}
