//! The Hikvision ISAPI event push (`EventNotificationAlert`), as ANPR cameras
//! send it to an "HTTP listening" host: either a bare XML document or
//! `multipart/form-data` with the XML part (`anpr.xml`) and JPEG parts
//! (`licensePlatePicture.jpg`, `detectionPicture.jpg`, …) after it.
//!
//! Pure: bytes in, a [`CameraEvent`] or a message naming the problem out.

use base64::Engine as _;
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone};
use roxmltree::{Document, Node};

use super::multipart;
use super::{is_jpeg, CameraEvent, EventSite};

/// What a push amounts to.
#[derive(Debug)]
pub enum HikEvent {
    Anpr(CameraEvent),
    /// Another event type (heartbeat, video loss, …): acknowledged, not acted on.
    Other(String),
}

/// Parses a push. `content_type` is the request's header; `utc_offset_minutes`
/// places a `dateTime` that carries no offset (older firmware) in local time.
pub fn parse(
    content_type: Option<&str>,
    body: &[u8],
    utc_offset_minutes: i32,
) -> Result<HikEvent, String> {
    let mut pictures: Vec<(String, &[u8])> = Vec::new();
    let xml: &[u8] = match content_type.and_then(multipart::boundary) {
        Some(boundary) => {
            let parts = multipart::parts(body, &boundary)?;
            let mut xml = None;
            for part in &parts {
                // Cameras name parts after the file (anpr.xml, detectionPicture.jpg);
                // curl -F names the field and the file apart: look at both.
                let label = format!(
                    "{} {}",
                    part.name.as_deref().unwrap_or(""),
                    part.filename.as_deref().unwrap_or("")
                )
                .trim()
                .to_ascii_lowercase();
                let is_xml = label.split(' ').any(|l| l.ends_with(".xml"))
                    || part
                        .content_type
                        .as_deref()
                        .is_some_and(|t| t.contains("xml"));
                if is_xml && xml.is_none() {
                    xml = Some(part.body);
                } else if is_jpeg(part.body) {
                    pictures.push((label, part.body));
                }
            }
            xml.ok_or("multipart body has no XML part (expected one named like anpr.xml)")?
        }
        None => body,
    };
    let text = std::str::from_utf8(xml).map_err(|e| format!("XML is not UTF-8: {e}"))?;
    let doc = Document::parse(text).map_err(|e| format!("XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "EventNotificationAlert" {
        return Err(format!(
            "expected an <EventNotificationAlert> document, got <{}>",
            root.tag_name().name()
        ));
    }
    let event_type = child_text(root, "eventType").ok_or("<eventType> is missing")?;
    if !event_type.eq_ignore_ascii_case("ANPR") {
        return Ok(HikEvent::Other(event_type.to_string()));
    }
    let channel = match child_text(root, "channelID").or_else(|| child_text(root, "dynChannelID")) {
        Some(c) => Some(
            c.parse::<u32>()
                .map_err(|_| format!("<channelID> {c:?} is not a number"))?,
        ),
        None => None,
    };
    let camera_time = match child_text(root, "dateTime") {
        Some(t) => Some(parse_time(t, utc_offset_minutes)?),
        None => None,
    };
    let anpr = child(root, "ANPR").ok_or("ANPR event without an <ANPR> element")?;
    // Present but empty means the camera saw a vehicle and no plate.
    let plate_text = match child(anpr, "licensePlate") {
        Some(node) => node.text().unwrap_or("").trim().to_string(),
        None => return Err("<ANPR> has no <licensePlate>".into()),
    };
    let confidence = match child_text(anpr, "confidenceLevel") {
        Some(c) => Some(parse_confidence(c)?),
        None => None,
    };
    let snapshot = match pick_picture(&pictures) {
        Some(jpeg) => Some(jpeg.to_vec()),
        None => inline_picture(anpr)?,
    };
    Ok(HikEvent::Anpr(CameraEvent {
        site: EventSite::Channel(channel),
        plate_text,
        confidence,
        camera_time,
        snapshot,
    }))
}

/// The scene picture is the better evidence; the plate close-up is the fallback.
fn pick_picture<'a>(pictures: &[(String, &'a [u8])]) -> Option<&'a [u8]> {
    pictures
        .iter()
        .find(|(label, _)| label.contains("detection") || label.contains("vehicle"))
        .or_else(|| pictures.first())
        .map(|(_, jpeg)| *jpeg)
}

