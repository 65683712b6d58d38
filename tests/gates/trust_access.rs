//! Holes an attacker found at the gates (issue 14), each reproduced through
//! the running daemon: a watch-listed plate let in as a resident's one OCR
//! swap away, visitor PINs guessed slowly under the per-minute lockout, and a
//! 26-bit card accepted as a 34-bit frame with the same numbers.

use crate::common;
use crate::gate_support::{decision, frame_decision, gate, start_daemon};
use crate::lpr_support;

use std::time::Duration;

use common::Scratch;
use gatehouse::config::Config;
use gatehouse::daemon::{Daemon, DaemonOptions, GateHandle};
use gatehouse::domain::CardFormat;
use gatehouse::store::events::{AccessResult, EventRecord};
use gatehouse::store::station_queries::{watchlist_set, WatchAction, WatchEntry, WatchKind};
use gatehouse::store::Store;
use gatehouse::wiegand::format;
use lpr_support::{post_json, Endpoint};
use rusqlite::params;

const NOW: &str = "2026-11-27T02:00:00.000Z";

fn add_resident_with_plate(store: &Store, id: i64, name: &str, plate: &str) {
    let c = store.conn();
    c.execute(
        "INSERT INTO person (id, name, role, status, created_at, created_by, updated_at, updated_by)
         VALUES (?1, ?2, 'owner', 'active', ?3, 'test', ?3, 'test')",
        params![id, name, NOW],
    )
    .unwrap();
    c.execute(
        "INSERT INTO vehicle (plate, person_id, created_at, created_by) VALUES (?1, ?2, ?3, 'test')",
        params![plate, id, NOW],
    )
    .unwrap();
}

fn watch(kind: WatchKind, value: &str, action: WatchAction) -> WatchEntry {
    WatchEntry {
        kind,
        value: value.to_string(),
        embedding: None,
        action,
        label: Some("case 2026-140".into()),
        expires_at: None,
    }
}

