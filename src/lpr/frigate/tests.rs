use std::sync::Mutex;

use super::*;
use crate::lpr::{PlateOutcome, Verdict};

const LPR_016: &str = include_str!("../../../tests/fixtures/lpr/frigate/lpr_0.16.json");
const LPR_017: &str = include_str!("../../../tests/fixtures/lpr/frigate/lpr_0.17.json");
const CLEARED: &str = include_str!("../../../tests/fixtures/lpr/frigate/lpr_cleared.json");
const DESCRIPTION: &str = include_str!("../../../tests/fixtures/lpr/frigate/description.json");
const FACE: &str = include_str!("../../../tests/fixtures/lpr/frigate/face.json");

const CONFIG: &str = r#"
[site]
id = "qingbo"
gateway_id = "gw1"
name = "清波小区"

[[gates]]
id = "car-in"
name = "车辆入口"
kind = "vehicle"
direction = "in"
backend = "simulated"
relay_pin = 24
loop_pin = 25

[[gates]]
id = "car-out"
name = "车辆出口"
kind = "vehicle"
direction = "out"
backend = "simulated"
relay_pin = 26
loop_pin = 16

[lpr]
ocr_tolerance = ["car-in"]
repeat_window_s = 10

[lpr.frigate]
broker = "mqtt://127.0.0.1:1883"

[[lpr.frigate.cameras]]
name = "gate_lpr"
gate = "car-in"

[[lpr.frigate.cameras]]
name = "exit_lpr"
gate = "car-out"
"#;

fn config() -> Config {
    Config::parse(CONFIG, "frigate.toml").unwrap()
}

/// Opens for the plates it knows, refuses the rest; remembers every reading.
struct Sink {
    known: Vec<&'static str>,
    calls: Mutex<Vec<PlateReading>>,
}

impl Sink {
    fn new(known: &[&'static str]) -> Arc<Sink> {
        Arc::new(Sink {
            known: known.to_vec(),
            calls: Mutex::new(Vec::new()),
        })
    }

    fn calls(&self) -> Vec<PlateReading> {
        self.calls.lock().unwrap().clone()
    }
}

impl PlateSink for Sink {
    async fn present(&self, reading: PlateReading) -> Result<PlateOutcome> {
        self.calls.lock().unwrap().push(reading.clone());
        let known = |p: &crate::domain::Plate| self.known.contains(&p.as_str());
        let plate = match reading.resolve(known) {
            super::super::Resolution::Present(c) => c.plate.clone(),
            super::super::Resolution::Ambiguous(c) => c[0].plate.clone(),
        };
        let open = known(&plate);
        Ok(PlateOutcome {
            verdict: if open {
                Verdict::Open
            } else {
                Verdict::Refused
            },
            reason: if open {
                crate::event::EventReason::RegisteredVehicle
            } else {
                crate::event::EventReason::UnknownCredential
            },
            plate,
            subject: None,
            event_seq: None,
        })
    }
}

/// A Frigate 0.16 plate update with this camera, tracked-object id and plate.
fn update(camera: &str, id: &str, plate: &str) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_str(LPR_016).unwrap();
    v["camera"] = camera.into();
    v["id"] = id.into();
    v["plate"] = plate.into();
    serde_json::to_vec(&v).unwrap()
}

fn verdict(h: &Handled) -> Option<Verdict> {
    match h {
        Handled::Decided(o) => Some(o.verdict),
        _ => None,
    }
}

#[test]
fn parses_the_plate_updates_of_frigate_016_and_017() {
    let Update::Plate(p) = parse(LPR_016.as_bytes()).unwrap() else {
        panic!("not a plate")
    };
    assert_eq!(p.object_id, "1764730512.487351-x7k2qd");
    assert_eq!(p.camera, "gate_lpr");
    assert_eq!(p.plate, "川A1Z345");
    assert!((p.score.unwrap() - 0.614).abs() < 1e-3);
    assert_eq!(
        p.time.unwrap().to_rfc3339(),
        "2025-12-03T02:55:13.524571+00:00"
    );
    // Newer fields and Frigate's own label are accepted and not relied on.
    let Update::Plate(p) = parse(LPR_017.as_bytes()).unwrap() else {
        panic!("not a plate")
    };
    assert_eq!(p.plate, "川A12345");
    assert_eq!(p.object_id, "1764730512.487351-x7k2qd");
}

#[test]
fn other_updates_and_a_cleared_camera_are_not_plates() {
    assert_eq!(
        parse(CLEARED.as_bytes()).unwrap(),
        Update::Cleared {
            camera: Some("gate_lpr".into())
        }
    );
    assert_eq!(
        parse(DESCRIPTION.as_bytes()).unwrap(),
        Update::Other("description".into())
    );
    assert_eq!(
        parse(FACE.as_bytes()).unwrap(),
        Update::Other("face".into())
    );
}