/// Some firmware embeds the picture as base64 `<picData>` in a bare XML push.
fn inline_picture(anpr: Node<'_, '_>) -> Result<Option<Vec<u8>>, String> {
    let Some(list) = child(anpr, "pictureInfoList") else {
        return Ok(None);
    };
    let mut fallback = None;
    for info in list
        .children()
        .filter(|n| n.is_element() && n.tag_name().name() == "pictureInfo")
    {
        let Some(data) = child_text(info, "picData") else {
            continue;
        };
        let kind = child_text(info, "type").unwrap_or("");
        let jpeg = decode_jpeg_base64(data).map_err(|e| format!("<picData> of {kind:?}: {e}"))?;
        if kind == "detectionPicture" || kind == "vehiclePicture" {
            return Ok(Some(jpeg));
        }
        fallback.get_or_insert(jpeg);
    }
    Ok(fallback)
}

/// Base64 (line breaks allowed) that must decode to a JPEG.
pub fn decode_jpeg_base64(data: &str) -> Result<Vec<u8>, String> {
    let compact: String = data.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|e| format!("not valid base64 ({e})"))?;
    if !is_jpeg(&bytes) {
        return Err("decodes to something that is not a JPEG".into());
    }
    Ok(bytes)
}

fn parse_confidence(c: &str) -> Result<f32, String> {
    let value: f32 = c
        .parse()
        .map_err(|_| format!("<confidenceLevel> {c:?} is not a number"))?;
    // ISAPI sends 0–100; a few integrations send a fraction.
    match value {
        v if (0.0..=1.0).contains(&v) && c.contains('.') => Ok(v),
        v if (0.0..=100.0).contains(&v) => Ok(v / 100.0),
        _ => Err(format!("<confidenceLevel> {c:?} is outside 0..=100")),
    }
}

fn parse_time(t: &str, utc_offset_minutes: i32) -> Result<DateTime<FixedOffset>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(t) {
        return Ok(time);
    }
    let naive = NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| {
        format!("<dateTime> {t:?} is not a date-time like 2026-11-27T10:00:00+08:00")
    })?;
    FixedOffset::east_opt(utc_offset_minutes * 60)
        .and_then(|offset| offset.from_local_datetime(&naive).single())
        .ok_or_else(|| {
            format!("<dateTime> {t:?} cannot be placed at UTC offset {utc_offset_minutes} min")
        })
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    // Namespaces vary by firmware (isapi.org, hikvision.com, none): match the local name.
    node.children()
        .find(|n| n.is_element() && n.tag_name().name() == name)
}

