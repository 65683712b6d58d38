//! Signed remote commands: the wire format, signing, and the pure checks a
//! command must pass before the gateway obeys it (signature by a configured
//! station key, addressed to this gateway, within its validity window). The
//! replay check needs the database and lives with the dispatcher.
//!
//! The signature is Ed25519 over `"gatehouse-command-v1\n"` followed by the
//! RFC 8785 (JCS) canonical JSON of the command object without its
//! `signature` field, so a station in any language can produce the bytes. That object carries the command, its arguments, the
//! officer id, `issued_at`, `expires_at`, a nonce, and the site and gateway it
//! is meant for (so a command cannot be replayed at another gateway).
//!
//! Replies are signed the same way with the gateway's own key
//! (`"gatehouse-reply-v1\n"`), including error replies, and go only to a
//! response topic under the station's reply prefix ([`check_reply_topic`]).
//!
//! Time: commands are judged at the gateway's trusted "now", max(clock,
//! trusted time floor), so a clock set back cannot revive an expired command.
//! State-changing commands ([`STATE_CHANGING`]) also need a synchronised
//! clock (with an unsynchronised one an expiry can be proved past, never
//! still ahead) and an `issued_at` no older than the newest command already
//! accepted from the same key, minus [`CLOCK_SKEW`] ([`check_freshness`]).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::signing::canonical;

pub const COMMAND_CONTEXT: &[u8] = b"gatehouse-command-v1\n";
pub const REPLY_CONTEXT: &[u8] = b"gatehouse-reply-v1\n";

/// A command may be at most this far in the future (clocks differ a little).
pub const CLOCK_SKEW: Duration = Duration::seconds(60);
/// The longest validity window a command may ask for; bounds how long nonces are kept.
pub const MAX_LIFETIME: Duration = Duration::hours(1);
/// Commands that change something at the gate; the others only read.
pub const STATE_CHANGING: &[&str] = &["open_gate", "watchlist_set", "watchlist_clear"];
/// Largest command payload accepted.
pub const MAX_COMMAND_BYTES: usize = 256 * 1024;

/// The commands a gateway obeys.
pub const COMMANDS: &[&str] = &[
    "ping",
    "query_events",
    "get_resident",
    "open_gate",
    "watchlist_set",
    "watchlist_clear",
    "get_snapshot",
];

/// A command as it travels (`…/cmd/{command}` payload).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedCommand {
    pub command: String,
    #[serde(default = "empty_object")]
    pub args: Value,
    pub site: String,
    pub gateway: String,
    /// The officer who issued it (their badge or account id).
    pub officer: String,
    /// RFC 3339.
    pub issued_at: String,
    /// RFC 3339; refused after this instant.
    pub expires_at: String,
    /// Unique per command; a nonce seen before is a replay.
    pub nonce: String,
    /// Base64 Ed25519 signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

impl SignedCommand {
    /// A new unsigned command valid from now for `validity`, with a random nonce.
    pub fn new(
        command: &str,
        args: Value,
        site: &str,
        gateway: &str,
        officer: &str,
        validity: Duration,
    ) -> SignedCommand {
        let now = Utc::now();
        SignedCommand {
            command: command.to_string(),
            args,
            site: site.to_string(),
            gateway: gateway.to_string(),
            officer: officer.to_string(),
            issued_at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            expires_at: (now + validity).to_rfc3339_opts(SecondsFormat::Millis, true),
            nonce: hex::encode(rand::random::<[u8; 16]>()),
            signature: None,
        }
    }

    /// The bytes the signature covers.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        let value = serde_json::to_value(&unsigned).unwrap_or(Value::Null);
        let mut bytes = COMMAND_CONTEXT.to_vec();
        bytes.extend_from_slice(canonical::to_string(&value).as_bytes());
        bytes
    }

    pub fn sign(mut self, key: &SigningKey) -> SignedCommand {
        self.signature = None;
        let sig = key.sign(&self.signing_bytes());
        self.signature = Some(B64.encode(sig.to_bytes()));
        self
    }
}

