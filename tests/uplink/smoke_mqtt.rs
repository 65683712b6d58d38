//! Smoke test of the messaging stack: a QoS 1 message through a real mosquitto.

use crate::common;

use std::time::Duration;

use rumqttc::{Client, Event, MqttOptions, Packet, QoS};

#[test]
fn publishes_and_receives_a_qos1_message_through_real_mosquitto() {
    let broker = common::Mosquitto::start();
    let mut sub_opts = MqttOptions::new("smoke-sub", "127.0.0.1", broker.port);
    sub_opts.set_keep_alive(Duration::from_secs(5));
    let (sub, mut sub_conn) = Client::new(sub_opts, 10);
    sub.subscribe("gatehouse/v1/test/#", QoS::AtLeastOnce)
        .expect("subscribe");

    // Wait for the SUBACK before publishing, so the message cannot be missed.
    for event in sub_conn.iter() {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = event {
            break;
        }
        event.expect("subscriber connection");
    }

    let (publisher, mut pub_conn) =
        Client::new(MqttOptions::new("smoke-pub", "127.0.0.1", broker.port), 10);
    publisher
        .publish(
            "gatehouse/v1/test/event",
            QoS::AtLeastOnce,
            false,
            b"hello gate".to_vec(),
        )
        .expect("publish");
    let mut acked = false;
    for event in pub_conn.iter().take(20) {
        if let Ok(Event::Incoming(Packet::PubAck(_))) = event {
            acked = true;
            break;
        }
    }
    assert!(acked, "broker acknowledged the QoS 1 publish");

    let mut received = None;
    for event in sub_conn.iter().take(20) {
        if let Ok(Event::Incoming(Packet::Publish(p))) = event {
            received = Some(p);
            break;
        }
    }
    let p = received.expect("subscriber received the message");
    assert_eq!(p.topic, "gatehouse/v1/test/event");
    assert_eq!(p.qos, QoS::AtLeastOnce);
    assert_eq!(&p.payload[..], b"hello gate");
}
