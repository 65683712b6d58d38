use super::*;

fn minimal() -> String {
    r#"
[site]
id = "qingbo"
gateway_id = "gw1"
name = "清波小区"

[[gates]]
id = "east"
name = "东门"
kind = "pedestrian"
direction = "in"
backend = "simulated"
relay_pin = 17
"#
    .to_string()
}

fn error_of(text: &str) -> String {
    Config::parse(text, "x.toml").unwrap_err().to_string()
}

#[test]
fn accepts_a_minimal_config_with_defaults() {
    let config = Config::parse(&minimal(), "x.toml").expect("valid");
    assert_eq!(config.gates[0].unlock_ms, 3000);
    assert_eq!(config.access.lockout_attempts, 5);
    assert_eq!(config.site.utc_offset_minutes, 480);
}

#[test]
fn built_in_demo_config_is_valid() {
    let config = Config::demo();
    assert!(config.gates.iter().any(|g| g.kind == GateKind::Vehicle));
}

#[test]
fn names_file_key_path_and_problem_for_a_bad_pin() {
    let text = minimal().replace("relay_pin = 17", "relay_pin = \"abc\"");
    let err = error_of(&text);
    assert!(
        err.starts_with("x.toml: gates[0].relay_pin: expected an integer 0..=27, got \"abc\""),
        "{err}"
    );
}

#[test]
fn rejects_pin_out_of_range() {
    let err = error_of(&minimal().replace("relay_pin = 17", "relay_pin = 40"));
    assert!(
        err.contains("gates[0].relay_pin: expected an integer 0..=27, got 40"),
        "{err}"
    );
}

#[test]
fn rejects_unknown_key_naming_it() {
    let err = error_of(&minimal().replace("relay_pin = 17", "relay_pin = 17\nrelay_pn = 3"));
    assert!(
        err.contains("gates[0]") && err.contains("relay_pn"),
        "{err}"
    );
}

#[test]
fn rejects_missing_required_key() {
    let err = error_of(&minimal().replace("gateway_id = \"gw1\"\n", ""));
    assert!(err.contains("site") && err.contains("gateway_id"), "{err}");
}

#[test]
fn rejects_duplicate_gate_ids() {
    let mut text = minimal();
    text.push_str(
        "\n[[gates]]\nid = \"east\"\nname = \"x\"\nkind = \"vehicle\"\ndirection = \"out\"\nbackend = \"simulated\"\nrelay_pin = 3\n",
    );
    let err = error_of(&text);
    assert!(
        err.contains("gates[1].id: duplicate gate id \"east\""),
        "{err}"
    );
}

#[test]
fn rejects_camera_for_unknown_gate() {
    let mut text = minimal();
    text.push_str("\n[[cameras]]\nid = \"c1\"\ngate = \"west\"\nsource = \"/dev/video0\"\n");
    let err = error_of(&text);
    assert!(
        err.contains("cameras[0].gate: no gate with id \"west\""),
        "{err}"
    );
}

#[test]
fn rejects_one_wiegand_line_without_the_other() {
    let err = error_of(&minimal().replace("relay_pin = 17", "relay_pin = 17\nwiegand_d0_pin = 5"));
    assert!(err.contains("wiegand_d0_pin and wiegand_d1_pin"), "{err}");
}

#[test]
fn rejects_broker_without_mqtt_scheme() {
    let mut text = minimal();
    text.push_str("\n[uplink]\nbroker = \"http://x\"\n");
    let err = error_of(&text);
    assert!(err.contains("uplink.broker"), "{err}");
}

