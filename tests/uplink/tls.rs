//! TLS to the station's broker: a real mosquitto that requires a client
//! certificate from the station's CA and a username/password (the test PKI
//! of `common::tls`).

use crate::common;
use crate::common::tls::{make_pki, TlsBroker};
use crate::uplink_support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use gatehouse::station::{Connection, Endpoint};
use gatehouse::store::outbox;
use gatehouse::uplink::{topics, NoGates, Stopped};
use uplink_support::*;

fn uplink_section(pki: &Path, ca: &str) -> String {
    let d = pki.display();
    std::fs::write(pki.join("mqtt-password"), "s3cret-pass\n").unwrap();
    format!(
        "ca_file = \"{d}/{ca}\"\nclient_cert = \"{d}/gateway.pem\"\nclient_key = \"{d}/gateway.key\"\n\
         username = \"gw1\"\npassword_file = \"{d}/mqtt-password\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_over_tls_with_a_client_certificate_and_refuses_an_unknown_ca() {
    let pki = common::Scratch::new("pki");
    make_pki(pki.path());
    let broker = TlsBroker::start(pki.path(), Some(("gw1", "s3cret-pass")));
    let url = broker.url();

    // The station listens over TLS too (its own client certificate, same CA).
    let read = |f: &str| std::fs::read(pki.path().join(f)).unwrap();
    let endpoint = Endpoint {
        broker: url.parse().unwrap(),
        ca_pem: Some(read("ca.pem")),
        client_auth: Some((read("gateway.pem"), read("gateway.key"))),
        credentials: Some(("gw1".into(), "s3cret-pass".into())),
    };
    let mut station = Connection::open(&endpoint, Duration::from_secs(10))
        .await
        .expect("station connects over TLS");
    station
        .subscribe(
            &topics::event_filter(SITE, Some(GATEWAY)),
            Duration::from_secs(10),
        )
        .await
        .unwrap();

    // A gateway that trusts another CA must not talk to this broker.
    let rogue = Gateway::new("tls-rogue", &uplink_section(pki.path(), "rogue-ca.pem"));
    let rogue_store = rogue.store();
    swipe(rogue_store.conn(), 1);
    let task = UplinkTask::start(rogue.settings(Some(&url)), Arc::new(NoGates));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(task.stop().await, Stopped::Shutdown);
    assert_eq!(
        outbox_depth(&rogue_store),
        1,
        "nothing delivered to a broker with an untrusted certificate"
    );

    let gw = Gateway::new("tls", &uplink_section(pki.path(), "ca.pem"));
    let store = gw.store();
    let record = swipe(store.conn(), 2);
    let mut settings = gw.settings(Some(&url));
    assert!(settings.broker.as_ref().unwrap().tls);
    settings.exit_when_drained = true;
    let (_keep_running, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = tokio::time::timeout(
        Duration::from_secs(20),
        gatehouse::uplink::run(settings, Arc::new(NoGates), Default::default(), stop_rx),
    )
    .await
    .expect("drains within 20 s")
    .expect("uplink over TLS");
    assert_eq!(stopped, Stopped::Drained);
    assert_eq!(outbox::depth(store.conn()).unwrap().events, 0);

    let m = tokio::time::timeout(Duration::from_secs(10), station.next_message())
        .await
        .unwrap()
        .unwrap();
    let e: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(e["id"], record.id.as_str());
    assert_valid(&schema("event.schema.json"), "event over TLS", &e);
}