#[test]
fn names_the_field_of_each_bad_update() {
    let with = |field: &str, value: serde_json::Value| {
        let mut v: serde_json::Value = serde_json::from_str(LPR_016).unwrap();
        if value.is_null() {
            v.as_object_mut().unwrap().remove(field);
        } else {
            v[field] = value;
        }
        serde_json::to_vec(&v).unwrap()
    };
    let cases = [
        (
            with("score", 93.into()),
            "score: expected 0.0..=1.0, got 93",
        ),
        (with("id", serde_json::Value::Null), "id: missing"),
        (
            with("id", "a b".into()),
            "id: expected Frigate's tracked-object id",
        ),
        (with("camera", serde_json::Value::Null), "camera: missing"),
        (
            with("timestamp", (-5).into()),
            "timestamp: expected Unix seconds",
        ),
        (
            with("plate", "川".repeat(40).into()),
            "plate: 40 characters",
        ),
        (with("plate", 12345.into()), "Frigate update: invalid type"),
        (b"online".to_vec(), "Frigate update:"),
        (br#"{"plate": "A"}"#.to_vec(), "missing field `type`"),
    ];
    for (payload, expected) in cases {
        let err = parse(&payload).unwrap_err();
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
}

#[tokio::test]
async fn a_listed_camera_s_reading_goes_to_its_gate_with_the_gate_s_ocr_tolerance() {
    let sink = Sink::new(&["川A12345"]);
    let mut intake = Intake::new(&config(), sink.clone()).unwrap();
    // car-in tolerates OCR confusions: the Z read for a 2 still opens.
    let h = intake.handle(LPR_016.as_bytes(), false).await;
    assert_eq!(verdict(&h), Some(Verdict::Open), "{h:?}");
    let calls = sink.calls();
    let r = &calls[0];
    assert_eq!(r.gate.as_str(), "car-in");
    assert_eq!(r.source, PlateSource::Frigate);
    assert_eq!(r.camera, PlateCamera::Named("gate_lpr".into()));
    assert_eq!(
        r.tracked_object.as_deref(),
        Some("1764730512.487351-x7k2qd")
    );
    assert_eq!(r.read.text, "川A1Z345");
    assert_eq!(
        r.camera_time.unwrap().to_rfc3339(),
        "2025-12-03T10:55:13.524571+08:00",
        "Frigate's time in the site's offset"
    );
    let detail = r.event_detail(&"川A12345".parse().unwrap());
    assert_eq!(detail["source"], "frigate");
    assert_eq!(detail["camera"], "gate_lpr");
    assert_eq!(detail["tracked_object"], "1764730512.487351-x7k2qd");
    assert_eq!(detail["ocr_substitution"]["tried"], "2");
    // car-out does not: the same text is an unknown plate there.
    let h = intake
        .handle(
            &update("exit_lpr", "1764730600.1-aaaaaa", "川A1Z345"),
            false,
        )
        .await;
    assert_eq!(verdict(&h), Some(Verdict::Refused), "{h:?}");
    assert_eq!(sink.calls()[1].gate.as_str(), "car-out");
}

#[tokio::test]
async fn unlisted_cameras_retained_messages_and_non_plates_never_reach_the_gate() {
    let sink = Sink::new(&["川A12345"]);
    let mut intake = Intake::new(&config(), sink.clone()).unwrap();
    let h = intake
        .handle(
            &update("driveway", "1764730512.5-bbbbbb", "川A12345"),
            false,
        )
        .await;
    assert_eq!(h, Handled::UnknownCamera("driveway".into()));
    assert_eq!(h.result(), "unknown_gate");
    let h = intake.handle(LPR_017.as_bytes(), true).await;
    assert_eq!(h, Handled::Retained);
    for payload in [CLEARED, DESCRIPTION, FACE] {
        assert_eq!(
            intake.handle(payload.as_bytes(), false).await,
            Handled::NotAPlate
        );
    }
    let h = intake
        .handle(&update("gate_lpr", "1764730512.5-cccccc", "无车牌"), false)
        .await;
    assert_eq!(h, Handled::NotAPlate);
    let h = intake
        .handle(&update("gate_lpr", "1764730512.5-dddddd", "XA12345"), false)
        .await;
    assert!(
        matches!(&h, Handled::Unreadable(p) if p.contains("camera gate_lpr: plate:")),
        "{h:?}"
    );
    assert!(sink.calls().is_empty(), "{:?}", sink.calls());
}

#[tokio::test]
async fn a_car_the_gate_opened_for_is_not_presented_again_while_frigate_tracks_it() {
    let sink = Sink::new(&["川A12345"]);
    let mut intake = Intake::new(&config(), sink.clone()).unwrap();
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let first = intake.handle_at(LPR_016.as_bytes(), false, at(0)).await;
    assert_eq!(verdict(&first), Some(Verdict::Open));
    // Frigate's refinements of the same car: a better reading, then the same
    // one long after the repeat window.
    let better = intake.handle_at(LPR_017.as_bytes(), false, at(1)).await;
    assert_eq!(better, Handled::Repeat);
    let later = intake.handle_at(LPR_017.as_bytes(), false, at(60)).await;
    assert_eq!(later, Handled::Repeat);
    assert_eq!(sink.calls().len(), 1);
    // Once forgotten (Frigate would long have ended the object), decided anew.
    let forgotten = at(60) + TRACKED_FOR;
    let anew = intake.handle_at(LPR_017.as_bytes(), false, forgotten).await;
    assert_eq!(verdict(&anew), Some(Verdict::Open));
    assert_eq!(sink.calls().len(), 2);
}

#[tokio::test]
async fn a_refused_car_is_decided_again_on_a_new_reading_and_after_the_repeat_window() {
    let sink = Sink::new(&["川A12345"]);
    let mut intake = Intake::new(&config(), sink.clone()).unwrap();
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let id = "1764730700.2-eeeeee";
    let misread = update("exit_lpr", id, "川A1Z345");
    let first = intake.handle_at(&misread, false, at(0)).await;
    assert_eq!(verdict(&first), Some(Verdict::Refused));
    // The same misreading again: answered as before, no second event.
    assert_eq!(
        intake.handle_at(&misread, false, at(1)).await,
        Handled::Repeat
    );
    // Under another id (Frigate lost and re-found the car): still a repeat.
    let other_id = update("exit_lpr", "1764730701.2-ffffff", "川A1Z345");
    assert_eq!(
        intake.handle_at(&other_id, false, at(2)).await,
        Handled::Repeat
    );
    // Frigate's refinement reads it right: decided, and opens.
    let right = update("exit_lpr", id, "川A12345");
    let better = intake.handle_at(&right, false, at(3)).await;
    assert_eq!(verdict(&better), Some(Verdict::Open));
    // After the window, the misreading of another car is decided again.
    let another = update("exit_lpr", "1764730800.3-gggggg", "川A1Z345");
    let later = intake.handle_at(&another, false, at(11)).await;
    assert_eq!(verdict(&later), Some(Verdict::Refused));
    assert_eq!(sink.calls().len(), 3);
}

#[tokio::test]
async fn memory_stays_bounded_whatever_ids_arrive() {
    let sink = Sink::new(&[]);
    let mut intake = Intake::new(&config(), sink.clone()).unwrap();
    for i in 0..(MAX_TRACKED + 300) {
        let plate = format!("川A{:05}", i % 100_000);
        intake
            .handle(
                &update("gate_lpr", &format!("1764730000.{i}-zzzzzz"), &plate),
                false,
            )
            .await;
    }
    assert!(
        intake.tracked.len() <= MAX_TRACKED,
        "{}",
        intake.tracked.len()
    );
    assert!(
        intake.recent.len() <= MAX_TRACKED + 1,
        "{}",
        intake.recent.len()
    );
}

#[test]
fn link_settings_name_the_key_of_an_unreadable_file() {
    let text = CONFIG.replace(
        "broker = \"mqtt://127.0.0.1:1883\"",
        "broker = \"mqtt://127.0.0.1:1883\"\nusername = \"gatehouse\"\npassword_file = \"/nonexistent/frigate.pass\"",
    );
    let config = Config::parse(&text, "x.toml").unwrap();
    let err = Link::from_config(&config).unwrap_err();
    assert!(
        format!("{err:#}").contains("lpr.frigate.password_file: cannot read /nonexistent"),
        "{err:#}"
    );
    let text = CONFIG.replace(
        "mqtt://127.0.0.1:1883",
        "mqtts://127.0.0.1:8883\"\nca_file = \"/nonexistent/ca.pem",
    );
    let config = Config::parse(&text, "x.toml").unwrap();
    let err = Link::from_config(&config).unwrap_err();
    assert!(
        format!("{err:#}").contains("lpr.frigate.ca_file"),
        "{err:#}"
    );
    let link = Link::from_config(&self::config()).unwrap();
    assert_eq!(link.broker.to_string(), "mqtt://127.0.0.1:1883");
    assert_eq!(link.updates_topic, "frigate/tracked_object_update");
}
