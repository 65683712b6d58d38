//! The site's register over TLS: a real mosquitto with only a TLS listener
//! that requires a client certificate (the test PKI of `common::tls`), a
//! registry and a gate pinning the site's CA. A face template enrolled at the
//! registry reaches the gate's register; a gate pinning another CA is refused
//! and says which broker refused it.

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse::domain::ResidentRole;
use gatehouse::secret::DeviceSecret;
use gatehouse::store::faces::{self, NewFace};
use gatehouse::store::people::{self, NewPerson};
use gatehouse::store::site_log;

use crate::common::tls::{make_pki, TlsBroker};
use crate::common::Scratch;
use crate::daemon_support::Running;
use crate::site::{db, same_register, site_config, start_registry_with, wait_caught_up};

const WAIT: Duration = Duration::from_secs(30);

/// The `[site]` TLS keys: the CA file `ca` of the PKI and the gateway's certificate.
fn tls_keys(pki: &Path, ca: &str) -> String {
    let d = pki.display();
    format!(
        "ca_file = \"{d}/{ca}\"\nclient_cert = \"{d}/gateway.pem\"\nclient_key = \"{d}/gateway.key\""
    )
}

fn gate_config(dir: &Path, broker: &str, key: &str, tls: &str) -> std::path::PathBuf {
    site_config(
        dir,
        "north",
        &format!("role = \"gate\"\nbroker = \"{broker}\"\nregistry_key = \"{key}\"\n{tls}"),
    )
}

#[test]
fn a_face_template_enrolled_at_the_registry_reaches_a_gate_over_mqtts() {
    let pki = Scratch::new("site-pki");
    make_pki(pki.path());
    let broker = TlsBroker::start(pki.path(), None);
    let reg = Scratch::new("site-registry-tls");
    let gate = Scratch::new("site-gate-tls");
    let (reg_config, _registry, key) = start_registry_with(
        reg.path(),
        &broker.url(),
        &[("north", gate.path())],
        &tls_keys(pki.path(), "ca.pem"),
    );
    let gate_config = gate_config(
        gate.path(),
        &broker.url(),
        &key,
        &tls_keys(pki.path(), "ca.pem"),
    );
    let north = Running::start(&gate_config, gate.path());

    // A resident and a face template, written at the registry as enrolment does.
    let mut config = gatehouse::config::Config::load(&reg_config).unwrap();
    config.set_data_dir(reg.path().to_path_buf());
    let mut registry = gatehouse::store::Store::open_config(&config).unwrap();
    let person = people::add(
        &registry,
        "test",
        &NewPerson::new("王五", ResidentRole::Owner),
    )
    .unwrap();
    let secret = DeviceSecret::open(&config.device_key_path(), None).unwrap();
    let embedding: Vec<f32> = (0..512).map(|i| ((i % 7) as f32 - 3.0) / 40.0).collect();
    let crop = vec![128u8; 112 * 112 * 3];
    faces::enroll(
        registry.conn_mut(),
        &secret,
        person,
        &[NewFace {
            model: "arcface-test",
            embedding: &embedding,
            crop: &crop,
            eye_px: 60.0,
            sharpness: 200.0,
        }],
        "test",
    )
    .unwrap();

    // The face's entry crossed the TLS broker: the gate holds the same embedding.
    let deadline = Instant::now() + WAIT;
    let stored: Vec<u8> = loop {
        let found = db(gate.path())
            .query_row(
                "SELECT embedding FROM face WHERE person_id = ?1 AND model = 'arcface-test'",
                [person.0],
                |r| r.get(0),
            )
            .ok();
        if let Some(blob) = found {
            break blob;
        }
        assert!(
            Instant::now() < deadline,
            "no face template at the gate after {WAIT:?}:\n{}",
            north.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let expected: Vec<u8> = embedding.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(stored, expected, "the embedding arrived bit for bit");
    wait_caught_up(reg.path(), gate.path());
    same_register(reg.path(), gate.path());
    let log = north.log_text();
    assert!(!log.contains("crosses the LAN unencrypted"), "{log}");
}

#[test]
fn a_gate_pinning_another_ca_is_refused_and_names_the_site_broker() {
    let pki = Scratch::new("site-pki-rogue");
    make_pki(pki.path());
    let broker = TlsBroker::start(pki.path(), None);
    let reg = Scratch::new("site-registry-rogue");
    let gate = Scratch::new("site-gate-rogue");
    let (reg_config, _registry, key) = start_registry_with(
        reg.path(),
        &broker.url(),
        &[("north", gate.path())],
        &tls_keys(pki.path(), "ca.pem"),
    );
    crate::site::enrol(&reg_config, reg.path(), "王五", "10:777");
    let gate_config = gate_config(
        gate.path(),
        &broker.url(),
        &key,
        &tls_keys(pki.path(), "rogue-ca.pem"),
    );
    let north = Running::start(&gate_config, gate.path());
    let needle = format!("site gate: site broker {}: TLS", broker.url());
    let log = north.wait_log(&needle, WAIT);
    let line = log
        .lines()
        .find(|l| l.contains(&needle))
        .unwrap_or_default();
    assert!(
        line.contains("certificate") || line.contains("UnknownIssuer"),
        "{line}"
    );
    assert!(site_log::head(&db(reg.path())).unwrap() > 0);
    assert_eq!(
        site_log::applied_seq(&db(gate.path())).unwrap(),
        0,
        "nothing crossed to a gate that does not trust the broker"
    );
}
