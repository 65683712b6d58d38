//! The officer's side of the uplink, shipped in the same binary: the
//! station's signing key, signed commands, MQTT v5 request/response to one
//! gateway, and the live event stream of a site.
//!
//! Architecture Invariant: the station side shares the wire types of
//! `uplink` (commands, replies, payloads, topics) and nothing else; it never
//! opens a gateway's database.

mod client;
mod keys;

pub use client::{Connection, Endpoint, Incoming};
pub use keys::{generate_key_file, load_signing_key};

use anyhow::{bail, Result};
use chrono::Duration;
use ed25519_dalek::{SigningKey, VerifyingKey};
use serde_json::Value;

use crate::uplink::args::QueryEventsArgs;
use crate::uplink::command::{Reply, SignedCommand};
use crate::uplink::payload::EventPayload;
use crate::uplink::Topics;

/// Who signs and for which gateway.
pub struct Signer {
    pub key: SigningKey,
    pub officer: String,
    pub validity: Duration,
}

impl Signer {
    pub fn sign(&self, topics: &Topics, command: &str, args: Value) -> SignedCommand {
        SignedCommand::new(
            command,
            args,
            topics.site(),
            topics.gateway(),
            &self.officer,
            self.validity,
        )
        .sign(&self.key)
    }
}

/// Signs `command`, sends it, waits for the reply and checks its signature
/// when the gateway's reply key is known. A refusal is returned as a reply
/// with `ok = false`, not as an error.
pub async fn call(
    conn: &mut Connection,
    topics: &Topics,
    signer: &Signer,
    gateway_key: Option<&VerifyingKey>,
    command: &str,
    args: Value,
    timeout: std::time::Duration,
) -> Result<Reply> {
    let cmd = signer.sign(topics, command, args);
    let payload = serde_json::to_vec(&cmd)?;
    let reply = conn.request(&topics.cmd(command), payload, timeout).await?;
    if let Some(key) = gateway_key {
        if !reply.verify(key) {
            bail!(
                "the reply to {command} is not signed by the gateway key given with --gateway-key; ignoring it"
            );
        }
    }
    Ok(reply)
}

/// Pages through `query_events` until the gateway has no more or `max`
/// events are collected.
pub async fn query_all(
    conn: &mut Connection,
    topics: &Topics,
    signer: &Signer,
    gateway_key: Option<&VerifyingKey>,
    mut args: QueryEventsArgs,
    max: usize,
    timeout: std::time::Duration,
) -> Result<Vec<EventPayload>> {
    let mut events = Vec::new();
    loop {
        let reply = call(
            conn,
            topics,
            signer,
            gateway_key,
            "query_events",
            serde_json::to_value(&args)?,
            timeout,
        )
        .await?;
        if !reply.ok {
            let e = reply.error.map(|e| e.to_string()).unwrap_or_default();
            bail!("the gateway refused query_events: {e}");
        }
        let result = reply.result.unwrap_or(Value::Null);
        let page: Vec<EventPayload> = serde_json::from_value(result["events"].clone())?;
        events.extend(page);
        match result["next_after_seq"].as_i64() {
            Some(cursor) if events.len() < max => args.after_seq = Some(cursor),
            _ => break,
        }
    }
    events.truncate(max);
    Ok(events)
}