/// Why a command was refused; the code is part of the reply schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    Malformed,
    Unsigned,
    BadSignature,
    WrongTarget,
    Expired,
    FutureDated,
    LifetimeTooLong,
    Replayed,
    /// Issued before the newest command already accepted from the same key.
    Stale,
    /// A state-changing command while the gateway's clock is not synchronised.
    ClockUnsynchronised,
    /// No response topic, or one outside the station's reply prefix (audited, never answered).
    BadReplyTopic,
    UnknownCommand,
    BadArguments,
    Failed,
}

impl RefusalCode {
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::Malformed => "malformed",
            RefusalCode::Unsigned => "unsigned",
            RefusalCode::BadSignature => "bad_signature",
            RefusalCode::WrongTarget => "wrong_target",
            RefusalCode::Expired => "expired",
            RefusalCode::FutureDated => "future_dated",
            RefusalCode::LifetimeTooLong => "lifetime_too_long",
            RefusalCode::Replayed => "replayed",
            RefusalCode::Stale => "stale",
            RefusalCode::ClockUnsynchronised => "clock_unsynchronised",
            RefusalCode::BadReplyTopic => "bad_reply_topic",
            RefusalCode::UnknownCommand => "unknown_command",
            RefusalCode::BadArguments => "bad_arguments",
            RefusalCode::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub code: RefusalCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: RefusalCode, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

/// A command whose signature, target and time window checked out.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    pub command: String,
    pub args: Value,
    pub officer: String,
    pub nonce: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Which configured station key signed it.
    pub key_index: usize,
}

/// Parses a command payload; a refusal names what is wrong with it.
pub fn parse(payload: &[u8]) -> Result<SignedCommand, Refusal> {
    if payload.len() > MAX_COMMAND_BYTES {
        return Err(Refusal::new(
            RefusalCode::Malformed,
            format!(
                "command is {} bytes, the limit is {MAX_COMMAND_BYTES}",
                payload.len()
            ),
        ));
    }
    let cmd: SignedCommand = serde_json::from_slice(payload)
        .map_err(|e| Refusal::new(RefusalCode::Malformed, format!("not a command: {e}")))?;
    if !cmd.args.is_object() {
        return Err(Refusal::new(
            RefusalCode::Malformed,
            "args: expected a JSON object",
        ));
    }
    check_officer(&cmd.officer)?;
    check_nonce(&cmd.nonce)?;
    Ok(cmd)
}

fn check_officer(officer: &str) -> Result<(), Refusal> {
    let n = officer.chars().count();
    if n == 0 || n > 64 || officer.chars().any(|c| c.is_control()) {
        return Err(Refusal::new(
            RefusalCode::Malformed,
            "officer: expected 1..=64 printable characters",
        ));
    }
    Ok(())
}

fn check_nonce(nonce: &str) -> Result<(), Refusal> {
    let ok = (16..=128).contains(&nonce.len())
        && nonce
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_+/=".contains(&b));
    if !ok {
        return Err(Refusal::new(
            RefusalCode::Malformed,
            "nonce: expected 16..=128 characters of hex or base64",
        ));
    }
    Ok(())
}

fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, Refusal> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Refusal::new(
                RefusalCode::Malformed,
                format!("{field}: expected RFC 3339, got {value:?} ({e})"),
            )
        })
}

