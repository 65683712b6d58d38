//! `gatehouse demo` runs the whole gate on simulated hardware and ends with its summary.

use crate::common;

#[test]
fn demo_runs_the_scripted_gate_and_prints_a_summary() {
    let data = common::Scratch::new("demo");
    let out = common::gatehouse()
        .arg("--data-dir")
        .arg(data.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--camera-seconds", "15"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Each scripted credential gets the decision its rule calls for.
    for expected in [
        "GRANTED east     card 10:***45 张*",
        "DENIED  east     card 10:***22 李* (lease_ended)",
        "DENIED  east     card 10:***33 王* (suspended)",
        "(unknown_credential)",
        "(visitor_pass_used_up)",
        "ALARM   east     (forced_open)",
        "GRANTED car-in   plate 川A12345",
        "DENIED  car-in   plate 川B99999 (unknown_credential)",
        "event log hash chain: intact",
        // The video clip's face (Lin-Manuel Miranda, enrolled from ../shared) opens the gate.
        "GRANTED east     face",
        "(camera_ended)",
        "wait in the outbox",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // The events really are in the database the summary points at.
    let log = common::gatehouse()
        .arg("--config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml"))
        .arg("--data-dir")
        .arg(data.path())
        .args(["log", "--format", "json"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&log.stdout);
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON event per line"))
        .collect();
    let granted = events.iter().filter(|e| e["result"] == "granted").count();
    assert!(granted >= 4, "{text}");
}

#[test]
fn demo_with_a_broker_publishes_every_event_to_the_station_topics() {
    use rumqttc::{Client, Event, MqttOptions, Packet, QoS};
    let broker = common::Mosquitto::start();
    let (client, mut connection) =
        Client::new(MqttOptions::new("station", "127.0.0.1", broker.port), 100);
    client
        .subscribe("gatehouse/v1/qingbo/demo-gw/event/#", QoS::AtLeastOnce)
        .unwrap();
    for event in connection.iter() {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = event {
            break;
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(Event::Incoming(Packet::Publish(p)))
                    if tx.send((p.topic.clone(), p.payload.to_vec())).is_err() =>
                {
                    return
                }
                Err(_) => return,
                _ => {}
            }
        }
    });

    let data = common::Scratch::new("demo-broker");
    let out = common::gatehouse()
        .arg("--data-dir")
        .arg(data.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["demo", "--broker", &broker.url()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("events published to {}", broker.url())),
        "{stdout}"
    );

    // Until the events checked below have arrived (however long a busy machine
    // takes to deliver them), then until the stream goes quiet.
    let mut received: Vec<(String, serde_json::Value)> = Vec::new();
    let seen = |received: &[(String, serde_json::Value)], reason: &str| {
        received.iter().any(|(_, e)| e["reason"] == reason)
    };
    loop {
        let next = if seen(&received, "lease_ended") && seen(&received, "forced_open") {
            rx.recv_timeout(std::time::Duration::from_secs(3)).ok()
        } else {
            rx.recv_timeout(std::time::Duration::from_secs(60)).ok()
        };
        let Some((topic, payload)) = next else { break };
        let event: serde_json::Value = serde_json::from_slice(&payload).expect("JSON event");
        received.push((topic, event));
    }
    let denied_lease = received
        .iter()
        .find(|(_, e)| e["reason"] == "lease_ended")
        .expect("the tenant's refusal reached the station");
    assert!(
        denied_lease.0.ends_with("/event/access"),
        "{}",
        denied_lease.0
    );
    assert!(
        received
            .iter()
            .any(|(t, e)| t.ends_with("/event/alarm") && e["reason"] == "forced_open"),
        "{received:?}"
    );
    // Sequence numbers arrive in order, without gaps.
    let seqs: Vec<i64> = received
        .iter()
        .filter_map(|(_, e)| e["seq"].as_i64())
        .collect();
    let mut sorted = seqs.clone();
    sorted.dedup();
    assert!(sorted.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
}