#[test]
fn relative_paths_resolve_against_the_config_file() {
    let dir = std::env::temp_dir().join(format!("gh-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("g.toml");
    let text = minimal().replace("[[gates]]", "[store]\ndata_dir = \"data\"\n\n[[gates]]");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.data_dir(), dir.join("data"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_device_secret_defaults_to_beside_the_config_file_not_the_data_directory() {
    let dir = std::env::temp_dir().join(format!("gh-config-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("g.toml");
    let text = minimal().replace("[[gates]]", "[store]\ndata_dir = \"data\"\n\n[[gates]]");
    std::fs::write(&path, &text).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.device_key_path(), dir.join("device.key"));
    // A relative key is inside the data directory (the demo's scratch setup).
    let demo = text.replace(
        "data_dir = \"data\"",
        "data_dir = \"data\"\ndevice_key = \"device.key\"",
    );
    std::fs::write(&path, demo).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(config.device_key_path(), dir.join("data/device.key"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn console_tls_needs_both_files_and_sessions_a_sane_length() {
    let config = Config::parse(&minimal(), "x.toml").expect("valid");
    assert!(config.console.listen.is_none());
    assert_eq!(config.console.session_minutes, 30);
    let e = error_of(&format!(
        "{}\n[console]\nlisten = \"127.0.0.1:8088\"\ntls_cert = \"c.pem\"\n",
        minimal()
    ));
    assert!(
        e.contains("console: tls_cert and tls_key must be set together"),
        "{e}"
    );
    let e = error_of(&format!("{}\n[console]\nsession_minutes = 0\n", minimal()));
    assert!(
        e.contains("console.session_minutes: expected 1..=1440"),
        "{e}"
    );
}

#[test]
fn liveness_is_on_by_default_wherever_a_face_alone_opens_the_gate() {
    let gate = |extra: &str| {
        let text = minimal().replacen("[[gates]]\n", &format!("[[gates]]\n{extra}\n"), 1);
        Config::parse(&text, "x.toml").expect("valid").gates[0].clone()
    };
    // (gate settings, a face alone opens, liveness on)
    let cases = [
        ("", true, true),
        ("liveness = \"off\"", true, false),
        ("two_factor = \"card+face\"", false, false),
        ("two_factor = \"card+face\"\nliveness = \"on\"", false, true),
        (
            "two_factor = \"card+face\"\ntwo_factor_hours = [\"daily 22:00-06:00\"]",
            true,
            true,
        ),
    ];
    for (extra, alone, on) in cases {
        let g = gate(extra);
        assert_eq!(g.face_alone_opens(), alone, "{extra:?}");
        assert_eq!(g.liveness_on(), on, "{extra:?}");
    }
    let e = error_of(&minimal().replacen("[[gates]]\n", "[[gates]]\nliveness = \"maybe\"\n", 1));
    assert!(e.contains("liveness"), "{e}");
    let e = error_of(&format!(
        "{}\n[face]\nliveness_threshold = 1.5\n",
        minimal()
    ));
    assert!(e.contains("face.liveness_threshold"), "{e}");
}

#[test]
fn liveness_models_are_needed_only_where_a_camera_watches_a_gate_with_liveness_on() {
    let mut config = Config::demo();
    assert!(config.liveness_needed(), "the demo's east camera, 1:N");
    assert!(config.face_models().contains(&"minifasnet-v2".to_string()));
    for g in &mut config.gates {
        g.liveness = Some(OnOff::Off);
    }
    assert!(!config.liveness_needed());
    assert_eq!(config.face_models().len(), 2);
}

#[test]
fn face_mode_chooses_how_faces_open_and_two_factor_stays_an_alias() {
    let gate = |extra: &str| {
        let text = minimal().replacen(
            "[[gates]]\n",
            &format!("[[gates]]\nwiegand_d0_pin = 5\nwiegand_d1_pin = 6\n{extra}\n"),
            1,
        );
        Config::parse(&text, "x.toml").map(|c| c.gates[0].clone())
    };
    // (settings, mode, a face alone opens, liveness on)
    let cases = [
        ("", FaceMode::OneToN, true, true),
        ("face_mode = \"1:N\"", FaceMode::OneToN, true, true),
        (
            "face_mode = \"household\"",
            FaceMode::Household,
            false,
            true,
        ),
        (
            "face_mode = \"household\"\nliveness = \"off\"",
            FaceMode::Household,
            false,
            false,
        ),
        (
            "face_mode = \"card+face\"",
            FaceMode::CardAndFace,
            false,
            false,
        ),
        (
            "two_factor = \"card+face\"",
            FaceMode::CardAndFace,
            false,
            false,
        ),
        (
            "face_mode = \"card+face\"\ntwo_factor = \"card+face\"",
            FaceMode::CardAndFace,
            false,
            false,
        ),
        (
            "face_mode = \"card+face\"\ntwo_factor_hours = [\"daily 22:00-06:00\"]",
            FaceMode::CardAndFace,
            true,
            true,
        ),
    ];
    for (extra, mode, alone, on) in cases {
        let g = gate(extra).unwrap_or_else(|e| panic!("{extra:?}: {e}"));
        assert_eq!(g.face_mode(), mode, "{extra:?}");
        assert_eq!(g.face_alone_opens(), alone, "{extra:?}");
        assert_eq!(g.liveness_on(), on, "{extra:?}");
    }
    assert_eq!(gate("").unwrap().household_wait_s, 10);
    assert_eq!(
        gate("face_mode = \"household\"\nhousehold_wait_s = 20")
            .unwrap()
            .household_wait_s,
        20
    );
    // Errors name the file, the key and the problem.
    let err = |extra: &str| gate(extra).unwrap_err().to_string();
    let e = err("face_mode = \"household\"\ntwo_factor = \"card+face\"");
    assert!(
        e.contains("x.toml") && e.contains("gates[0].face_mode") && e.contains("contradicts"),
        "{e}"
    );
    let e = err("face_mode = \"household\"\ntwo_factor_hours = [\"daily 22:00-06:00\"]");
    assert!(e.contains("gates[0].two_factor_hours"), "{e}");
    let e = err("face_mode = \"1:1\"");
    assert!(e.contains("gates[0].face_mode"), "{e}");
    let e = err("face_mode = \"household\"\nhousehold_wait_s = 0");
    assert!(e.contains("gates[0].household_wait_s"), "{e}");
    // A household gate without a keypad cannot be used.
    let e =
        error_of(&minimal().replacen("[[gates]]\n", "[[gates]]\nface_mode = \"household\"\n", 1));
    assert!(
        e.contains("gates[0].face_mode") && e.contains("keypad"),
        "{e}"
    );
}

#[test]
fn face_threshold_is_a_number_or_calibrated() {
    let face = |extra: &str| Config::parse(&format!("{}\n[face]\n{extra}\n", minimal()), "x.toml");
    assert_eq!(face("").unwrap().face.threshold, None);
    assert_eq!(
        face("threshold = \"calibrated\"").unwrap().face.threshold,
        Some(FaceThreshold::Calibrated)
    );
    assert_eq!(
        face("threshold = 0.5").unwrap().face.threshold,
        Some(FaceThreshold::Fixed(0.5))
    );
    // With calibration, match_threshold is the one in force until it has a tail.
    assert!(face("threshold = \"calibrated\"\nmatch_threshold = 0.5").is_ok());
    let e = face("threshold = 0.5\nmatch_threshold = 0.5")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("face.threshold") && e.contains("not both"),
        "{e}"
    );
    for bad in ["threshold = 1.5", "threshold = \"auto\""] {
        let e = face(bad).unwrap_err().to_string();
        assert!(
            e.contains("x.toml") && e.contains("face.threshold") && e.contains("calibrated"),
            "{bad}: {e}"
        );
    }
    // Written back as read (the CLI rewrites config files).
    let c = face("threshold = \"calibrated\"").unwrap();
    let text = toml::to_string(&c).unwrap();
    assert!(text.contains("threshold = \"calibrated\""), "{text}");
}
