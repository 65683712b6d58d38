//! Signed station commands through a real mosquitto: refusals (unsigned,
//! wrongly signed, expired, future-dated, replayed) are answered with signed
//! errors and audited; accepted commands do their work; the officer's CLI and
//! `mosquitto_rr` get answers.

use crate::common;
use crate::uplink_support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{Duration as Span, SecondsFormat, Utc};
use ed25519_dalek::SigningKey;
use gatehouse::station::{self, Connection, Endpoint, Signer};
use gatehouse::store::station_queries::{self, WatchKind};
use gatehouse::store::Store;
use gatehouse::uplink::args::QueryEventsArgs;
use gatehouse::uplink::command::{public_key_text, RefusalCode, Reply, SignedCommand};
use gatehouse::uplink::{self, GatewayActions, RemoteOpen, Topics};
use serde_json::{json, Value};
use uplink_support::*;

/// Stands in for the door module: records remote opens of the east gate.
/// Its clock is the system's moved by `shift`, synchronised unless `unsynced`
/// (the injected clock the uplink judges commands by).
#[derive(Default)]
struct RecordingGates {
    opened: Mutex<Vec<RemoteOpen>>,
    shift: Mutex<Span>,
    unsynced: std::sync::atomic::AtomicBool,
}

impl RecordingGates {
    fn move_clock(&self, to: Span) {
        *self.shift.lock().unwrap() = to;
    }

    fn opens(&self) -> usize {
        self.opened.lock().unwrap().len()
    }
}

impl GatewayActions for RecordingGates {
    async fn open_gate(&self, order: RemoteOpen) -> anyhow::Result<Value> {
        if order.gate.as_str() != "east" {
            anyhow::bail!("no gate {} on this gateway", order.gate);
        }
        self.opened.lock().unwrap().push(order.clone());
        Ok(json!({"opened": order.gate.as_str(), "unlock_ms": 3000}))
    }