/// Everything but the replay check: signed by one of `keys`, addressed to
/// this gateway and to the topic's command, and valid at `now`.
pub fn verify(
    cmd: &SignedCommand,
    topic_command: &str,
    site: &str,
    gateway: &str,
    keys: &[VerifyingKey],
    now: DateTime<Utc>,
) -> Result<Verified, Refusal> {
    let Some(signature) = cmd.signature.as_deref().filter(|s| !s.is_empty()) else {
        return Err(Refusal::new(
            RefusalCode::Unsigned,
            "command carries no signature",
        ));
    };
    let bad = |why: &str| Refusal::new(RefusalCode::BadSignature, why.to_string());
    let bytes: [u8; 64] = B64
        .decode(signature)
        .map_err(|_| bad("signature is not base64"))?
        .try_into()
        .map_err(|_| bad("signature is not 64 bytes"))?;
    let signature = Signature::from_bytes(&bytes);
    let message = cmd.signing_bytes();
    let key_index = keys
        .iter()
        .position(|k| k.verify(&message, &signature).is_ok())
        .ok_or_else(|| {
            bad(if keys.is_empty() {
                "this gateway has no station keys configured ([uplink] station_keys)"
            } else {
                "signature does not verify with any configured station key"
            })
        })?;
    if cmd.site != site || cmd.gateway != gateway {
        return Err(Refusal::new(
            RefusalCode::WrongTarget,
            format!(
                "command is addressed to {}/{}, this is {site}/{gateway}",
                cmd.site, cmd.gateway
            ),
        ));
    }
    if cmd.command != topic_command {
        return Err(Refusal::new(
            RefusalCode::WrongTarget,
            format!(
                "command {:?} arrived on the topic of {topic_command:?}",
                cmd.command
            ),
        ));
    }
    let issued = parse_time("issued_at", &cmd.issued_at)?;
    let expires = parse_time("expires_at", &cmd.expires_at)?;
    if expires <= issued {
        return Err(Refusal::new(
            RefusalCode::Malformed,
            "expires_at is not after issued_at",
        ));
    }
    if now >= expires {
        return Err(Refusal::new(
            RefusalCode::Expired,
            format!("command expired at {}", cmd.expires_at),
        ));
    }
    if issued > now + CLOCK_SKEW {
        return Err(Refusal::new(
            RefusalCode::FutureDated,
            format!(
                "command is issued at {}, ahead of this gateway's clock ({})",
                cmd.issued_at,
                now.to_rfc3339_opts(SecondsFormat::Secs, true)
            ),
        ));
    }
    if expires - issued > MAX_LIFETIME {
        return Err(Refusal::new(
            RefusalCode::LifetimeTooLong,
            format!(
                "command is valid for {} s, at most {} s allowed",
                (expires - issued).num_seconds(),
                MAX_LIFETIME.num_seconds()
            ),
        ));
    }
    if !COMMANDS.contains(&cmd.command.as_str()) {
        return Err(Refusal::new(
            RefusalCode::UnknownCommand,
            format!(
                "unknown command {:?}; known: {}",
                cmd.command,
                COMMANDS.join(", ")
            ),
        ));
    }
    Ok(Verified {
        command: cmd.command.clone(),
        args: cmd.args.clone(),
        officer: cmd.officer.clone(),
        nonce: cmd.nonce.clone(),
        issued_at: issued,
        expires_at: expires,
        key_index,
    })
}