/// (reason, detail) of the alarm events stored so far, oldest first.
fn alarms(config: &Config) -> Vec<(String, serde_json::Value)> {
    let store = Store::open_config(config).unwrap();
    let mut stmt = store
        .conn()
        .prepare("SELECT reason, detail FROM event WHERE kind = 'alarm' ORDER BY seq")
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            let detail: Option<String> = r.get(1)?;
            Ok((
                r.get::<_, String>(0)?,
                detail
                    .map(|d| serde_json::from_str(&d).unwrap())
                    .unwrap_or_default(),
            ))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[test]
fn a_watch_listed_plate_is_not_let_in_as_a_residents_one_ocr_swap_away() {
    let dir = Scratch::new("trust-plate");
    let config = lpr_support::config(dir.path(), "\"127.0.0.1\"");
    {
        let store = Store::open_config(&config).unwrap();
        // R1's car is 川AB0125, R2's 川A8D1Z5; the station deny-lists 川A80125
        // (8/B from R1's).
        add_resident_with_plate(&store, 1, "张三", "川AB0125");
        add_resident_with_plate(&store, 2, "李四", "川A8D1Z5");
        watchlist_set(
            store.conn(),
            &[watch(WatchKind::Plate, "川A80125", WatchAction::Deny)],
            "station:officer-7",
        )
        .unwrap();
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let daemon = runtime
        .block_on(Daemon::start_with(
            &config,
            DaemonOptions {
                assume_clock_synced: Some(true),
            },
        ))
        .unwrap();
    let endpoint = Endpoint::start(&config, daemon.handle());

    // The listed car, read exactly: refused as listed, never opened as R1's.
    let reply = post_json(&endpoint, r#"{"gate": "car-in", "plate": "川A80125"}"#);
    assert_eq!(reply.json["result"], "refused", "{:?}", reply.json);
    assert_eq!(reply.json["reason"], "watchlisted");
    assert_eq!(reply.json["plate"], "川A80125");
    let seen = alarms(&config);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "watchlist_match");
    assert_eq!(seen[0].1["denied"], true);

    // R1's own car read exactly still opens, but the listed plate one swap
    // away raises the alarm: the camera may have misread the listed car.
    let reply = post_json(&endpoint, r#"{"gate": "car-in", "plate": "川AB0125"}"#);
    assert_eq!(reply.json["result"], "open", "{:?}", reply.json);
    let seen = alarms(&config);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1].0, "watchlist_match");
    assert_eq!(seen[1].1["possible"], true);
    assert_eq!(seen[1].1["credential"], "川A80125");
    assert_eq!(seen[1].1["decided_plate"], "川AB0125");
    assert_eq!(seen[1].1["ocr_substitution"]["tried"], "8");

    // An unknown reading one swap from R2's plate (0/D) and one from the
    // listed plate (Z/2): open for neither, and alarm.
    let reply = post_json(&endpoint, r#"{"gate": "car-in", "plate": "川A801Z5"}"#);
    assert_eq!(reply.json["result"], "refused", "{:?}", reply.json);
    assert_eq!(reply.json["reason"], "ambiguous_plate");
    // The refusal is the gate's decision, stored as an access event like any other.
    let refused = last_access_event(&config);
    assert_eq!(refused.reason.as_deref(), Some("ambiguous_plate"));
    assert_eq!(refused.result, Some(AccessResult::Denied));
    assert_eq!(refused.gate.as_deref(), Some("car-in"));
    assert_eq!(refused.credential_kind.as_deref(), Some("plate"));
    assert_eq!(refused.credential_masked.as_deref(), Some("川A801Z5"));
    assert_eq!(refused.subject_id, None);
    let seen = alarms(&config);
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[2].1["access_event_seq"], refused.seq);
    assert_eq!(seen[2].1["credential"], "川A80125");
    assert_eq!(seen[2].1["denied"], true);

    drop(endpoint);
    runtime
        .block_on(daemon.shutdown(Duration::from_secs(2)))
        .unwrap();
}

/// The newest access event stored.
fn last_access_event(config: &Config) -> EventRecord {
    let store = Store::open_config(config).unwrap();
    let filter = gatehouse::store::events::EventFilter {
        kind: Some(gatehouse::store::events::EventKind::Access),
        newest_first: true,
        limit: Some(1),
        ..Default::default()
    };
    gatehouse::store::events::query(store.conn(), &filter)
        .unwrap()
        .pop()
        .expect("an access event")
}

/// The demo config in a scratch directory, with 张三 (R1, card 10:12345
/// enrolled as 26-bit) and his guest's unlimited pass at east, PIN 246810.
fn keypad_site(dir: &Scratch) -> Config {
    let mut config = Config::demo();
    config.set_data_dir(dir.path().to_path_buf());
    for g in &mut config.gates {
        g.unlock_ms = 400;
    }
    let store = Store::open_config(&config).unwrap();
    let c = store.conn();
    c.execute(
        "INSERT INTO person (id, name, role, status, created_at, created_by, updated_at, updated_by)
         VALUES (1, '张三', 'owner', 'active', ?1, 'test', ?1, 'test')",
        params![NOW],
    )
    .unwrap();
    c.execute(
        "INSERT INTO card (card_key, format, person_id, created_at, created_by)
         VALUES ('10:12345', 'wiegand26', 1, ?1, 'test')",
        params![NOW],
    )
    .unwrap();
    let pin = store.secret().keyed_hash("pin", b"246810");
    c.execute(
        "INSERT INTO visitor_pass (host_id, visitor_name, pin_hash, gates, valid_from, valid_until, uses_left, created_at, created_by)
         VALUES (1, '周客人', ?1, '[\"east\"]', '2000-01-01', '2999-12-31', NULL, ?2, 'test')",
        params![pin.to_vec(), NOW],
    )
    .unwrap();
    config
}

fn reasons(events: &[EventRecord]) -> Vec<&str> {
    events.iter().filter_map(|e| e.reason.as_deref()).collect()
}

async fn pin_at(h: &GateHandle, gate_id: &str, pin: &str) -> (String, Vec<EventRecord>) {
    let out = h
        .simulate_pin(&gate(gate_id), pin, false)
        .await
        .unwrap_or_else(|e| panic!("PIN {pin} at {gate_id}: {e:#}"));
    let reason = decision(&out).reason.unwrap_or_else(|| "granted".into());
    (reason, out.events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_pin_guessing_alarms_and_the_days_budget_suspends_pin_entry_across_a_restart() {
    let dir = Scratch::new("trust-pins");
    let config = keypad_site(&dir);
    let daemon = start_daemon(&config).await;
    let h = daemon.handle();
    let mut alarms = Vec::new();
    // Eight wrong PINs in 62 s on the daemon's clock: four half a second
    // apart, then four more 59 s later. The per-minute lockout (5 in 60 s)
    // never trips; that was the hole.
    for i in 0..8 {
        h.advance_clock(Duration::from_millis(if i == 4 { 59_000 } else { 500 }));
        let (reason, events) = pin_at(&h, "east", &format!("13579{i}")).await;
        assert_eq!(reason, "unknown_credential", "guess {i}");
        assert!(!reasons(&events).contains(&"reader_lockout"), "guess {i}");
        alarms.extend(
            events
                .into_iter()
                .filter(|e| e.kind == gatehouse::store::events::EventKind::Alarm),
        );
    }
    // The fifth wrong PIN within the hour is no typo: one pin_guessing alarm.
    assert_eq!(reasons(&alarms), ["pin_guessing"]);
    assert_eq!(alarms[0].detail.as_ref().unwrap()["wrong_pins"], 5);

    // Two more a minute apart: the tenth of the day spends the keypad's budget.
    let mut last = Vec::new();
    for i in 8..10 {
        h.advance_clock(Duration::from_secs(61));
        let (reason, events) = pin_at(&h, "east", &format!("13579{i}")).await;
        assert_eq!(reason, "unknown_credential");
        last = events;
    }
    assert!(
        reasons(&last).contains(&"pin_entry_suspended"),
        "{:?}",
        reasons(&last)
    );
    let status = h
        .simulate_pin(&gate("east"), "246810", false)
        .await
        .unwrap();
    assert_eq!(
        decision(&status).reason.as_deref(),
        Some("pin_entry_suspended"),
        "the right PIN is refused unevaluated while PIN entry is suspended"
    );
    let reader = status.status.unwrap().reader.unwrap();
    assert!(reader.pin_suspended_s.unwrap() > 23 * 3600, "{reader:?}");
    // Cards still work at that reader.
    let bits =
        format::encode_card(&"10:12345".parse().unwrap(), Some(CardFormat::Wiegand26)).unwrap();
    let card = frame_decision(&h, "east", &bits).await;
    assert_eq!(card.result, AccessResult::Granted);

    // The power is pulled and comes back: the budget is rebuilt from the log.
    daemon.shutdown(Duration::from_secs(2)).await.unwrap();
    let daemon = start_daemon(&config).await;
    let h = daemon.handle();
    let (reason, _) = pin_at(&h, "east", "246810").await;
    assert_eq!(
        reason, "pin_entry_suspended",
        "a restart does not refill the budget"
    );
    daemon.shutdown(Duration::from_secs(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_26_bit_card_is_refused_as_a_34_bit_frame_with_the_same_numbers() {
    let dir = Scratch::new("trust-card-format");
    let config = keypad_site(&dir);
    let frame = |format| format::encode_card(&"10:12345".parse().unwrap(), Some(format)).unwrap();
    let daemon = start_daemon(&config).await;
    let h = daemon.handle();
    for (format, expected) in [
        (CardFormat::Wiegand34, Some("card_format_mismatch")),
        (CardFormat::Wiegand37, Some("card_format_mismatch")),
        (CardFormat::Wiegand26, None),
    ] {
        let d = frame_decision(&h, "east", &frame(format)).await;
        assert_eq!(d.reason.as_deref(), expected, "{format}");
        // A refused frame names nobody.
        if expected.is_some() {
            assert_eq!((d.result, d.subject_id), (AccessResult::Denied, None));
        }
    }
    daemon.shutdown(Duration::from_secs(2)).await.unwrap();

    // A site that opts out takes the numbers in any frame.
    let mut lax = config.clone();
    lax.access.card_format_strict = false;
    let daemon = start_daemon(&lax).await;
    let d = frame_decision(&daemon.handle(), "east", &frame(CardFormat::Wiegand34)).await;
    assert_eq!(d.result, AccessResult::Granted);
    daemon.shutdown(Duration::from_secs(2)).await.unwrap();
}
