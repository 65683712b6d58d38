//! Gates' reports to the registry are signed (issue 17): each gate signs its
//! events, applied reports and visitor uses with its own key, which the
//! registry pins in `[site] gate_keys`. A report signed with another key,
//! unsigned, or from a gate the registry does not pin raises a
//! `site_log_rejected` alarm at the registry, and nothing of it is stored.

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse::site::wire::{self, Topics};
use gatehouse::store::site_gates::{self, GateEvents};

use crate::common::{Mosquitto, Scratch};
use crate::daemon_support::{cli, stdout, Running};
use crate::site::{
    db, enrol, gate_key, named_gate_config, publish, start_registry, swipe, wait_synced,
};

const SITE: &str = "qingbo";
const WAIT: Duration = Duration::from_secs(30);

/// The registry's alarms about gates' reports: (why, from_gate, report).
fn refusals(registry_data: &Path) -> Vec<(String, String, String)> {
    db(registry_data)
        .prepare(
            "SELECT json_extract(detail, '$.why'), json_extract(detail, '$.from_gate'),
                    json_extract(detail, '$.report')
             FROM event WHERE kind = 'alarm' AND reason = 'site_log_rejected' ORDER BY seq",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn wait_refusals(registry_data: &Path, n: usize) -> Vec<(String, String, String)> {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = refusals(registry_data);
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "only {found:?} refusals at the registry"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stored(registry_data: &Path, id: &str) -> bool {
    db(registry_data)
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM event WHERE id = ?1)",
            [id],
            |r| r.get(0),
        )
        .unwrap()
}

#[test]
fn a_forged_event_report_is_refused_at_the_registry_and_a_signed_one_is_stored() {
    let broker = Mosquitto::start();
    let reg = Scratch::new("site-reports-registry");
    let gate = Scratch::new("site-reports-gate");
    let (reg_config, _registry, key) =
        start_registry(reg.path(), &broker.url(), &[("north", gate.path())]);
    let gate_config = named_gate_config(gate.path(), "north", &broker.url(), &key);
    // `config site-key` prints the gate's public key, the one the registry pins.
    let printed = stdout(&cli(&gate_config, gate.path(), &["config", "site-key"]));
    assert_eq!(printed.trim(), gate_key(gate.path()));
    let north = Running::start(&gate_config, gate.path());
    enrol(&reg_config, reg.path(), "王五", "10:777");
    wait_synced(reg.path(), gate.path(), &north);
    let s = swipe(&gate_config, gate.path(), "10:777");
    assert!(s.contains("east: GRANTED card"), "{s}");

    // The gate's own, signed, report of the swipe is stored at the registry.
    let real = site_gates::events_after(&db(gate.path()), 0, 100)
        .unwrap()
        .into_iter()
        .find(|e| e.gate.as_deref() == Some("east"))
        .expect("the swipe's event at the gate");
    let deadline = Instant::now() + WAIT;
    while !stored(reg.path(), &real.id) {
        assert!(
            Instant::now() < deadline,
            "the gate's signed event did not reach the registry"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // A swipe nobody made, reported as the gate's: another key, no signature,
    // and from a gate the registry does not pin.
    let mut fake = real.clone();
    fake.id = format!("{}ffff", &real.id[..real.id.len() - 4]);
    fake.seq = real.seq + 1000;
    let batch = GateEvents {
        events: vec![fake.clone()],
    };
    let topics = Topics::new(SITE);
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let forged = wire::report_message(&stranger, SITE, "north", wire::EVENTS, &batch).unwrap();
    publish(broker.port, &topics.events("north"), forged);
    assert_eq!(
        wait_refusals(reg.path(), 1)[0],
        ("bad_signature".into(), "north".into(), "event".into())
    );
    publish(
        broker.port,
        &topics.events("north"),
        serde_json::to_vec(&batch).unwrap(),
    );
    assert_eq!(
        wait_refusals(reg.path(), 2)[1],
        ("unsigned".into(), "north".into(), "event".into())
    );
    let ghost = wire::report_message(&stranger, SITE, "ghost", wire::EVENTS, &batch).unwrap();
    publish(broker.port, &topics.events("ghost"), ghost);
    assert_eq!(
        wait_refusals(reg.path(), 3)[2],
        ("unknown_gate".into(), "ghost".into(), "event".into())
    );

    // Nothing of them was stored; the gate's next swipe still is.
    assert!(!stored(reg.path(), &fake.id), "a forged event was stored");
    let s = swipe(&gate_config, gate.path(), "10:777");
    assert!(s.contains("east: GRANTED card"), "{s}");
    let deadline = Instant::now() + WAIT;
    loop {
        let at_registry: i64 = db(reg.path())
            .query_row(
                "SELECT count(*) FROM event WHERE gate = 'north/east' AND result = 'granted'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if at_registry == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{at_registry} of the gate's 2 swipes at the registry"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!stored(reg.path(), &fake.id), "a forged event was stored");
}