/// The checks of a verified command against what the gateway trusts about
/// time: `synced`, whether the clock is synchronised; `mark`, the newest
/// `issued_at` accepted from the signing key (kept across restarts); `floor`,
/// the stored trusted time floor.
/// Read-only commands pass (`ping` is how the station sees the clock state).
///
/// With an unsynchronised clock a state-changing command is judged against
/// the floor alone: with no floor at all its times cannot be judged and it is
/// refused; one issued before the floor (less the skew) may have been held
/// back by whoever captured it, and is refused as stale. A signed read (a
/// `ping`) gives a gateway with no floor one: the station's signed time.
pub fn check_freshness(
    v: &Verified,
    synced: bool,
    mark: Option<DateTime<Utc>>,
    floor: Option<DateTime<Utc>>,
) -> Result<(), Refusal> {
    if !STATE_CHANGING.contains(&v.command.as_str()) {
        return Ok(());
    }
    if !synced {
        let Some(floor) = floor else {
            return Err(Refusal::new(
                RefusalCode::ClockUnsynchronised,
                format!(
                    "{} changes the gate, and this gateway's clock is not synchronised and it \
                     has no trusted time yet, so the command's expiry cannot be judged; refused \
                     until the clock is synchronised or a signed read (ping) gives it the \
                     station's time",
                    v.command
                ),
            ));
        };
        if v.issued_at < floor - CLOCK_SKEW {
            return Err(Refusal::new(
                RefusalCode::Stale,
                format!(
                    "command is issued at {}, before this gateway's trusted time {} by more than \
                     {} s, and the clock is not synchronised to say it is still current",
                    v.issued_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                    floor.to_rfc3339_opts(SecondsFormat::Millis, true),
                    CLOCK_SKEW.num_seconds()
                ),
            ));
        }
    }
    if let Some(mark) = mark {
        if v.issued_at < mark - CLOCK_SKEW {
            return Err(Refusal::new(
                RefusalCode::Stale,
                format!(
                    "command is issued at {}, before the newest command already accepted from \
                     this key ({}) by more than {} s",
                    v.issued_at.to_rfc3339_opts(SecondsFormat::Millis, true),
                    mark.to_rfc3339_opts(SecondsFormat::Millis, true),
                    CLOCK_SKEW.num_seconds()
                ),
            ));
        }
    }
    Ok(())
}

/// Replies go only to the station's reply topics (`gatehouse-station/…`,
/// see `topics::REPLY_PREFIX`): never into the gatehouse tree, where a signed
/// reply could pass for an event, nor to any topic a request names.
pub fn check_reply_topic(topic: Option<&str>) -> Result<(), Refusal> {
    let prefix = super::topics::REPLY_PREFIX;
    let Some(topic) = topic else {
        return Err(Refusal::new(
            RefusalCode::BadReplyTopic,
            format!("the command names no MQTT v5 response topic (expected one under {prefix})"),
        ));
    };
    let ok = topic.len() > prefix.len()
        && topic.len() <= 256
        && topic.starts_with(prefix)
        && !topic.contains(['+', '#', '\0']);
    if !ok {
        return Err(Refusal::new(
            RefusalCode::BadReplyTopic,
            format!("response topic {topic:?} is not under the station's reply prefix {prefix}"),
        ));
    }
    Ok(())
}

/// The gateway's answer to a command (on the request's response topic).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub ok: bool,
    pub site: String,
    pub gateway: String,
    /// The command and nonce answered, when the request was readable.
    pub command: Option<String>,
    pub nonce: Option<String>,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Refusal>,
    /// Base64 Ed25519 signature by the gateway's reply key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl Reply {
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.signature = None;
        let value = serde_json::to_value(&unsigned).unwrap_or(Value::Null);
        let mut bytes = REPLY_CONTEXT.to_vec();
        bytes.extend_from_slice(canonical::to_string(&value).as_bytes());
        bytes
    }

    pub fn sign(mut self, key: &SigningKey) -> Reply {
        self.signature = None;
        self.signature = Some(B64.encode(key.sign(&self.signing_bytes()).to_bytes()));
        self
    }

    /// True when signed by `key`.
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let Some(sig) = self.signature.as_deref() else {
            return false;
        };
        let Ok(bytes) = B64.decode(sig) else {
            return false;
        };
        let Ok(bytes) = <[u8; 64]>::try_from(bytes) else {
            return false;
        };
        key.verify(&self.signing_bytes(), &Signature::from_bytes(&bytes))
            .is_ok()
    }
}

