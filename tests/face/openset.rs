//! Open-set 1:N with the real models and photos: `face eval-1n` on
//! `identities/` (labels in tests/fixtures/faces/identities.csv), `face
//! calibrate` writing a threshold a config check accepts, the stranger risk
//! in `gatehouse doctor`, and card + face decided on real faces.

use crate::common;
use crate::face_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use face_support::{faces, path_str, stderr, stdout, FaceEnv};
use gatehouse::access::{
    self, AccessPolicy, AccessState, Credential, DenyReason, FaceCheck, GateContext, Now,
    PersonEntry, Register, TwoFactorRule,
};
use gatehouse::config::FaceMode;
use gatehouse::domain::{masked_name, CardNumber, PersonStatus, ResidentRole};
use gatehouse::face::pipeline::FrameProcessor;
use gatehouse::face::recent::SharedRecentFaces;
use gatehouse::face::{self, FaceEngine, GalleryHandle, MatchPolicy};

fn labels() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/faces/identities.csv"
    ))
}

fn eval_1n(env: &FaceEnv, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "face".to_string(),
        "eval-1n".into(),
        "--labels".into(),
        path_str(&labels()),
        "--root".into(),
        path_str(&faces("identities")),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    env.run(&args)
}

fn last_json(out: &std::process::Output) -> serde_json::Value {
    let text = stdout(out);
    let line = text.lines().last().expect("output");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {text}"))
}