fn child_text<'a>(node: Node<'a, '_>, name: &str) -> Option<&'a str> {
    child(node, name)
        .and_then(|n| n.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<EventNotificationAlert version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">
<ipAddress>192.168.1.70</ipAddress>
<channelID>2</channelID>
<dateTime>2026-11-27T10:00:00+08:00</dateTime>
<eventType>ANPR</eventType>
<eventState>active</eventState>
<ANPR><licensePlate>川A12345</licensePlate><confidenceLevel>97</confidenceLevel></ANPR>
</EventNotificationAlert>"#;

    fn anpr(r: Result<HikEvent, String>) -> CameraEvent {
        match r.unwrap() {
            HikEvent::Anpr(e) => e,
            HikEvent::Other(t) => panic!("not ANPR: {t}"),
        }
    }

    #[test]
    fn reads_plate_channel_time_and_confidence_from_bare_xml() {
        let e = anpr(parse(Some("application/xml"), XML.as_bytes(), 480));
        assert_eq!(e.plate_text, "川A12345");
        assert_eq!(e.site, EventSite::Channel(Some(2)));
        assert_eq!(e.confidence, Some(0.97));
        assert_eq!(
            e.camera_time.unwrap().to_rfc3339(),
            "2026-11-27T10:00:00+08:00"
        );
        assert!(e.snapshot.is_none());
    }

    #[test]
    fn places_a_time_without_offset_in_site_local_time() {
        let xml = XML.replace("2026-11-27T10:00:00+08:00", "2026-11-27T10:00:00.250");
        let e = anpr(parse(None, xml.as_bytes(), 480));
        assert_eq!(
            e.camera_time.unwrap().to_rfc3339(),
            "2026-11-27T10:00:00.250+08:00"
        );
    }

    #[test]
    fn acknowledges_other_event_types_without_acting() {
        let xml = XML.replace(
            "<eventType>ANPR</eventType>",
            "<eventType>videoloss</eventType>",
        );
        assert!(
            matches!(parse(None, xml.as_bytes(), 480), Ok(HikEvent::Other(t)) if t == "videoloss")
        );
    }

    #[test]
    fn names_the_problem_in_broken_pushes() {
        let cases = [
            ("<EventNotificationAlert><eventType>ANPR", "XML"),
            ("<Other/>", "expected an <EventNotificationAlert>"),
            ("<EventNotificationAlert/>", "<eventType> is missing"),
            ("<EventNotificationAlert><eventType>ANPR</eventType></EventNotificationAlert>", "without an <ANPR>"),
            ("<EventNotificationAlert><eventType>ANPR</eventType><ANPR/></EventNotificationAlert>", "no <licensePlate>"),
        ];
        for (xml, expected) in cases {
            let err = parse(None, xml.as_bytes(), 480).unwrap_err();
            assert!(err.contains(expected), "{xml}: {err}");
        }
        let bad_channel = XML.replace("<channelID>2</channelID>", "<channelID>two</channelID>");
        assert!(parse(None, bad_channel.as_bytes(), 480)
            .unwrap_err()
            .contains("channelID"));
        let bad_time = XML.replace("2026-11-27T10:00:00+08:00", "yesterday");
        assert!(parse(None, bad_time.as_bytes(), 480)
            .unwrap_err()
            .contains("dateTime"));
    }

    #[test]
    fn rejects_a_document_type_definition() {
        // Entity expansion is how XML bombs work; cameras never send a DTD.
        let xml = format!("<!DOCTYPE x [<!ENTITY a \"aaaa\">]>{XML}");
        let xml = xml.replace("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", "");
        assert!(parse(None, xml.as_bytes(), 480).is_err());
    }

    #[test]
    fn takes_the_scene_picture_from_a_multipart_push() {
        let plate_jpeg = [0xFF, 0xD8, 0xFF, 0x01, 0xFF, 0xD9];
        let scene_jpeg = [0xFF, 0xD8, 0xFF, 0x02, 0xFF, 0xD9];
        let mut body = Vec::new();
        body.extend_from_slice(b"--b\r\nContent-Disposition: form-data; name=\"anpr.xml\"; filename=\"anpr.xml\"\r\nContent-Type: text/xml\r\n\r\n");
        body.extend_from_slice(XML.as_bytes());
        for (name, jpeg) in [
            ("licensePlatePicture.jpg", &plate_jpeg),
            ("detectionPicture.jpg", &scene_jpeg),
        ] {
            body.extend_from_slice(format!("\r\n--b\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: image/jpeg\r\n\r\n").as_bytes());
            body.extend_from_slice(jpeg);
        }
        body.extend_from_slice(b"\r\n--b--\r\n");
        let e = anpr(parse(Some("multipart/form-data; boundary=b"), &body, 480));
        assert_eq!(e.plate_text, "川A12345");
        assert_eq!(e.snapshot.as_deref(), Some(&scene_jpeg[..]));
    }

    #[test]
    fn decodes_an_inline_picture_and_refuses_one_that_is_no_jpeg() {
        let jpeg =
            base64::engine::general_purpose::STANDARD.encode([0xFF, 0xD8, 0xFF, 0x03, 0xFF, 0xD9]);
        let with = |data: &str| {
            XML.replace(
                "<confidenceLevel>97</confidenceLevel>",
                &format!("<confidenceLevel>97</confidenceLevel><pictureInfoList><pictureInfo><type>detectionPicture</type><picData>{data}</picData></pictureInfo></pictureInfoList>"),
            )
        };
        let e = anpr(parse(None, with(&jpeg).as_bytes(), 480));
        assert_eq!(e.snapshot.unwrap()[3], 0x03);
        let not_jpeg = base64::engine::general_purpose::STANDARD.encode(b"GIF89a");
        assert!(parse(None, with(&not_jpeg).as_bytes(), 480)
            .unwrap_err()
            .contains("not a JPEG"));
        assert!(parse(None, with("%%%").as_bytes(), 480)
            .unwrap_err()
            .contains("base64"));
    }
}
