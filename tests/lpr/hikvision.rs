//! `POST /lpr/hikvision` over real HTTP: the ISAPI `EventNotificationAlert`
//! ANPR push, bare and as multipart/form-data with its JPEG parts, against
//! the real endpoint and a sink over a real SQLite register.

use crate::common;
use crate::lpr_support;

use common::{shared_dir, Scratch};
use lpr_support::{config, jpeg, post, snapshot_files, Endpoint, RegisterSink, TOKEN};

/// A push as a Hikvision ANPR camera sends it (tests/fixtures/lpr/hikvision_anpr.xml).
fn anpr_xml(plate: &str, channel: u32) -> String {
    let xml = include_str!("../fixtures/lpr/hikvision_anpr.xml");
    xml.replace("川A12345", plate).replace(
        "<channelID>1</channelID>",
        &format!("<channelID>{channel}</channelID>"),
    )
}

/// multipart/form-data the way the camera's "HTTP listening" upload is framed.
fn multipart(xml: &str, pictures: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    multipart_with("anpr.xml", "application/xml", xml, pictures)
}

fn multipart_with(
    xml_name: &str,
    xml_type: &str,
    xml: &str,
    pictures: &[(&str, &[u8])],
) -> (String, Vec<u8>) {
    let boundary = "---------------------------7e13971310878";
    let mut body = Vec::new();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{xml_name}\"; filename=\"{xml_name}\"\r\nContent-Type: {xml_type}\r\nContent-Length: {}\r\n\r\n",
            xml.len()
        )
        .as_bytes(),
    );
    body.extend_from_slice(xml.as_bytes());
    for (name, jpeg) in pictures {
        body.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                jpeg.len()
            )
            .as_bytes(),
        );
        body.extend_from_slice(jpeg);
    }
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn push(endpoint: &Endpoint, content_type: &str, body: &[u8]) -> lpr_support::Reply {
    post(
        &endpoint.url("/lpr/hikvision"),
        content_type,
        Some(TOKEN),
        body,
    )
}

#[test]
fn bare_xml_push_of_a_registered_plate_opens() {
    let dir = Scratch::new("lpr-hik-open");
    let sink = RegisterSink::open(dir.path());
    sink.register("张三", "川A12345", "active");
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());

    let reply = push(
        &endpoint,
        "application/xml; charset=UTF-8",
        anpr_xml("川A12345", 1).as_bytes(),
    );

    assert_eq!(reply.status, 200, "{:?}", reply.json);
    assert_eq!(reply.json["result"], "open");
    assert_eq!(reply.json["gate"], "car-in");
    let calls = sink.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].channel, Some(1));
    assert_eq!(calls[0].confidence, Some(0.97));
    assert_eq!(
        calls[0].camera_time.unwrap().to_rfc3339(),
        "2026-11-27T10:00:00.318+08:00"
    );
    assert_eq!(
        sink.events()[0].detail.as_ref().unwrap()["source"],
        "hikvision"
    );
}

#[test]
fn multipart_push_keeps_the_scene_picture_with_the_refusal_event() {
    let dir = Scratch::new("lpr-hik-multipart");
    let sink = RegisterSink::open(dir.path());
    sink.register("张三", "川A12345", "active");
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());
    let plate_crop = jpeg(&shared_dir(), "kit_with_rose.jpg");
    let scene = jpeg(&shared_dir(), "group_six.jpg");

    let (content_type, body) = multipart(
        &anpr_xml("浙B D12345", 1),
        &[
            ("licensePlatePicture.jpg", &plate_crop),
            ("detectionPicture.jpg", &scene),
        ],
    );
    let reply = push(&endpoint, &content_type, &body);

    assert_eq!(reply.status, 200, "{:?}", reply.json);
    assert_eq!(reply.json["result"], "refused");
    assert_eq!(reply.json["plate"], "浙BD12345");
    let events = sink.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason.as_deref(), Some("unknown_credential"));
    let name = events[0]
        .snapshot
        .as_deref()
        .expect("the event keeps the picture");
    let saved = std::fs::read(dir.path().join("snapshots").join(name)).unwrap();
    assert_eq!(
        saved, scene,
        "the scene picture, not the plate crop, is kept"
    );
    assert_eq!(
        snapshot_files(dir.path()).len(),
        1,
        "only one picture is kept"
    );
}

#[test]
fn channels_map_to_their_gates_and_unmapped_ones_get_404() {
    let dir = Scratch::new("lpr-hik-channel");
    let sink = RegisterSink::open(dir.path());
    sink.register("张三", "川A12345", "active");
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());

    let reply = push(
        &endpoint,
        "application/xml",
        anpr_xml("川A12345", 2).as_bytes(),
    );
    assert_eq!(reply.json["gate"], "car-out");
    assert_eq!(sink.calls()[0].gate.as_str(), "car-out");

    let reply = push(
        &endpoint,
        "application/xml",
        anpr_xml("川A12345", 3).as_bytes(),
    );
    assert_eq!(reply.status, 404);
    let message = reply.json["error"].as_str().unwrap();
    assert!(message.contains("127.0.0.1 channel 3"), "{message}");
    assert_eq!(sink.calls().len(), 1);
}