#[test]
fn eval_1n_on_the_identities_meets_the_goals_and_ends_with_one_json_line() {
    let env = FaceEnv::new("eval1n");
    let out = eval_1n(&env, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let j = last_json(&out);
    for key in [
        "known_probes",
        "unknown_probes",
        "dir",
        "fpir",
        "misid",
        "threshold",
        "margin",
        "enrol_per_person",
        "frames",
    ] {
        assert!(j.get(key).is_some(), "no {key} in {j}");
    }
    // Defaults: 3 enrolment photos, the gate's 2-frame confirmation, the
    // configured threshold; lin has one photo, so he is only ever a stranger.
    assert_eq!(j["enrol_per_person"], 3);
    assert_eq!(j["frames"], 2);
    assert_eq!(j["threshold"].as_f64().unwrap(), 0.45);
    assert_eq!(j["margin"].as_f64().unwrap(), 0.05);
    assert!(
        text.contains("strangers only") && text.contains("lin_manuel_miranda"),
        "{text}"
    );
    assert!(
        text.contains("biden (1)"),
        "K larger than the photos: {text}"
    );
    let known = j["known_probes"].as_u64().unwrap();
    let unknown = j["unknown_probes"].as_u64().unwrap();
    assert!(known >= 20 && unknown >= 20, "{j}");
    // The goals on these photos.
    assert!(j["dir"].as_f64().unwrap() >= 0.95, "{j}");
    assert!(j["fpir"].as_f64().unwrap() <= 0.01, "{j}");
    assert_eq!(j["misid"].as_f64().unwrap(), 0.0, "{j}");
    // The text's counts are the JSON's figures.
    let dir_line = text
        .lines()
        .find(|l| l.starts_with("at threshold"))
        .unwrap();
    assert!(
        dir_line.contains(&format!("of {known} resident probes"))
            && dir_line.contains(&format!("of {unknown} stranger probes")),
        "{dir_line}"
    );
    // Household + face (1:few) on the same splits' photos: a resident's own
    // face is the best of a household whenever it is the best of the whole
    // register, and no margin is asked, so DIR can only rise.
    let out = eval_1n(&env, &["--household", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let h = last_json(&out);
    assert_eq!(h["household"], 2, "{h}");
    assert!(stdout(&out).contains("households of 2"), "{}", stdout(&out));
    assert!(
        h["dir"].as_f64().unwrap() >= j["dir"].as_f64().unwrap(),
        "{h} against {j}"
    );
    assert!(h["fpir"].as_f64().unwrap() <= 0.01, "{h}");
    assert!(j.get("household").is_none(), "{j}");
    // The curve: a threshold of 0 admits strangers, 0.95 nobody.
    assert!(text.contains("<- policy"));
    let curve = env.dir.path().join("curve.csv");
    let out = eval_1n(&env, &["--frames", "1", "--curve", &path_str(&curve)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<Vec<f64>> = std::fs::read_to_string(&curve)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|x| x.parse().unwrap()).collect())
        .collect();
    assert!(rows.len() >= 101);
    assert!(
        rows[0][2] > 0.3,
        "threshold 0 admits strangers: {:?}",
        rows[0]
    );
    let top = rows.last().unwrap();
    assert_eq!((top[1], top[2]), (0.0, 0.0), "threshold 1 admits nobody");
    for w in rows.windows(2) {
        assert!(
            w[1][2] <= w[0][2] + 1e-12,
            "FPIR never rises with the threshold"
        );
    }
}

#[test]
fn eval_1n_names_a_missing_photo_and_a_bad_labels_file() {
    let env = FaceEnv::new("eval1n-bad");
    let bad = env.dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "file,identity\nobama/obama_1.jpg,obama\nobama/nope.jpg,obama\n",
    )
    .unwrap();
    let out = env.run(&[
        "face",
        "eval-1n",
        "--labels",
        &path_str(&bad),
        "--root",
        &path_str(&faces("identities")),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("obama/nope.jpg"), "{}", stderr(&out));
    std::fs::write(&bad, "obama/obama_1.jpg;obama\n").unwrap();
    let out = env.run(&[
        "face",
        "eval-1n",
        "--labels",
        &path_str(&bad),
        "--root",
        &path_str(&faces("identities")),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("line 1"), "{}", stderr(&out));
}

#[test]
fn calibrate_writes_a_threshold_that_config_check_accepts_and_keeps_the_rest() {
    let env = FaceEnv::with_models(
        "calibrate",
        &["yunet-2026may", "mobilefacenet", "facenet-vggface2"],
    );
    let original = std::fs::read_to_string(&env.config_path).unwrap();
    let marked = format!("# installer's note: keep me\n{original}");
    std::fs::write(&env.config_path, &marked).unwrap();
    let out = env.run(&[
        "face",
        "calibrate",
        "--labels",
        &path_str(&labels()),
        "--root",
        &path_str(&faces("identities")),
        "--target-fpir",
        "0.01",
        "--gallery-size",
        "12586",
        "--write-config",
        &path_str(&env.config_path),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let j = last_json(&out);
    let threshold = j["threshold"].as_f64().unwrap();
    assert!((0.2..0.9).contains(&threshold), "{j}");
    let written = std::fs::read_to_string(&env.config_path).unwrap();
    assert!(
        written.starts_with("# installer's note: keep me\n"),
        "{written}"
    );
    assert!(
        written.contains(&format!("match_threshold = {threshold}")),
        "{written}"
    );
    let check = env.run(&["config", "check", &path_str(&env.config_path)]);
    assert!(check.status.success(), "{}", stderr(&check));
    // The gateway now uses it: doctor's risk line quotes the new threshold.
    let doctor = env.run(&["doctor", "--json"]);
    let checks: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let face = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "face register")
        .unwrap();
    let detail = face["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("threshold {threshold:.3}")) && detail.contains("from config"),
        "{detail}"
    );

    // A register no threshold can hold (FaceNet's wide impostor tail, 1,000
    // residents) is refused, and the file is left as it was.
    let mut facenet = env.config.clone();
    facenet.models.embedder = "facenet-vggface2".into();
    let facenet_path = env.dir.path().join("facenet.toml");
    let facenet_text = format!("# FaceNet\n{}", toml::to_string(&facenet).unwrap());
    std::fs::write(&facenet_path, &facenet_text).unwrap();
    let out = common::gatehouse()
        .arg("--config")
        .arg(&facenet_path)
        .args([
            "face",
            "calibrate",
            "--labels",
            &path_str(&labels()),
            "--root",
            &path_str(&faces("identities")),
            "--target-fpir",
            "0.01",
            "--gallery-size",
            "1000",
            "--write-config",
            &path_str(&facenet_path),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("no threshold"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read_to_string(&facenet_path).unwrap(),
        facenet_text
    );
}

#[test]
fn doctor_warns_when_the_register_outgrows_the_model() {
    let mut env = FaceEnv::new("doctor-risk");
    let id = env.add_person("kit");
    let out = env.run(&[
        "face",
        "enroll",
        &id.to_string(),
        &path_str(&faces("identities/kit_harington/kit_1.jpg")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A wide impostor tail (FaceNet's): one resident is already too many.
    env.config.face.impostor_mean = Some(0.102);
    env.config.face.impostor_sd = Some(0.285);
    env.write_config();
    let doctor = env.run(&["doctor", "--json"]);
    let checks: serde_json::Value = serde_json::from_slice(&doctor.stdout).unwrap();
    let face = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "face register")
        .unwrap();
    assert_eq!(face["status"], "warn", "{face}");
    let detail = face["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("1 residents with a face")
            && detail.contains("outgrown")
            && detail.contains("card + face"),
        "{detail}"
    );
    let risk =
        face::calibrate::stranger_risk(&env.config, &face::embedder_spec(&env.config).unwrap(), 1)
            .unwrap()
            .unwrap();
    assert!(risk.over_target() && risk.max_residents == 0, "{risk:?}");
}

fn card(n: u64) -> gatehouse::domain::CardRead {
    CardNumber::Formatted {
        facility: 10,
        number: n,
    }
    .into()
}

#[test]
fn card_and_face_opens_for_the_owners_face_only() {
    let env = FaceEnv::new("two-factor");
    let kit = env.add_person("kit");
    let out = env.run(&[
        "face",
        "enroll",
        &kit.to_string(),
        &path_str(&faces("identities/kit_harington/kit_2.jpg")),
        &path_str(&faces("identities/kit_harington/kit_3.jpg")),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let store = env.store();
    let spec = face::embedder_spec(&env.config).unwrap();
    let policy = MatchPolicy::from_config(&env.config.face, &spec).unwrap();
    let engine = FaceEngine::load(&env.config).unwrap();
    let gallery = face::load_gallery(
        store.conn(),
        engine.model_name(),
        engine.embedder.dim(),
        policy.combine,
    )
    .unwrap();
    let handle = GalleryHandle::new(gallery.clone());
    let recent = SharedRecentFaces::default();
    let mut camera = FrameProcessor::new(
        engine,
        policy,
        "east".parse().unwrap(),
        "cam".into(),
        handle,
    );
    camera.share_recent_faces(recent.clone());

    let mut register = Register::new(480);
    register.add_person(PersonEntry {
        id: kit,
        masked_name: masked_name("Kit"),
        role: ResidentRole::Owner,
        status: PersonStatus::Active,
        valid_from: None,
        valid_until: None,
        permit_until: None,
        invalid: None,
    });
    register.add_card(card(7).key(), kit);
    let gate = GateContext {
        gate: "east".parse().unwrap(),
        direction: gatehouse::config::Direction::In,
        paired_with: None,
        policy: AccessPolicy::default(),
        two_factor: TwoFactorRule {
            mode: FaceMode::CardAndFace,
            hours: Vec::new(),
            face_wait: Duration::from_secs(10),
            fallback: Default::default(),
            household_wait: Duration::from_secs(10),
        },
    };
    let now = Now {
        wall: chrono::Utc::now(),
        mono: Duration::from_secs(100),
        clock_synced: true,
    };
    let state = AccessState::new();
    let decide = |face: FaceCheck| {
        access::decide(
            &register,
            &state,
            &Credential::CardAndFace {
                card: card(7),
                face,
            },
            &gate,
            &now,
        )
    };
    // Kit's card alone: refused, the face is required.
    let alone = access::decide(&register, &state, &Credential::Card(card(7)), &gate, &now);
    assert_eq!(alone.reason(), Some(DenyReason::FaceRequired));

    // Obama at the camera with Kit's card.
    let t0 = Instant::now();
    let frame = face::photo::load(&faces("identities/obama/obama_1.jpg")).unwrap();
    camera.process(&frame, t0).unwrap();
    let check = recent
        .lock()
        .unwrap()
        .check_owner(&policy, &gallery, kit, t0);
    assert!(
        matches!(check, FaceCheck::Mismatch { score } if score < 0.3),
        "{check:?}"
    );
    assert_eq!(decide(check).reason(), Some(DenyReason::FaceMismatch));

    // Kit himself, a moment later (a photo he was not enrolled from).
    let t1 = t0 + Duration::from_secs(2);
    let frame = face::photo::load(&faces("identities/kit_harington/kit_1.jpg")).unwrap();
    camera.process(&frame, t1).unwrap();
    let check = recent
        .lock()
        .unwrap()
        .check_owner(&policy, &gallery, kit, t1);
    // One frame is not yet K of M frames of his face: not confirmed.
    assert!(
        matches!(check, FaceCheck::Mismatch { score } if score >= policy.verify_threshold),
        "{check:?}"
    );
    // A second frame of the same face (same track) confirms it.
    camera
        .process(&frame, t1 + Duration::from_millis(200))
        .unwrap();
    let check = recent
        .lock()
        .unwrap()
        .check_owner(&policy, &gallery, kit, t1);
    assert!(matches!(check, FaceCheck::Match { .. }), "{check:?}");
    assert!(decide(check).is_granted());
}

#[test]
fn eval_1n_self_calibrates_from_the_residents_and_predicts_its_stranger_rate() {
    let env = FaceEnv::new("eval1n-selfcal");
    let out = eval_1n(
        &env,
        &["--frames", "2", "--self-calibrate", "--target-fpir", "0.01"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let j = last_json(&out);
    // Three residents per split are far too few for a tail of their own:
    // every split rests on the model's prior, and says so.
    assert_eq!(j["own_register_splits"], 0, "{j}");
    assert_eq!(j["target_fpir"], 0.01, "{j}");
    let predicted = j["predicted_fpir"].as_f64().unwrap();
    let upper = j["predicted_fpir_upper"].as_f64().unwrap();
    assert!(
        predicted > 0.0 && predicted <= upper && upper <= 0.0101,
        "{j}"
    );
    assert_eq!(j["misid"], 0.0, "{j}");
    let text = stdout(&out);
    assert!(text.contains("self-calibrated: threshold"), "{text}");
    // The target is required, and a fixed threshold cannot be asked for as well.
    let out = eval_1n(&env, &["--self-calibrate"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let out = eval_1n(
        &env,
        &[
            "--self-calibrate",
            "--target-fpir",
            "0.01",
            "--threshold",
            "0.5",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
