//! `POST /lpr/json` over real HTTP against the real endpoint, with a sink that
//! looks plates up in a real SQLite register and records real events.

use crate::common;
use crate::lpr_support;

use base64::Engine as _;
use common::{shared_dir, Scratch};
use lpr_support::{
    config, jpeg, post, post_from, post_json, post_oversized, snapshot_files, Endpoint,
    RegisterSink, TOKEN,
};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn registered_plate_opens_and_the_event_keeps_the_snapshot() {
    let dir = Scratch::new("lpr-json-open");
    let sink = RegisterSink::open(dir.path());
    let owner = sink.register("张三", "川A12345", "active");
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());
    let photo = jpeg(&shared_dir(), "kit_with_rose.jpg");

    let body = serde_json::json!({
        "gate": "car-in",
        "plate": "川A12345",
        "confidence": 0.97,
        "time": "2026-11-27T10:00:00+08:00",
        "snapshot_jpeg_base64": b64(&photo),
    });
    let reply = post_json(&endpoint, &body.to_string());

    assert_eq!(reply.status, 200, "{:?}", reply.json);
    assert_eq!(reply.json["result"], "open");
    assert_eq!(reply.json["plate"], "川A12345");
    assert_eq!(reply.json["reason"], "registered_vehicle");
    assert_eq!(reply.json["subject"], owner.0);
    let snapshot = reply.json["snapshot"]
        .as_str()
        .expect("snapshot name")
        .to_string();
    let saved = std::fs::read(dir.path().join("snapshots").join(&snapshot)).unwrap();
    assert_eq!(saved, photo, "the saved picture is the posted one");

    let calls = sink.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].gate.as_str(), "car-in");
    assert_eq!(calls[0].confidence, Some(0.97));
    assert_eq!(
        calls[0].camera_time.unwrap().to_rfc3339(),
        "2026-11-27T10:00:00+08:00"
    );
    let events = sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].result.map(|r| r.as_str()), Some("granted"));
    assert_eq!(events[0].snapshot.as_deref(), Some(snapshot.as_str()));
    assert_eq!(reply.json["event"], events[0].seq);
}

#[test]
fn unknown_plate_is_refused_with_an_event_for_the_station() {
    let dir = Scratch::new("lpr-json-unknown");
    let sink = RegisterSink::open(dir.path());
    sink.register("张三", "川A12345", "active");
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());
    let photo = jpeg(&shared_dir(), "kit_with_rose.jpg");

    let body = serde_json::json!({
        "gate": "car-in", "plate": "京B 99999", "snapshot_jpeg_base64": b64(&photo),
    });
    let reply = post_json(&endpoint, &body.to_string());

    assert_eq!(reply.status, 200, "{:?}", reply.json);
    assert_eq!(reply.json["result"], "refused");
    assert_eq!(reply.json["plate"], "京B99999");
    assert_eq!(reply.json["reason"], "unknown_credential");
    let events = sink.events();
    assert_eq!(events.len(), 1);
    let event = &events[0];
    assert_eq!(event.result.map(|r| r.as_str()), Some("denied"));
    assert_eq!(event.reason.as_deref(), Some("unknown_credential"));
    assert_eq!(event.credential_kind.as_deref(), Some("plate"));
    assert_eq!(event.credential_masked.as_deref(), Some("京B99999"));
    let snapshot = event
        .snapshot
        .as_deref()
        .expect("the event keeps the picture");
    assert!(dir.path().join("snapshots").join(snapshot).is_file());
    assert_eq!(event.detail.as_ref().unwrap()["read"], "京B99999");
}

#[test]
fn suspended_owners_vehicle_is_refused() {
    let dir = Scratch::new("lpr-json-suspended");
    let sink = RegisterSink::open(dir.path());
    sink.register("李四", "川A54321", "suspended");
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());
    let reply = post_json(&endpoint, r#"{"gate": "car-in", "plate": "川A54321"}"#);
    assert_eq!(reply.json["result"], "refused");
    assert_eq!(reply.json["reason"], "suspended");
    assert_eq!(reply.json["snapshot"], serde_json::Value::Null);
}

