//! The generic JSON plate event (`POST /lpr/json`), for cameras and
//! integrations that can be told what to send:
//!
//! ```json
//! {"gate": "car-in", "plate": "川A12345", "confidence": 0.97,
//!  "time": "2026-11-27T10:00:00+08:00", "snapshot_jpeg_base64": "/9j/4AAQ…"}
//! ```
//!
//! `gate` and `plate` are required; the rest is optional. Unknown fields are
//! refused so a misspelt `snapshot_jpeg_base64` is an error, not a lost picture.

use chrono::DateTime;
use serde::Deserialize;

use super::hikvision::decode_jpeg_base64;
use super::{CameraEvent, EventSite};
use crate::domain::GateId;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    gate: String,
    plate: String,
    confidence: Option<f32>,
    time: Option<String>,
    snapshot_jpeg_base64: Option<String>,
}

/// Parses and checks a body. Errors name the field and the problem.
pub fn parse(body: &[u8]) -> Result<CameraEvent, String> {
    let b: Body = serde_json::from_slice(body).map_err(|e| format!("JSON body: {e}"))?;
    let gate: GateId = b.gate.parse().map_err(|e| format!("gate: {e}"))?;
    if let Some(c) = b.confidence {
        if !(0.0..=1.0).contains(&c) {
            return Err(format!("confidence: expected 0.0..=1.0, got {c}"));
        }
    }
    let camera_time = match &b.time {
        Some(t) => Some(DateTime::parse_from_rfc3339(t).map_err(|_| {
            format!("time: expected RFC 3339 like 2026-11-27T10:00:00+08:00, got {t:?}")
        })?),
        None => None,
    };
    let snapshot = match &b.snapshot_jpeg_base64 {
        Some(data) => {
            Some(decode_jpeg_base64(data).map_err(|e| format!("snapshot_jpeg_base64: {e}"))?)
        }
        None => None,
    };
    Ok(CameraEvent {
        site: EventSite::Gate(gate),
        plate_text: b.plate,
        confidence: b.confidence,
        camera_time,
        snapshot,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_documented_body() {
        let e = parse(
            r#"{"gate": "car-in", "plate": "川A12345", "confidence": 0.97,
                "time": "2026-11-27T10:00:00+08:00", "snapshot_jpeg_base64": "/9j/2Q=="}"#
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(e.site, EventSite::Gate("car-in".parse().unwrap()));
        assert_eq!(e.plate_text, "川A12345");
        assert_eq!(e.confidence, Some(0.97));
        assert_eq!(e.snapshot.unwrap(), [0xFF, 0xD8, 0xFF, 0xD9]);
    }

    #[test]
    fn names_the_field_of_each_problem() {
        let cases = [
            (r#"{"gate": "car-in"}"#, "missing field `plate`"),
            (r#"{"gate": "car in", "plate": "川A12345"}"#, "gate:"),
            (
                r#"{"gate": "car-in", "plate": "川A12345", "confidence": 97}"#,
                "confidence:",
            ),
            (
                r#"{"gate": "car-in", "plate": "川A12345", "time": "10:00"}"#,
                "time:",
            ),
            (
                r#"{"gate": "car-in", "plate": "川A12345", "snapshot_jpeg_base64": "R0lGODlh"}"#,
                "snapshot_jpeg_base64: decodes to something that is not a JPEG",
            ),
            (
                r#"{"gate": "car-in", "plate": "川A12345", "snapshot": "x"}"#,
                "unknown field `snapshot`",
            ),
            ("plate=川A12345", "JSON body:"),
        ];
        for (body, expected) in cases {
            let err = parse(body.as_bytes()).unwrap_err();
            assert!(err.contains(expected), "{body}: {err}");
        }
    }
}