#[test]
fn malformed_pushes_get_400_and_change_nothing() {
    let dir = Scratch::new("lpr-hik-malformed");
    let sink = RegisterSink::open(dir.path());
    sink.register("张三", "川A12345", "active");
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());
    let scene = jpeg(&shared_dir(), "group_six.jpg");
    let good = anpr_xml("川A12345", 1);

    let truncated = &good[..good.len() / 2];
    // The XML part neither named nor typed as XML.
    let (ct_no_xml, no_xml) = multipart_with(
        "anpr.bin",
        "application/octet-stream",
        &good,
        &[("detectionPicture.jpg", &scene)],
    );
    let (ct_bad_plate, bad_plate) =
        multipart(&anpr_xml("XA12345", 1), &[("detectionPicture.jpg", &scene)]);
    let (ct_unclosed, mut unclosed) = multipart(&good, &[("detectionPicture.jpg", &scene)]);
    unclosed.truncate(unclosed.len() - 60);

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("application/xml", truncated.as_bytes().to_vec(), "XML:"),
        (
            "application/xml",
            b"<ResponseStatus><statusCode>1</statusCode></ResponseStatus>".to_vec(),
            "expected an <EventNotificationAlert>",
        ),
        (
            "application/xml",
            good.replace("<licensePlate>川A12345</licensePlate>", "")
                .into_bytes(),
            "no <licensePlate>",
        ),
        (
            "application/xml",
            good.replace("<channelID>1</channelID>", "<channelID>one</channelID>")
                .into_bytes(),
            "<channelID> \"one\" is not a number",
        ),
        (
            "application/xml",
            good.replace(
                "<confidenceLevel>97</confidenceLevel>",
                "<confidenceLevel>970</confidenceLevel>",
            )
            .into_bytes(),
            "outside 0..=100",
        ),
        (&ct_no_xml, no_xml, "no XML part"),
        (
            &ct_bad_plate,
            bad_plate,
            "must start with a province character",
        ),
        (&ct_unclosed, unclosed, "no closing boundary"),
    ];
    for (content_type, body, expected) in &cases {
        let reply = push(&endpoint, content_type, body);
        assert_eq!(reply.status, 400, "{expected}: {:?}", reply.json);
        let message = reply.json["error"].as_str().unwrap_or_default();
        assert!(
            message.contains(expected),
            "expected {expected:?} in {message:?}"
        );
    }
    assert!(
        sink.calls().is_empty(),
        "the sink was called for a malformed push"
    );
    assert!(sink.events().is_empty());
    assert!(snapshot_files(dir.path()).is_empty());
}

#[test]
fn heartbeats_and_plateless_vehicles_are_acknowledged_without_acting() {
    let dir = Scratch::new("lpr-hik-ignored");
    let sink = RegisterSink::open(dir.path());
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());

    let heartbeat = r#"<?xml version="1.0" encoding="UTF-8"?>
<EventNotificationAlert version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<ipAddress>192.168.1.70</ipAddress><channelID>1</channelID>
<dateTime>2026-11-27T10:00:00+08:00</dateTime><activePostCount>0</activePostCount>
<eventType>videoloss</eventType><eventState>inactive</eventState>
<eventDescription>videoloss alarm</eventDescription></EventNotificationAlert>"#;
    let reply = push(&endpoint, "application/xml", heartbeat.as_bytes());
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["result"], "ignored");

    let reply = push(
        &endpoint,
        "application/xml",
        anpr_xml("无车牌", 1).as_bytes(),
    );
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json["result"], "ignored");
    assert!(reply.json["reason"].as_str().unwrap().contains("no plate"));
    assert!(sink.calls().is_empty());
}

#[test]
fn token_in_the_url_serves_cameras_that_cannot_set_headers() {
    let dir = Scratch::new("lpr-hik-query-token");
    let sink = RegisterSink::open(dir.path());
    sink.register("张三", "川A12345", "active");
    let endpoint = Endpoint::start(&config(dir.path(), "\"127.0.0.1\""), sink.clone());
    let body = anpr_xml("川A12345", 1);

    let url = endpoint.url(&format!("/lpr/hikvision?token={TOKEN}"));
    let reply = post(&url, "application/xml", None, body.as_bytes());
    assert_eq!(reply.json["result"], "open", "{:?}", reply.json);

    let url = endpoint.url("/lpr/hikvision?token=test-lpr-token-WRONG");
    assert_eq!(
        post(&url, "application/xml", None, body.as_bytes()).status,
        401
    );
    assert_eq!(sink.calls().len(), 1);
}