/// A public key as written in `[uplink] station_keys` (base64 of 32 bytes).
pub use crate::signing::{parse_public_key, public_key_text};

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn ping(validity: Duration) -> SignedCommand {
        SignedCommand::new(
            "ping",
            serde_json::json!({}),
            "lotus",
            "gw1",
            "officer-7",
            validity,
        )
    }

    fn check(cmd: &SignedCommand, keys: &[VerifyingKey]) -> Result<Verified, Refusal> {
        verify(cmd, "ping", "lotus", "gw1", keys, Utc::now())
    }

    #[test]
    fn accepts_a_command_signed_by_a_configured_key() {
        let keys = [key(1).verifying_key(), key(2).verifying_key()];
        let cmd = ping(Duration::minutes(5)).sign(&key(2));
        let wire = serde_json::to_vec(&cmd).unwrap();
        let v = check(&parse(&wire).unwrap(), &keys).unwrap();
        assert_eq!((v.officer.as_str(), v.key_index), ("officer-7", 1));
    }

    #[test]
    fn refuses_unsigned_foreign_tampered_and_misaddressed_commands() {
        let keys = [key(1).verifying_key()];
        let code = |cmd: &SignedCommand| check(cmd, &keys).unwrap_err().code;
        assert_eq!(code(&ping(Duration::minutes(5))), RefusalCode::Unsigned);
        assert_eq!(
            code(&ping(Duration::minutes(5)).sign(&key(9))),
            RefusalCode::BadSignature
        );
        let mut tampered = ping(Duration::minutes(5)).sign(&key(1));
        tampered.officer = "someone-else".into();
        assert_eq!(code(&tampered), RefusalCode::BadSignature);
        let mut elsewhere = ping(Duration::minutes(5));
        elsewhere.gateway = "gw2".into();
        assert_eq!(code(&elsewhere.sign(&key(1))), RefusalCode::WrongTarget);
        let mut renamed = ping(Duration::minutes(5));
        renamed.command = "open_gate".into();
        assert_eq!(code(&renamed.sign(&key(1))), RefusalCode::WrongTarget);
    }

    #[test]
    fn refuses_commands_outside_their_validity_window() {
        let keys = [key(1).verifying_key()];
        let code = |cmd: SignedCommand| check(&cmd.sign(&key(1)), &keys).unwrap_err().code;
        let mut expired = ping(Duration::minutes(5));
        expired.issued_at = (Utc::now() - Duration::minutes(10)).to_rfc3339();
        expired.expires_at = (Utc::now() - Duration::minutes(5)).to_rfc3339();
        assert_eq!(code(expired), RefusalCode::Expired);
        let mut future = ping(Duration::minutes(5));
        future.issued_at = (Utc::now() + Duration::minutes(10)).to_rfc3339();
        future.expires_at = (Utc::now() + Duration::minutes(15)).to_rfc3339();
        assert_eq!(code(future), RefusalCode::FutureDated);
        assert_eq!(code(ping(Duration::days(2))), RefusalCode::LifetimeTooLong);
    }

    fn verified(command: &str, issued_at: DateTime<Utc>) -> Verified {
        Verified {
            command: command.into(),
            args: serde_json::json!({}),
            officer: "officer-7".into(),
            nonce: "0123456789abcdef".into(),
            issued_at,
            expires_at: issued_at + Duration::minutes(5),
            key_index: 0,
        }
    }

    #[test]
    fn state_changing_commands_need_a_judgeable_time_and_a_fresh_issued_at() {
        let t = Utc::now();
        let code = |r: Result<(), Refusal>| r.err().map(|r| r.code);
        for command in STATE_CHANGING {
            let v = verified(command, t);
            assert_eq!(code(check_freshness(&v, true, None, None)), None);
            assert_eq!(
                code(check_freshness(&v, false, None, None)),
                Some(RefusalCode::ClockUnsynchronised),
                "{command}"
            );
            // Unsynchronised, it is judged against the floor: issued after it
            // (or within the skew) passes; issued well before it is stale.
            assert_eq!(
                code(check_freshness(
                    &v,
                    false,
                    None,
                    Some(t - Duration::minutes(5))
                )),
                None,
                "{command}"
            );
            assert_eq!(
                code(check_freshness(
                    &v,
                    false,
                    None,
                    Some(t + Duration::seconds(30))
                )),
                None,
                "{command}"
            );
            assert_eq!(
                code(check_freshness(
                    &v,
                    false,
                    None,
                    Some(t + Duration::minutes(2))
                )),
                Some(RefusalCode::Stale),
                "{command}"
            );
            // Out of order within the skew is fine; older than that is stale.
            assert_eq!(
                code(check_freshness(
                    &v,
                    true,
                    Some(t + Duration::seconds(30)),
                    None
                )),
                None
            );
            assert_eq!(
                code(check_freshness(
                    &v,
                    true,
                    Some(t + Duration::minutes(2)),
                    None
                )),
                Some(RefusalCode::Stale),
                "{command}"
            );
        }
        // Reads are answered whatever the clock.
        for command in ["ping", "query_events", "get_resident"] {
            let v = verified(command, t);
            assert_eq!(
                code(check_freshness(
                    &v,
                    false,
                    Some(t + Duration::hours(2)),
                    None
                )),
                None
            );
        }
    }

    #[test]
    fn replies_go_only_under_the_station_reply_prefix() {
        assert!(check_reply_topic(Some("gatehouse-station/gatehouse-station-ab12/reply")).is_ok());
        for bad in [
            None,
            Some(""),
            Some("gatehouse-station/"),
            Some("gatehouse/v1/lotus/gw1/event/access"),
            Some("station/replies/abc"),
            Some("gatehouse-station/+/reply"),
            Some("gatehouse-station/#"),
            Some("x/gatehouse-station/reply"),
        ] {
            let r = check_reply_topic(bad).unwrap_err();
            assert_eq!(r.code, RefusalCode::BadReplyTopic, "{bad:?}");
        }
    }

    #[test]
    fn float_arguments_keep_their_signature_across_the_wire() {
        // Face embeddings: thousands of floats must re-serialise to the same
        // canonical text on the gateway (serde_json's float_roundtrip).
        let embedding: Vec<f32> = (0..512).map(|i| (i as f32 * 0.37).sin()).collect();
        let cmd = SignedCommand::new(
            "watchlist_set",
            serde_json::json!({"entries": [{"kind": "face", "value": "c-1", "embedding": embedding}]}),
            "lotus",
            "gw1",
            "officer-7",
            Duration::minutes(5),
        )
        .sign(&key(1));
        let back = parse(&serde_json::to_vec(&cmd).unwrap()).unwrap();
        let keys = [key(1).verifying_key()];
        assert!(verify(&back, "watchlist_set", "lotus", "gw1", &keys, Utc::now()).is_ok());
    }

    #[test]
    fn reports_malformed_payloads_precisely() {
        let err = parse(b"{\"command\": 1}").unwrap_err();
        assert_eq!(err.code, RefusalCode::Malformed);
        let mut short_nonce = ping(Duration::minutes(1));
        short_nonce.nonce = "abc".into();
        let err = parse(&serde_json::to_vec(&short_nonce).unwrap()).unwrap_err();
        assert!(err.message.contains("nonce"), "{err}");
    }

    #[test]
    fn replies_verify_only_with_the_gateway_key_and_unchanged() {
        let reply = Reply {
            ok: false,
            site: "lotus".into(),
            gateway: "gw1".into(),
            command: Some("ping".into()),
            nonce: None,
            at: "2026-01-01T00:00:00.000Z".into(),
            result: None,
            error: Some(Refusal::new(RefusalCode::Expired, "late")),
            signature: None,
        }
        .sign(&key(3));
        assert!(reply.verify(&key(3).verifying_key()));
        assert!(!reply.verify(&key(4).verifying_key()));
        let mut changed = reply.clone();
        changed.ok = true;
        assert!(!changed.verify(&key(3).verifying_key()));
    }

    #[test]
    fn public_keys_round_trip_and_bad_ones_are_explained() {
        let k = key(5).verifying_key();
        assert_eq!(parse_public_key(&public_key_text(&k)).unwrap(), k);
        assert!(parse_public_key("abc").unwrap_err().contains("base64"));
        assert!(parse_public_key("AAAA").unwrap_err().contains("32 bytes"));
    }
}
