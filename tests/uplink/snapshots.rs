//! Face snapshots and the station (PIPL): by default only a watchlist match's
//! picture leaves with its event; an unknown face's stays on the gateway, the
//! event says it can be requested, and a signed `get_snapshot` brings it,
//! audited with the officer and the reason.

use crate::common;
use crate::uplink_support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::Duration as Span;
use gatehouse::station::{self, Connection, Endpoint, Signer};
use gatehouse::store::events::{self, AccessResult, EventKind, NewEvent};
use gatehouse::uplink::command::public_key_text;
use gatehouse::uplink::{self, NoGates, Topics};
use serde_json::json;
use uplink_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_face_stays_on_the_gateway_until_an_officer_asks_for_it() {
    let broker = common::Mosquitto::start();
    let keys = common::Scratch::new("snap-station-key");
    let key_path = keys.path().join("station.key");
    let public = station::generate_key_file(&key_path).unwrap();
    let gw = Gateway::new(
        "snap-policy",
        &format!("station_keys = [\"{}\"]", public_key_text(&public)),
    );
    let store = gw.store();
    let jpeg = std::fs::read(common::faces_dir().join("identities/obama/obama_1.jpg"))
        .expect("a real photo from ../shared");
    for name in ["face-east-unknown.jpg", "face-east-watch.jpg"] {
        std::fs::write(gw.data_dir().join("snapshots").join(name), &jpeg).unwrap();
    }
    let face_event = |kind, reason: &str, snapshot: &str| {
        let mut e = NewEvent::now(kind, true);
        e.gate = Some("east".parse().unwrap());
        e.credential_kind = Some("face".into());
        e.reason = Some(reason.parse().unwrap());
        e.snapshot = Some(snapshot.into());
        if kind == EventKind::Access {
            e.result = Some(AccessResult::Denied);
        }
        events::append(store.conn(), &e).unwrap()
    };
    let unknown = face_event(EventKind::Access, "unknown_face", "face-east-unknown.jpg");
    let watch = face_event(EventKind::Alarm, "watchlist_match", "face-east-watch.jpg");

    let collector = Collector::start(broker.port, "gatehouse/v1/lotus/gw1/#", None);
    let settings = gw.settings(Some(&broker.url()));
    assert_eq!(
        settings.face_snapshots,
        gatehouse::config::FaceSnapshots::Watchlist,
        "the default"
    );
    let task = UplinkTask::start(settings, Arc::new(NoGates));
    let msgs = tokio::task::block_in_place(|| {
        // Online status: the gateway has subscribed to commands by then.
        collector.wait_until(Duration::from_secs(15), "both events, online", |m| {
            events_of(m).len() >= 2
                && m.iter()
                    .any(|m| m.topic.ends_with("/status") && m.json()["state"] == "online")
        })
    });
    let event_schema = schema("event.schema.json");
    let events = events_of(&msgs);
    for e in &events {
        assert_valid(&event_schema, "event", e);
    }
    let held = events
        .iter()
        .find(|e| e["id"] == unknown.id.as_str())
        .unwrap();
    assert_eq!(held["snapshot"], serde_json::Value::Null);
    assert_eq!(held["detail"]["snapshot_on_request"], true);
    let sent = events
        .iter()
        .find(|e| e["id"] == watch.id.as_str())
        .unwrap();
    assert!(sent["snapshot"].is_string(), "{sent}");
    let snapshot_topics: Vec<&str> = msgs
        .iter()
        .filter(|m| m.topic.contains("/snapshot/"))
        .map(|m| m.topic.as_str())
        .collect();
    assert_eq!(
        snapshot_topics,
        [format!("gatehouse/v1/lotus/gw1/snapshot/{}", watch.id)],
        "only the watchlist match's picture left unasked"
    );

    // The officer asks for the held picture with a signed command.
    let topics = Topics::new(SITE, GATEWAY).unwrap();
    let signer = Signer {
        key: station::load_signing_key(&key_path).unwrap(),
        officer: "officer-7".into(),
        validity: Span::minutes(5),
    };
    let endpoint = Endpoint {
        broker: broker.url().parse().unwrap(),
        ca_pem: None,
        client_auth: None,
        credentials: None,
    };
    let mut conn = Connection::open(&endpoint, Duration::from_secs(10))
        .await
        .unwrap();
    let reply_key = uplink::reply_public_key(store.secret());
    let refused = station::call(
        &mut conn,
        &topics,
        &signer,
        Some(&reply_key),
        "get_snapshot",
        json!({ "event_id": unknown.id }),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert!(
        !refused.ok,
        "a request without a reason is refused: {refused:?}"
    );
    let reply = station::call(
        &mut conn,
        &topics,
        &signer,
        Some(&reply_key),
        "get_snapshot",
        json!({ "event_id": unknown.id, "reason": "case 2026-118: courier dispute" }),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert!(reply.ok, "{reply:?}");
    assert_valid(
        &schema("reply.schema.json"),
        "reply",
        &serde_json::to_value(&reply).unwrap(),
    );
    let result = reply.result.unwrap();
    assert_eq!(result["found"], true);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(result["jpeg_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, jpeg, "the stored picture, byte for byte");

    let reads: Vec<(String, String, String)> = store
        .conn()
        .prepare("SELECT actor, subject, detail FROM audit WHERE action = 'uplink.snapshot.read'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0].0, "station:officer-7");
    assert_eq!(reads[0].1, unknown.id);
    assert!(reads[0].2.contains("courier dispute"), "{}", reads[0].2);

    // The event log the station pages through says the same as the live event.
    let page = station::call(
        &mut conn,
        &topics,
        &signer,
        Some(&reply_key),
        "query_events",
        json!({}),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert!(page.ok, "{page:?}");
    let logged = page.result.unwrap()["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == unknown.id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(logged["snapshot"], serde_json::Value::Null);
    assert_eq!(logged["detail"]["snapshot_on_request"], true);
    conn.close().await;
    task.stop().await;
}
