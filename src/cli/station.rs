//! `gatehouse station …`: the police officer's side of the uplink — make a
//! signing key, query a gateway's events, watch a site live, open a gate
//! remotely, send any command, or print a signed command for other clients.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration as StdDuration;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration, Utc};
use clap::{Args, Subcommand};
use ed25519_dalek::VerifyingKey;
use serde_json::Value;

use super::{Cli, Exit};
use crate::station::{self, Connection, Endpoint, Signer};
use crate::store::events::{AccessResult, EventKind};
use crate::uplink::args::{OpenGateArgs, QueryEventsArgs};
use crate::uplink::command::{parse_public_key, public_key_text, Reply};
use crate::uplink::payload::{EventPayload, StatusPayload};
use crate::uplink::{topics, Broker, Topics};

#[derive(Subcommand, Debug)]
pub enum StationCommand {
    /// Create the station's Ed25519 signing key and print the line for gateways' [uplink] station_keys
    Keygen {
        /// Where to write the key (mode 0600; never overwritten)
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Print a signed command as JSON, for mosquitto_rr or another MQTT v5 client
    Sign {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        signer: SignerArgs,
        /// ping, query_events, get_resident, open_gate, watchlist_set, watchlist_clear, get_snapshot
        command: String,
        /// The command's arguments as a JSON object
        #[arg(long, default_value = "{}")]
        args: String,
    },
    /// Query a gateway's event log (pages through query_events)
    Query {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        signer: SignerArgs,
        /// Start: a duration back from now (24h, 30m, 7d) or an RFC 3339 time
        #[arg(long, default_value = "24h")]
        since: String,
        /// End (exclusive): a duration back from now or an RFC 3339 time
        #[arg(long)]
        until: Option<String>,
        /// Resident id (R42)
        #[arg(long)]
        resident: Option<String>,
        #[arg(long, value_parser = parse_result)]
        result: Option<AccessResult>,
        #[arg(long)]
        gate: Option<String>,
        /// access, alarm or device
        #[arg(long, value_parser = parse_kind)]
        kind: Option<EventKind>,
        /// card, pin, face, plate, remote, …
        #[arg(long)]
        credential: Option<String>,
        /// Stop after this many events
        #[arg(long, default_value_t = 1000)]
        max: usize,
        /// Print a JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Print events, alarms and status of a site (or one gateway) as they arrive
    Watch {
        #[command(flatten)]
        conn: ConnArgs,
        #[arg(long)]
        site: String,
        /// Only this gateway
        #[arg(long)]
        gateway: Option<String>,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
        /// Exit after this many messages
        #[arg(long)]
        count: Option<usize>,
    },
    /// Open a gate remotely (audited on the gateway with your officer id)
    Open {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        signer: SignerArgs,
        #[arg(long)]
        gate: String,
        /// Why (kept in the gateway's audit log)
        #[arg(long)]
        reason: String,
    },
    /// Send any command and print the gateway's reply
    Send {
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        signer: SignerArgs,
        command: String,
        /// The command's arguments as a JSON object
        #[arg(long, default_value = "{}")]
        args: String,
    },
}

/// The gateway a command is for.
#[derive(Args, Debug)]
pub struct Target {
    #[arg(long)]
    site: String,
    #[arg(long)]
    gateway: String,
}

#[derive(Args, Debug)]
pub struct SignerArgs {
    /// The station's signing key (from `station keygen`)
    #[arg(long, env = "GATEHOUSE_STATION_KEY", value_name = "FILE")]
    key: PathBuf,
    /// Your officer id, recorded in the gateway's audit log
    #[arg(long, env = "GATEHOUSE_OFFICER")]
    officer: String,
    /// How long the command stays valid (at most 1h)
    #[arg(long, default_value = "5m")]
    valid: String,
}

#[derive(Args, Debug)]
pub struct ConnArgs {
    /// The station's broker (mqtt://host:1883 or mqtts://host:8883)
    #[arg(long, env = "GATEHOUSE_STATION_BROKER", value_name = "URL")]
    broker: String,
    /// CA certificate (PEM) for mqtts://
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Client certificate and key (PEM)
    #[arg(long, value_name = "FILE", requires = "client_key")]
    cert: Option<PathBuf>,
    #[arg(long, value_name = "FILE", requires = "cert")]
    client_key: Option<PathBuf>,
    #[arg(long)]
    username: Option<String>,
    #[arg(long, value_name = "FILE", requires = "username")]
    password_file: Option<PathBuf>,
    /// The gateway's reply key (`gatehouse uplink status` on the gateway); replies not signed by it are rejected
    #[arg(long, value_name = "BASE64")]
    gateway_key: Option<String>,
    /// Seconds to wait for the broker and each reply
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

pub fn run(_cli: &Cli, cmd: &StationCommand) -> Result<ExitCode> {
    match cmd {
        StationCommand::Keygen { out } => {
            let public = station::generate_key_file(out)?;
            eprintln!("wrote {}; keep it secret (mode 0600)", out.display());
            println!("station_keys = [\"{}\"]", public_key_text(&public));
            Ok(ExitCode::SUCCESS)
        }
        StationCommand::Sign {
            target,
            signer,
            command,
            args,
        } => {
            let topics = target.topics()?;
            let cmd = signer.load()?.sign(&topics, command, parse_args(args)?);
            println!("{}", serde_json::to_string(&cmd)?);
            eprintln!("topic: {}", topics.cmd(command));
            Ok(ExitCode::SUCCESS)
        }
        StationCommand::Query {
            conn,
            target,
            signer,
            since,
            until,
            resident,
            result,
            gate,
            kind,
            credential,
            max,
            json,
        } => {
            let now = Utc::now();
            let args = QueryEventsArgs {
                since: Some(parse_instant(since, now).context("--since")?),
                until: until
                    .as_deref()
                    .map(|u| parse_instant(u, now))
                    .transpose()
                    .context("--until")?,
                gate: gate.clone(),
                resident: resident.clone(),
                result: *result,
                kind: *kind,
                credential_kind: credential.clone(),
                after_seq: None,
                limit: None,
            };
            let topics = target.topics()?;
            let signer = signer.load()?;
            let events = block_on(async {
                let (mut c, key) = conn.open().await?;
                let events = station::query_all(
                    &mut c,
                    &topics,
                    &signer,
                    key.as_ref(),
                    args,
                    *max,
                    conn.timeout(),
                )
                .await;
                c.close().await;
                events
            })?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&events)?);
            } else {
                print_table(&events);
            }
            Ok(ExitCode::SUCCESS)
        }
        StationCommand::Watch {
            conn,
            site,
            gateway,
            json,
            count,
        } => {
            crate::domain::validate_slug(site)
                .map_err(anyhow::Error::msg)
                .context("--site")?;
            block_on(async {
                let (mut c, _) = conn.open().await?;
                c.subscribe(
                    &topics::event_filter(site, gateway.as_deref()),
                    conn.timeout(),
                )
                .await?;
                c.subscribe(
                    &topics::status_filter(site, gateway.as_deref()),
                    conn.timeout(),
                )
                .await?;
                eprintln!("watching {site}; Ctrl-C to stop");
                let mut seen = 0usize;
                while count.is_none_or(|n| seen < n) {
                    let m = tokio::select! {
                        m = c.next_message() => m?,
                        _ = tokio::signal::ctrl_c() => break,
                    };
                    print_watched(&m.topic, &m.payload, *json);
                    seen += 1;
                }
                c.close().await;
                Ok::<_, anyhow::Error>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        StationCommand::Open {
            conn,
            target,
            signer,
            gate,
            reason,
        } => {
            let args = serde_json::to_value(OpenGateArgs {
                gate: gate.clone(),
                reason: reason.clone(),
            })?;
            send(conn, target, signer, "open_gate", args)
        }
        StationCommand::Send {
            conn,
            target,
            signer,
            command,
            args,
        } => send(conn, target, signer, command, parse_args(args)?),
    }
}

fn send(
    conn: &ConnArgs,
    target: &Target,
    signer: &SignerArgs,
    command: &str,
    args: Value,
) -> Result<ExitCode> {
    let topics = target.topics()?;
    let signer = signer.load()?;
    let reply = block_on(async {
        let (mut c, key) = conn.open().await?;
        let reply = station::call(
            &mut c,
            &topics,
            &signer,
            key.as_ref(),
            command,
            args,
            conn.timeout(),
        )
        .await;
        c.close().await;
        reply
    })?;
    print_reply(&reply)
}

fn print_reply(reply: &Reply) -> Result<ExitCode> {
    println!("{}", serde_json::to_string_pretty(reply)?);
    if reply.ok {
        Ok(ExitCode::SUCCESS)
    } else {
        let e = reply
            .error
            .as_ref()
            .map(|e| e.to_string())
            .unwrap_or_default();
        Err(Exit {
            code: 1,
            message: format!("the gateway refused the command: {e}"),
        }
        .into())
    }
}

impl Target {
    fn topics(&self) -> Result<Topics> {
        Topics::new(&self.site, &self.gateway)
    }
}

impl SignerArgs {
    fn load(&self) -> Result<Signer> {
        let validity = parse_duration(&self.valid).context("--valid")?;
        if validity > crate::uplink::command::MAX_LIFETIME {
            bail!("--valid: at most 1h (gateways refuse longer-lived commands)");
        }
        Ok(Signer {
            key: station::load_signing_key(&self.key)?,
            officer: self.officer.clone(),
            validity,
        })
    }
}

impl ConnArgs {
    fn timeout(&self) -> StdDuration {
        StdDuration::from_secs(self.timeout.max(1))
    }

    async fn open(&self) -> Result<(Connection, Option<VerifyingKey>)> {
        let broker: Broker = self
            .broker
            .parse()
            .map_err(anyhow::Error::msg)
            .context("--broker")?;
        let read = |p: &Path, flag: &str| {
            std::fs::read(p).with_context(|| format!("{flag}: cannot read {}", p.display()))
        };
        let endpoint = Endpoint {
            broker,
            ca_pem: self.ca.as_deref().map(|p| read(p, "--ca")).transpose()?,
            client_auth: match (&self.cert, &self.client_key) {
                (Some(c), Some(k)) => Some((read(c, "--cert")?, read(k, "--client-key")?)),
                _ => None,
            },
            credentials: match (&self.username, &self.password_file) {
                (Some(u), Some(p)) => Some((
                    u.clone(),
                    String::from_utf8_lossy(&read(p, "--password-file")?)
                        .trim_end()
                        .to_string(),
                )),
                (Some(u), None) => Some((u.clone(), String::new())),
                _ => None,
            },
        };
        let key = self
            .gateway_key
            .as_deref()
            .map(parse_public_key)
            .transpose()
            .map_err(anyhow::Error::msg)
            .context("--gateway-key")?;
        Ok((Connection::open(&endpoint, self.timeout()).await?, key))
    }
}

fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(f)
}

fn parse_args(text: &str) -> Result<Value> {
    let v: Value = serde_json::from_str(text).context("--args: not JSON")?;
    if !v.is_object() {
        bail!("--args: expected a JSON object such as {{\"gate\": \"east\"}}");
    }
    Ok(v)
}

fn parse_result(s: &str) -> Result<AccessResult, String> {
    serde_json::from_value(Value::String(s.into()))
        .map_err(|_| format!("expected granted or denied, got {s:?}"))
}

fn parse_kind(s: &str) -> Result<EventKind, String> {
    serde_json::from_value(Value::String(s.into()))
        .map_err(|_| format!("expected access, alarm or device, got {s:?}"))
}

/// `30s`, `15m`, `24h`, `7d`, `1h30m` (the grammar of [`crate::units`]).
pub fn parse_duration(s: &str) -> Result<Duration> {
    let d = crate::units::parse_duration(s).map_err(anyhow::Error::msg)?;
    Duration::from_std(d).with_context(|| format!("{s:?} is too long"))
}

/// A duration back from `now`, or an RFC 3339 instant.
pub fn parse_instant(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    Ok(now - parse_duration(s).with_context(|| format!("or an RFC 3339 time; got {s:?}"))?)
}

fn print_table(events: &[EventPayload]) {
    println!(
        "{:>7}  {:<24}  {:<8}  {:<3}  {:<18}  {:<12}  {:<7}  REASON",
        "SEQ", "TIME (UTC)", "GATE", "DIR", "CREDENTIAL", "SUBJECT", "RESULT"
    );
    for e in events {
        let credential = match (&e.credential_kind, &e.credential_masked) {
            (Some(k), Some(m)) => format!("{k} {m}"),
            (Some(k), None) => k.clone(),
            _ => "-".into(),
        };
        let subject = match (&e.subject_id, &e.subject_name) {
            (Some(id), Some(n)) => format!("{id} {n}"),
            (Some(id), None) => id.clone(),
            _ => "-".into(),
        };
        let result = match e.result {
            Some(AccessResult::Granted) => "granted",
            Some(AccessResult::Denied) => "denied",
            None => e.kind.as_str(),
        };
        println!(
            "{:>7}  {:<24}  {:<8}  {:<3}  {:<18}  {:<12}  {:<7}  {}{}",
            e.seq,
            e.at,
            e.gate.as_deref().unwrap_or("-"),
            e.direction.as_deref().unwrap_or("-"),
            credential,
            subject,
            result,
            e.reason.as_deref().unwrap_or(""),
            if e.clock_synced {
                ""
            } else {
                " (clock not synced)"
            }
        );
    }
    eprintln!("{} event(s)", events.len());
}

fn print_watched(topic: &str, payload: &[u8], json: bool) {
    let parsed: Option<Value> = serde_json::from_slice(payload).ok();
    if json {
        println!("{}", serde_json::json!({"topic": topic, "payload": parsed}));
        return;
    }
    if topic.ends_with("/status") {
        match serde_json::from_slice::<StatusPayload>(payload) {
            Ok(s) => {
                let extra = s
                    .heartbeat
                    .map(|h| {
                        format!(
                            " outbox={} uptime={}s clock_synced={}",
                            h.outbox_depth, h.uptime_s, h.clock_synced
                        )
                    })
                    .unwrap_or_default();
                println!("STATUS {}/{} {:?}{extra}", s.site, s.gateway, s.state);
            }
            Err(_) => println!("STATUS {topic} (unreadable payload)"),
        }
        return;
    }
    match serde_json::from_slice::<EventPayload>(payload) {
        Ok(e) => println!(
            "{} {}/{} #{} {} gate={} {} {} {} {}",
            e.at,
            e.site,
            e.gateway,
            e.seq,
            e.kind.as_str(),
            e.gate.as_deref().unwrap_or("-"),
            e.credential_kind.as_deref().unwrap_or("-"),
            e.subject_id.as_deref().unwrap_or("-"),
            e.result.map(|r| r.as_str()).unwrap_or("-"),
            e.reason.as_deref().unwrap_or("")
        ),
        Err(_) => println!("{topic} ({} bytes)", payload.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations_and_instants() {
        assert_eq!(parse_duration("24h").unwrap(), Duration::hours(24));
        assert_eq!(parse_duration("5m").unwrap(), Duration::minutes(5));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::minutes(90));
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("h").is_err());
        let now = Utc::now();
        assert_eq!(parse_instant("7d", now).unwrap(), now - Duration::days(7));
        assert_eq!(
            parse_instant("2026-05-01T08:00:00+08:00", now)
                .unwrap()
                .to_rfc3339(),
            "2026-05-01T00:00:00+00:00"
        );
    }
}