    fn clock_synced(&self) -> bool {
        !self.unsynced.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn now(&self) -> chrono::DateTime<Utc> {
        Utc::now() + *self.shift.lock().unwrap()
    }
}

struct Fixture {
    broker: common::Mosquitto,
    gw: Gateway,
    store: Store,
    key_path: std::path::PathBuf,
    signer: Signer,
    topics: Topics,
    reply_key: ed25519_dalek::VerifyingKey,
}

fn fixture(tag: &str) -> Fixture {
    let broker = common::Mosquitto::start();
    let keys = common::Scratch::new("station-key");
    let key_path = keys.path().join("station.key");
    let public = station::generate_key_file(&key_path).unwrap();
    let gw = Gateway::new(
        tag,
        &format!("station_keys = [\"{}\"]", public_key_text(&public)),
    );
    // Keep the key beside the gateway so it lives as long as the fixture.
    let kept = gw.dir.path().join("station.key");
    std::fs::copy(&key_path, &kept).unwrap();
    let store = gw.store();
    let reply_key = uplink::reply_public_key(store.secret());
    Fixture {
        broker,
        signer: Signer {
            key: station::load_signing_key(&kept).unwrap(),
            officer: "officer-7".into(),
            validity: Span::minutes(5),
        },
        key_path: kept,
        gw,
        store,
        topics: Topics::new(SITE, GATEWAY).unwrap(),
        reply_key,
    }
}

async fn connect(f: &Fixture) -> Connection {
    let endpoint = Endpoint {
        broker: f.broker.url().parse().unwrap(),
        ca_pem: None,
        client_auth: None,
        credentials: None,
    };
    Connection::open(&endpoint, Duration::from_secs(10))
        .await
        .unwrap()
}

/// Waits for the gateway's online status: it subscribes to commands before
/// publishing it, so from then on no command is lost.
fn wait_online(f: &Fixture) {
    let status = Collector::start(f.broker.port, "gatehouse/v1/lotus/gw1/status", None);
    tokio::task::block_in_place(|| {
        status.wait_until(Duration::from_secs(10), "the gateway online", |m| {
            m.iter().any(|m| m.json()["state"] == "online")
        })
    });
    status.stop();
}

async fn send(conn: &mut Connection, f: &Fixture, cmd: &SignedCommand) -> Reply {
    let reply = conn
        .request(
            &f.topics.cmd(&cmd.command),
            serde_json::to_vec(cmd).unwrap(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    check_reply(f, &reply);
    reply
}

/// Every reply, refusals included, is signed by the gateway and matches the schema.
fn check_reply(f: &Fixture, reply: &Reply) {
    assert!(
        reply.verify(&f.reply_key),
        "reply not signed by the gateway: {reply:?}"
    );
    assert_valid(
        &schema("reply.schema.json"),
        "reply",
        &serde_json::to_value(reply).unwrap(),
    );
}

fn code(reply: &Reply) -> RefusalCode {
    assert!(!reply.ok, "expected a refusal: {reply:?}");
    reply.error.as_ref().unwrap().code
}

fn audit_rows(store: &Store) -> Vec<(String, String, Option<String>, Value)> {
    let mut stmt = store
        .conn()
        .prepare("SELECT actor, action, subject, detail FROM audit ORDER BY id")
        .unwrap();
    stmt.query_map([], |r| {
        let detail: Option<String> = r.get(3)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            detail
                .map(|d| serde_json::from_str(&d).unwrap())
                .unwrap_or(Value::Null),
        ))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn ping() -> SignedCommand {
    SignedCommand::new(
        "ping",
        json!({}),
        SITE,
        GATEWAY,
        "officer-7",
        Span::minutes(5),
    )
}

fn at(offset: Span) -> String {
    (Utc::now() + offset).to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_unsigned_forged_expired_future_and_replayed_commands_and_audits_each() {
    let f = fixture("cmd-refuse");
    let task = UplinkTask::start(
        f.gw.settings(Some(&f.broker.url())),
        Arc::new(RecordingGates::default()),
    );
    wait_online(&f);
    let mut conn = connect(&f).await;

    let malformed = conn
        .request(
            &f.topics.cmd("ping"),
            b"not json".to_vec(),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    check_reply(&f, &malformed);
    assert_eq!(code(&malformed), RefusalCode::Malformed);

    assert_eq!(
        code(&send(&mut conn, &f, &ping()).await),
        RefusalCode::Unsigned
    );
    let forged = ping().sign(&SigningKey::from_bytes(&[7; 32]));
    assert_eq!(
        code(&send(&mut conn, &f, &forged).await),
        RefusalCode::BadSignature
    );
    let mut expired = ping();
    (expired.issued_at, expired.expires_at) = (at(-Span::minutes(10)), at(-Span::minutes(5)));
    assert_eq!(
        code(&send(&mut conn, &f, &expired.sign(&f.signer.key)).await),
        RefusalCode::Expired
    );
    let mut future = ping();
    (future.issued_at, future.expires_at) = (at(Span::minutes(10)), at(Span::minutes(15)));
    assert_eq!(
        code(&send(&mut conn, &f, &future.sign(&f.signer.key)).await),
        RefusalCode::FutureDated
    );

    let good = ping().sign(&f.signer.key);
    let reply = send(&mut conn, &f, &good).await;
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.result.as_ref().unwrap()["pong"], true);
    assert_eq!(reply.nonce.as_deref(), Some(good.nonce.as_str()));
    assert_eq!(
        code(&send(&mut conn, &f, &good).await),
        RefusalCode::Replayed
    );

    // The nonce is persisted: a restarted uplink still refuses the replay.
    task.stop().await;
    let task = UplinkTask::start(
        f.gw.settings(Some(&f.broker.url())),
        Arc::new(RecordingGates::default()),
    );
    let mut conn = connect(&f).await;
    let mut replay = None;
    for _ in 0..50 {
        // The new uplink may not have subscribed yet; retry until it answers.
        match conn
            .request(
                &f.topics.cmd("ping"),
                serde_json::to_vec(&good).unwrap(),
                Duration::from_millis(500),
            )
            .await
        {
            Ok(r) => {
                replay = Some(r);
                break;
            }
            Err(_) => continue,
        }
    }
    let replay = replay.expect("the restarted uplink answers");
    check_reply(&f, &replay);
    assert_eq!(code(&replay), RefusalCode::Replayed);
    task.stop().await;

    let rows = audit_rows(&f.store);
    let summary: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|(actor, action, _, d)| {
            (
                actor.as_str(),
                action.as_str(),
                d["code"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "station-unverified:unknown",
                "uplink.command.refused",
                "malformed"
            ),
            (
                "station-unverified:officer-7",
                "uplink.command.refused",
                "unsigned"
            ),
            (
                "station-unverified:officer-7",
                "uplink.command.refused",
                "bad_signature"
            ),
            ("station:officer-7", "uplink.command.refused", "expired"),
            (
                "station:officer-7",
                "uplink.command.refused",
                "future_dated"
            ),
            ("station:officer-7", "uplink.command.accepted", "-"),
            ("station:officer-7", "uplink.command.refused", "replayed"),
            ("station:officer-7", "uplink.command.refused", "replayed"),
        ]
    );
    for (_, _, subject, detail) in &rows[1..] {
        assert_eq!(subject.as_deref(), Some("ping"));
        assert_eq!(detail["officer"], "officer-7");
    }
}

fn enrol(store: &Store) {
    let conn = store.conn();
    let now = gatehouse::store::now_rfc3339();
    conn.execute(
        "INSERT INTO address (building, unit, room) VALUES ('3', '2', '1501')",
        [],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO household (address_id, kind, created_at, created_by) VALUES (1, 'rented', ?1, 'test')",
        [&now],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO person (id, name, id_masked, phone, role, household_id, valid_until, created_at, created_by, updated_at, updated_by)
         VALUES (1, '张三丰', '5101**********1234', '13800000000', 'tenant', 1, '2027-06-30', ?1, 'test', ?1, 'test')",
        [&now],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO card (card_key, format, person_id, created_at, created_by) VALUES ('10:12345', 'wiegand26', 1, ?1, 'test')",
        [&now],
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_queries_lookups_remote_opens_and_watchlist_changes() {
    let f = fixture("cmd-accept");
    enrol(&f.store);
    bulk_swipes(&f.store, 450);
    let gates = Arc::new(RecordingGates::default());
    let task = UplinkTask::start(f.gw.settings(Some(&f.broker.url())), gates.clone());
    wait_online(&f);
    let mut conn = connect(&f).await;
    let call = |command: &str, args: Value| f.signer.sign(&f.topics, command, args);

    // One page is capped; the cursor leads to the rest.
    let first = send(&mut conn, &f, &call("query_events", json!({}))).await;
    let page = first.result.unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 200);
    assert_eq!(page["next_after_seq"], 200);
    let all = station::query_all(
        &mut conn,
        &f.topics,
        &f.signer,
        Some(&f.reply_key),
        QueryEventsArgs::default(),
        10_000,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=450).collect::<Vec<_>>()
    );
    let event_schema = schema("event.schema.json");
    for e in &all {
        assert_valid(
            &event_schema,
            "queried event",
            &serde_json::to_value(e).unwrap(),
        );
    }
    let denied = station::query_all(
        &mut conn,
        &f.topics,
        &f.signer,
        Some(&f.reply_key),
        QueryEventsArgs {
            result: Some(gatehouse::store::events::AccessResult::Denied),
            ..Default::default()
        },
        10_000,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(denied.len(), 150);
    let r1 = station::query_all(
        &mut conn,
        &f.topics,
        &f.signer,
        None,
        QueryEventsArgs {
            resident: Some("R1".into()),
            since: Some(Utc::now() - Span::hours(1)),
            ..Default::default()
        },
        10_000,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let expected_r1 = (0..450).filter(|i| i % 3 != 0 && i % 5 == 0).count();
    assert_eq!(r1.len(), expected_r1);
    assert!(r1.iter().all(|e| e.subject_id.as_deref() == Some("R1")));
    let typo = send(
        &mut conn,
        &f,
        &call("query_events", json!({"resident_id": "R1"})),
    )
    .await;
    assert_eq!(code(&typo), RefusalCode::BadArguments);

    // A resident by card: minimum fields, masked name, and the read is audited.
    let found = send(
        &mut conn,
        &f,
        &call("get_resident", json!({"card": "10:12345"})),
    )
    .await;
    let resident = &found.result.as_ref().unwrap()["resident"];
    assert_eq!(resident["resident_id"], "R1");
    assert_eq!(resident["name_masked"], "张**");
    assert_eq!(resident["address"], "3-2-1501");
    let text = serde_json::to_string(&found).unwrap();
    assert!(!text.contains("138000") && !text.contains("5101") && !text.contains("三丰"));
    let ambiguous = send(
        &mut conn,
        &f,
        &call(
            "get_resident",
            json!({"card": "10:12345", "plate": "川A12345"}),
        ),
    )
    .await;
    assert_eq!(code(&ambiguous), RefusalCode::BadArguments);

    // Remote open reaches the door side with the officer and reason.
    let open = call(
        "open_gate",
        json!({"gate": "east", "reason": "ambulance for 3-2-1501"}),
    );
    let opened = send(&mut conn, &f, &open).await;
    assert!(opened.ok, "{opened:?}");
    assert_eq!(opened.result.unwrap()["opened"], "east");
    let orders = gates.opened.lock().unwrap().clone();
    assert_eq!(orders.len(), 1);
    assert_eq!(
        (orders[0].officer.as_str(), orders[0].reason.as_str()),
        ("officer-7", "ambulance for 3-2-1501")
    );
    assert_eq!(orders[0].nonce, open.nonce);
    let west = send(
        &mut conn,
        &f,
        &call("open_gate", json!({"gate": "west", "reason": "test"})),
    )
    .await;
    assert_eq!(code(&west), RefusalCode::Failed);

    // Watchlist: pushed, normalised, persisted, cleared.
    let embedding: Vec<f32> = (0..128).map(|i| (i as f32).sin()).collect();
    let set = send(
        &mut conn,
        &f,
        &call(
            "watchlist_set",
            json!({"entries": [
                {"kind": "plate", "value": "川a 12345", "action": "deny", "label": "case 2026-117"},
                {"kind": "face", "value": "case-117-a", "embedding": embedding}
            ]}),
        ),
    )
    .await;
    assert!(set.ok, "{set:?}");
    assert_eq!(set.result.unwrap()["stored"], 2);
    let list = station_queries::watchlist(f.store.conn()).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].value, "川A12345");
    let cleared = send(
        &mut conn,
        &f,
        &call("watchlist_clear", json!({"kind": "plate"})),
    )
    .await;
    assert_eq!(cleared.result.unwrap()["removed"], 1);
    let list = station_queries::watchlist(f.store.conn()).unwrap();
    assert_eq!((list.len(), list[0].kind), (1, WatchKind::Face));
    task.stop().await;

    let rows = audit_rows(&f.store);
    let read = rows
        .iter()
        .find(|r| r.1 == "uplink.resident.read")
        .expect("resident read audited");
    assert_eq!(
        (read.0.as_str(), read.2.as_deref()),
        ("station:officer-7", Some("R1"))
    );
    assert!(rows
        .iter()
        .any(|r| r.1 == "uplink.command.failed" && r.2.as_deref() == Some("open_gate")));
    let pushed = rows
        .iter()
        .find(|r| r.1 == "uplink.command.accepted" && r.2.as_deref() == Some("watchlist_set"))
        .unwrap();
    assert_eq!(
        pushed.3["args"]["entries"][1]["embedding"], "<128 numbers>",
        "no biometrics in the audit log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_rr_with_a_station_sign_payload_gets_a_signed_answer() {
    let f = fixture("cmd-rr");
    let task = UplinkTask::start(
        f.gw.settings(Some(&f.broker.url())),
        Arc::new(RecordingGates::default()),
    );
    wait_online(&f);

    let signed = tokio::task::block_in_place(|| {
        common::gatehouse()
            .args([
                "station",
                "sign",
                "--officer",
                "officer-7",
                "--site",
                SITE,
                "--gateway",
                GATEWAY,
                "ping",
            ])
            .arg("--key")
            .arg(&f.key_path)
            .output()
            .unwrap()
    });
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
    let payload = String::from_utf8(signed.stdout).unwrap().trim().to_string();
    assert_valid(
        &schema("command.schema.json"),
        "signed command",
        &serde_json::from_str(&payload).unwrap(),
    );

    let rr = tokio::task::block_in_place(|| {
        Command::new("mosquitto_rr")
            .args(["-V", "5", "-h", "127.0.0.1", "-q", "1", "-W", "10"])
            .args(["-p", &f.broker.port.to_string()])
            .args([
                "-t",
                &f.topics.cmd("ping"),
                "-e",
                "gatehouse-station/rr/reply",
                "-m",
                &payload,
            ])
            .output()
            .expect("mosquitto_rr (apt install mosquitto-clients)")
    });
    assert!(
        rr.status.success(),
        "mosquitto_rr: {}",
        String::from_utf8_lossy(&rr.stderr)
    );
    let reply: Reply = serde_json::from_slice(rr.stdout.trim_ascii()).expect("a JSON reply");
    check_reply(&f, &reply);
    assert!(reply.ok, "{reply:?}");
    assert_eq!(reply.result.unwrap()["pong"], true);
    task.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn officer_cli_watches_queries_and_opens() {
    let f = fixture("cmd-cli");
    enrol(&f.store);
    let gates = Arc::new(RecordingGates::default());
    let task = UplinkTask::start(f.gw.settings(Some(&f.broker.url())), gates.clone());
    wait_online(&f);
    let url = f.broker.url();
    let station = |args: &[&str]| {
        let mut cmd = common::gatehouse();
        cmd.arg("station")
            .args(args)
            .args(["--broker", &url, "--officer", "officer-7"]);
        cmd.arg("--key").arg(&f.key_path);
        cmd
    };
    let target = ["--site", SITE, "--gateway", GATEWAY];

    // watch: the retained status, then three swipes as they happen.
    let mut watch = common::gatehouse()
        .args([
            "station", "watch", "--broker", &url, "--site", SITE, "--json", "--count", "4",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(watch.stderr.take().unwrap());
    let mut line = String::new();
    tokio::task::block_in_place(|| stderr.read_line(&mut line).unwrap());
    assert!(line.contains("watching lotus"), "{line}");
    for i in 1..=3 {
        swipe(f.store.conn(), i);
        task.wake();
    }
    let watched = tokio::task::block_in_place(|| watch.wait_with_output().unwrap());
    assert!(watched.status.success());
    let lines: Vec<Value> = String::from_utf8(watched.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["topic"].as_str().unwrap().contains("/event/access"))
            .count(),
        3
    );

    let gateway_key = public_key_text(&f.reply_key);
    let json_out = tokio::task::block_in_place(|| {
        station(&[
            "query",
            "--since",
            "1h",
            "--json",
            "--gateway-key",
            &gateway_key,
        ])
        .args(target)
        .output()
        .unwrap()
    });
    assert!(
        json_out.status.success(),
        "{}",
        String::from_utf8_lossy(&json_out.stderr)
    );
    let events: Vec<Value> = serde_json::from_slice(&json_out.stdout).unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );

    let table = tokio::task::block_in_place(|| {
        station(&["query", "--since", "1h", "--result", "denied"])
            .args(target)
            .output()
            .unwrap()
    });
    let text = String::from_utf8(table.stdout).unwrap();
    assert!(text.starts_with("    SEQ"), "{text}");
    assert_eq!(
        text.lines().count(),
        2,
        "header and the one denied swipe (i = 3):\n{text}"
    );
    assert!(text.lines().nth(1).unwrap().contains("denied"));

    let wrong_key = public_key_text(&SigningKey::from_bytes(&[9; 32]).verifying_key());
    let spoofed = tokio::task::block_in_place(|| {
        station(&["query", "--gateway-key", &wrong_key])
            .args(target)
            .output()
            .unwrap()
    });
    assert_eq!(
        spoofed.status.code(),
        Some(1),
        "replies not signed by the expected gateway are rejected"
    );

    let open = tokio::task::block_in_place(|| {
        station(&["open", "--gate", "east", "--reason", "fire drill"])
            .args(target)
            .output()
            .unwrap()
    });
    assert!(
        open.status.success(),
        "{}",
        String::from_utf8_lossy(&open.stderr)
    );
    assert_eq!(gates.opened.lock().unwrap()[0].reason, "fire drill");
    let refused = tokio::task::block_in_place(|| {
        station(&["open", "--gate", "west", "--reason", "x"])
            .args(target)
            .output()
            .unwrap()
    });
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("refused"));

    let resident = tokio::task::block_in_place(|| {
        station(&["send", "get_resident", "--args", r#"{"resident": "R1"}"#])
            .args(target)
            .output()
            .unwrap()
    });
    assert!(resident.status.success());
    assert!(String::from_utf8_lossy(&resident.stdout).contains("张**"));
    task.stop().await;
}

/// Sends `cmd` through a fresh connection after a restart, retrying until
/// the new uplink has subscribed.
async fn send_after_restart(f: &Fixture, cmd: &SignedCommand) -> Reply {
    let mut conn = connect(f).await;
    for _ in 0..50 {
        if let Ok(r) = conn
            .request(
                &f.topics.cmd(&cmd.command),
                serde_json::to_vec(cmd).unwrap(),
                Duration::from_millis(500),
            )
            .await
        {
            check_reply(f, &r);
            return r;
        }
    }
    panic!("the restarted uplink does not answer");
}

/// Issue 14: nonces were pruned an hour after their command expired by the
/// gateway's clock, so after the clock moved forward (and a command was
/// handled there) and back, the same signed `open_gate` opened twice. The
/// trusted floor keeps "now" from going back, nonces stay until their expiry
/// is behind the floor, and both survive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_captured_open_gate_cannot_open_twice_when_the_clock_moves_forward_and_back() {
    let f = fixture("cmd-clock");
    let gates = Arc::new(RecordingGates::default());
    let task = UplinkTask::start(f.gw.settings(Some(&f.broker.url())), gates.clone());
    wait_online(&f);
    let mut conn = connect(&f).await;
    let open = f.signer.sign(
        &f.topics,
        "open_gate",
        json!({"gate": "east", "reason": "ambulance"}),
    );
    assert!(send(&mut conn, &f, &open).await.ok);
    assert_eq!(gates.opens(), 1);

    // The clock jumps three hours ahead (a bad NTP answer, or a hand) and
    // the station, whose clock agrees, pings: the old nonces were pruned here.
    let ahead = Span::hours(3);
    gates.move_clock(ahead);
    let mut later = ping();
    (later.issued_at, later.expires_at) = (at(ahead), at(ahead + Span::minutes(5)));
    assert!(send(&mut conn, &f, &later.sign(&f.signer.key)).await.ok);

    // Back to the true time: the captured command is replayed.
    gates.move_clock(Span::zero());
    let replay = send(&mut conn, &f, &open).await;
    assert!(!replay.ok, "{replay:?}");
    assert_eq!(gates.opens(), 1, "the same signed nonce opened twice");
    assert_eq!(code(&replay), RefusalCode::Expired);

    // Across a restart, the floor and the key's mark are still there.
    task.stop().await;
    let task = UplinkTask::start(f.gw.settings(Some(&f.broker.url())), gates.clone());
    let replay = send_after_restart(&f, &open).await;
    assert!(!replay.ok, "{replay:?}");
    assert_eq!(gates.opens(), 1);
    // A command issued before the newest one accepted from this key is stale
    // even when its own window looks open to the clock.
    let mut old = f.signer.sign(
        &f.topics,
        "open_gate",
        json!({"gate": "east", "reason": "again"}),
    );
    (old.issued_at, old.expires_at) = (at(ahead - Span::minutes(10)), at(ahead + Span::minutes(5)));
    gates.move_clock(ahead);
    let stale = send_after_restart(&f, &old.sign(&f.signer.key)).await;
    assert_eq!(code(&stale), RefusalCode::Stale);
    assert_eq!(gates.opens(), 1);
    task.stop().await;
    let refused: Vec<String> = audit_rows(&f.store)
        .into_iter()
        .filter(|r| r.1 == "uplink.command.refused")
        .map(|r| r.3["code"].as_str().unwrap_or("-").to_string())
        .collect();
    assert_eq!(refused, ["expired", "expired", "stale"]);
}

/// With the clock unsynchronised and no trusted time floor, a command's
/// expiry cannot be judged: state-changing commands are refused (and audited),
/// reads are answered. A signed read gives the gateway the station's time as
/// its floor; from then on a fresh command is judged against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_changing_commands_wait_for_a_trusted_time() {
    let f = fixture("cmd-unsynced");
    let gates = Arc::new(RecordingGates::default());
    gates
        .unsynced
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let task = UplinkTask::start(f.gw.settings(Some(&f.broker.url())), gates.clone());
    wait_online(&f);
    let mut conn = connect(&f).await;
    let call = |command: &str, args: Value| f.signer.sign(&f.topics, command, args);
    let open = send(
        &mut conn,
        &f,
        &call("open_gate", json!({"gate": "east", "reason": "test"})),
    )
    .await;
    assert_eq!(code(&open), RefusalCode::ClockUnsynchronised);
    let clear = send(&mut conn, &f, &call("watchlist_clear", json!({}))).await;
    assert_eq!(code(&clear), RefusalCode::ClockUnsynchronised);
    let pong = send(&mut conn, &f, &call("ping", json!({}))).await;
    assert!(pong.ok, "{pong:?}");
    assert_eq!(gates.opens(), 0);
    // The ping's signed issued_at is now the floor: a fresh open is judged.
    let open = send(
        &mut conn,
        &f,
        &call("open_gate", json!({"gate": "east", "reason": "test"})),
    )
    .await;
    assert!(open.ok, "{open:?}");
    assert_eq!(gates.opens(), 1);
    gates
        .unsynced
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let open = send(
        &mut conn,
        &f,
        &call("open_gate", json!({"gate": "east", "reason": "test"})),
    )
    .await;
    assert!(open.ok, "{open:?}");
    task.stop().await;
}

/// Replies went to whatever response topic a request named. Now a command
/// whose response topic is outside the station's reply prefix gets no reply
/// there, is not carried out, and is audited as refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_naming_a_foreign_reply_topic_gets_no_reply_and_is_refused() {
    let f = fixture("cmd-replyto");
    let gates = Arc::new(RecordingGates::default());
    let task = UplinkTask::start(f.gw.settings(Some(&f.broker.url())), gates.clone());
    wait_online(&f);
    let everything = Collector::start(f.broker.port, "#", None);
    let publish = |cmd: &SignedCommand, reply_to: &str| {
        let out = Command::new("mosquitto_pub")
            .args(["-V", "5", "-h", "127.0.0.1", "-q", "1"])
            .args(["-p", &f.broker.port.to_string()])
            .args(["-t", &f.topics.cmd(&cmd.command)])
            .args(["-D", "publish", "response-topic", reply_to])
            .args(["-m", &serde_json::to_string(cmd).unwrap()])
            .output()
            .expect("mosquitto_pub (apt install mosquitto-clients)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let open = f.signer.sign(
        &f.topics,
        "open_gate",
        json!({"gate": "east", "reason": "test"}),
    );
    tokio::task::block_in_place(|| publish(&open, "station/other/topic"));
    // A good command after it: its reply is published after any reply to
    // the first would have been.
    let ping = f.signer.sign(&f.topics, "ping", json!({}));
    tokio::task::block_in_place(|| publish(&ping, "gatehouse-station/test/reply"));
    let msgs = tokio::task::block_in_place(|| {
        everything.wait_until(Duration::from_secs(10), "the ping's reply", |m| {
            m.iter().any(|m| m.topic == "gatehouse-station/test/reply")
        })
    });
    everything.stop();
    assert!(
        !msgs.iter().any(|m| m.topic == "station/other/topic"),
        "a reply went to a topic the request named"
    );
    assert_eq!(gates.opens(), 0, "the command was carried out");
    task.stop().await;
    let refused = audit_rows(&f.store)
        .into_iter()
        .find(|r| r.1 == "uplink.command.refused")
        .expect("the refusal is audited");
    assert_eq!(refused.2.as_deref(), Some("open_gate"));
    assert_eq!(refused.3["code"], "bad_reply_topic");
    assert!(
        refused.3["message"]
            .as_str()
            .unwrap()
            .contains("station/other/topic"),
        "{:?}",
        refused.3
    );
}