#[test]
fn malformed_bodies_get_400_naming_the_problem_and_change_nothing() {
    let dir = Scratch::new("lpr-json-malformed");
    let sink = RegisterSink::open(dir.path());
    sink.register("张三", "川A12345", "active");
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());
    let photo = b64(&jpeg(&shared_dir(), "kit_with_rose.jpg"));
    let not_jpeg =
        b64(&std::fs::read(shared_dir().join("faces/formats/not_an_image.jpg")).unwrap());

    let cases = [
        (
            "{\"gate\": \"car-in\", \"plate\": ".to_string(),
            "JSON body: EOF",
        ),
        (r#"{"gate": "car-in"}"#.to_string(), "missing field `plate`"),
        (
            r#"{"gate": "car-in", "plate": "XA12345"}"#.to_string(),
            "must start with a province character",
        ),
        (
            r#"{"gate": "car-in", "plate": "川A1234"}"#.to_string(),
            "too short",
        ),
        (
            r#"{"gate": "car-in", "plate": "川A12345", "confidence": 1.5}"#.to_string(),
            "confidence: expected 0.0..=1.0",
        ),
        (
            r#"{"gate": "car-in", "plate": "川A12345", "time": "27/11/2026"}"#.to_string(),
            "time: expected RFC 3339",
        ),
        (
            format!(
                r#"{{"gate": "car-in", "plate": "川A12345", "snapshot_jpeg_base64": "{not_jpeg}"}}"#
            ),
            "not a JPEG",
        ),
        (
            format!(
                r#"{{"gate": "car-in", "plate": "川A12345", "snapshot_jpeg_base64": "{}!!"}}"#,
                &photo[..100]
            ),
            "not valid base64",
        ),
        (
            format!(
                r#"{{"gate": "car-in", "plate": "XA12345", "snapshot_jpeg_base64": "{photo}"}}"#
            ),
            "province",
        ),
        (
            r#"{"gate": "car-in", "plate": "川A12345", "snapshot_jpg_base64": "x"}"#.to_string(),
            "unknown field `snapshot_jpg_base64`",
        ),
    ];
    for (body, expected) in &cases {
        let reply = post_json(&endpoint, body);
        assert_eq!(reply.status, 400, "{body}: {:?}", reply.json);
        let message = reply.json["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "{body}: expected {expected:?} in {message:?}"
        );
    }
    assert!(
        sink.calls().is_empty(),
        "the sink was called for a malformed body"
    );
    assert!(sink.events().is_empty());
    assert!(
        snapshot_files(dir.path()).is_empty(),
        "a picture was kept for a refused body"
    );
}

#[test]
fn unknown_or_pedestrian_gates_are_refused_before_the_sink() {
    let dir = Scratch::new("lpr-json-gate");
    let sink = RegisterSink::open(dir.path());
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());

    let reply = post_json(&endpoint, r#"{"gate": "car-west", "plate": "川A12345"}"#);
    assert_eq!(reply.status, 404);
    assert!(reply.json["error"]
        .as_str()
        .unwrap()
        .contains("no gate \"car-west\""));
    let reply = post_json(&endpoint, r#"{"gate": "east", "plate": "川A12345"}"#);
    assert_eq!(reply.status, 400);
    assert!(reply.json["error"]
        .as_str()
        .unwrap()
        .contains("pedestrian gate"));
    assert!(sink.calls().is_empty());
}

#[test]
fn missing_or_wrong_token_gets_401() {
    let dir = Scratch::new("lpr-json-token");
    let sink = RegisterSink::open(dir.path());
    sink.register("张三", "川A12345", "active");
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());
    let body = r#"{"gate": "car-in", "plate": "川A12345"}"#.as_bytes();
    let url = endpoint.url("/lpr/json");

    let reply = post(&url, "application/json", None, body);
    assert_eq!(reply.status, 401);
    assert!(reply.json["error"]
        .as_str()
        .unwrap()
        .contains("missing X-Gatehouse-Token"));
    let reply = post(&url, "application/json", Some("test-lpr-token-WRONG"), body);
    assert_eq!(reply.status, 401);
    assert!(sink.calls().is_empty());
    // The same request with the secret goes through.
    assert_eq!(
        post(&url, "application/json", Some(TOKEN), body).json["result"],
        "open"
    );
}

#[test]
fn address_off_the_allow_list_gets_403_and_the_sink_is_never_called() {
    let dir = Scratch::new("lpr-json-allow");
    let sink = RegisterSink::open(dir.path());
    sink.register("张三", "川A12345", "active");
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());
    let body = r#"{"gate": "car-in", "plate": "川A12345"}"#;

    assert_eq!(post_from("127.0.0.2", &endpoint, "/lpr/json", body), 403);
    assert_eq!(
        post_from("127.0.0.2", &endpoint, "/lpr/hikvision", body),
        403
    );
    assert!(sink.calls().is_empty());
    assert_eq!(post_from("127.0.0.1", &endpoint, "/lpr/json", body), 200);
    assert_eq!(sink.calls().len(), 1);
}

#[test]
fn allow_list_networks_admit_their_addresses() {
    let dir = Scratch::new("lpr-json-net");
    let sink = RegisterSink::open(dir.path());
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.0/30\""), sink.clone());
    let body = r#"{"gate": "car-in", "plate": "川A12345"}"#;
    assert_eq!(post_from("127.0.0.2", &endpoint, "/lpr/json", body), 200);
    assert_eq!(post_from("127.0.0.5", &endpoint, "/lpr/json", body), 403);
}

#[test]
fn tolerant_gate_opens_for_one_ocr_swap_and_records_it() {
    let dir = Scratch::new("lpr-json-ocr");
    let sink = RegisterSink::open(dir.path());
    sink.register("王五", "川AB0125", "active");
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());

    // The camera read B as 8.
    let reply = post_json(&endpoint, r#"{"gate": "car-in", "plate": "川A80125"}"#);
    assert_eq!(reply.json["result"], "open", "{:?}", reply.json);
    assert_eq!(reply.json["read"], "川A80125");
    assert_eq!(reply.json["plate"], "川AB0125");
    assert_eq!(
        reply.json["ocr_substitution"],
        serde_json::json!({"position": 2, "read": "8", "tried": "B"})
    );
    let detail = sink.events()[0].detail.clone().unwrap();
    assert_eq!(detail["ocr_substitution"]["tried"], "B");
    assert_eq!(detail["plate"], "川AB0125");

    // car-out is not configured for tolerance: the same reading is refused.
    let reply = post_json(&endpoint, r#"{"gate": "car-out", "plate": "川A80125"}"#);
    assert_eq!(reply.json["result"], "refused");
    assert_eq!(reply.json["ocr_substitution"], serde_json::Value::Null);
    assert_eq!(sink.calls()[1].read.candidates().len(), 1);
}

#[test]
fn two_registered_swaps_open_for_neither() {
    let dir = Scratch::new("lpr-json-ambiguous");
    let sink = RegisterSink::open(dir.path());
    sink.register("王五", "川AB0125", "active");
    sink.register("赵六", "川A801Z5", "active");
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());
    let reply = post_json(&endpoint, r#"{"gate": "car-in", "plate": "川A80125"}"#);
    assert_eq!(reply.json["result"], "refused");
    assert_eq!(reply.json["reason"], "ambiguous_plate");
}

#[test]
fn body_over_the_limit_gets_413_and_changes_nothing() {
    let dir = Scratch::new("lpr-json-big");
    let sink = RegisterSink::open(dir.path());
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());
    // max_body_kb = 1024 in the test config; this photo is ~475 KiB, ~650 KiB as base64.
    let big = jpeg(&shared_dir(), "two_people.jpg");
    let body = serde_json::json!({
        "gate": "car-in", "plate": "川A12345",
        "snapshot_jpeg_base64": b64(&[big.as_slice(), big.as_slice()].concat()),
    });
    let status = post_oversized(&endpoint, "/lpr/json", body.to_string().as_bytes());
    assert_eq!(status, 413);
    assert!(sink.calls().is_empty());
    assert!(snapshot_files(dir.path()).is_empty());
}

#[test]
fn a_camera_pushing_the_same_plate_again_gets_the_same_answer_without_a_second_event() {
    let dir = Scratch::new("lpr-json-repeat");
    let sink = RegisterSink::open(dir.path());
    sink.register("张三", "川A12345", "active");
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());
    let body = serde_json::json!({ "gate": "car-in", "plate": "川A12345" }).to_string();

    let first = post_json(&endpoint, &body);
    assert_eq!(first.json["result"], "open", "{:?}", first.json);
    assert!(first.json.get("repeat").is_none());
    for _ in 0..2 {
        let again = post_json(&endpoint, &body);
        assert_eq!(again.status, 200);
        assert_eq!(again.json["repeat"], true, "{:?}", again.json);
        assert_eq!(again.json["result"], "open");
        assert_eq!(again.json["event"], first.json["event"], "the first event");
    }
    assert_eq!(sink.calls().len(), 1, "decided once");
    assert_eq!(sink.events().len(), 1, "one event");

    // Another car is decided on its own.
    let other = serde_json::json!({ "gate": "car-in", "plate": "川B99999" }).to_string();
    assert_eq!(post_json(&endpoint, &other).json["result"], "refused");
    assert_eq!(sink.events().len(), 2);
}

#[test]
fn with_the_repeat_window_off_every_push_is_decided() {
    let dir = Scratch::new("lpr-json-no-repeat");
    let sink = RegisterSink::open(dir.path());
    sink.register("张三", "川A12345", "active");
    let mut c = config(dir.path(), "\"127.0.0.1\"");
    c.lpr.repeat_window_s = 0;
    let endpoint = Endpoint::start(&c, sink.clone());
    let body = serde_json::json!({ "gate": "car-in", "plate": "川A12345" }).to_string();
    post_json(&endpoint, &body);
    let again = post_json(&endpoint, &body);
    assert!(again.json.get("repeat").is_none(), "{:?}", again.json);
    assert_eq!(sink.events().len(), 2);
}
