//! Still photos (enrolment, `face detect|identify`, evaluation): decoding with
//! errors in the operator's words, and the "exactly one usable face" rule.

use std::fmt;
use std::path::Path;

use opencv::core::{Mat, Vector};
use opencv::imgcodecs;
use opencv::prelude::*;

use super::quality::Rejection;
use super::{AnalyzedFace, Detection, FaceEngine};

/// Photos larger than this are refused before decoding.
pub const MAX_PHOTO_BYTES: u64 = 50 * 1024 * 1024;

/// Detector width for still photos: wider than a camera's, because a photo is
/// processed once and may hold small faces (group photos).
pub const PHOTO_DETECT_WIDTH: u32 = 640;

/// Why a photo cannot be used, one variant per thing the operator can fix.
#[derive(Debug)]
pub enum PhotoError {
    Unreadable(String),
    TooLarge(u64),
    NotAnImage,
    Truncated,
    NoFace,
    /// The boxes of the faces found, best first.
    SeveralFaces(Vec<super::BBox>),
    Quality(Rejection, String),
    Failed(String),
}

impl fmt::Display for PhotoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhotoError::Unreadable(e) => write!(f, "cannot read the file: {e}"),
            PhotoError::TooLarge(n) => write!(
                f,
                "file is {} MB; photos over {} MB are refused",
                n / (1024 * 1024),
                MAX_PHOTO_BYTES / (1024 * 1024)
            ),
            PhotoError::NotAnImage => {
                write!(
                    f,
                    "cannot decode: not a JPEG, PNG or other image OpenCV reads"
                )
            }
            PhotoError::Truncated => write!(
                f,
                "cannot decode: the image file is truncated (incomplete download or copy)"
            ),
            PhotoError::NoFace => write!(f, "no face found"),
            PhotoError::SeveralFaces(boxes) => {
                let at: Vec<String> = boxes
                    .iter()
                    .map(|b| {
                        format!(
                            "{:.0}x{:.0} at ({:.0},{:.0})",
                            b.w,
                            b.h,
                            b.x.max(0.0),
                            b.y.max(0.0)
                        )
                    })
                    .collect();
                write!(
                    f,
                    "{} faces found ({}); an enrolment photo must show exactly one face: crop it to the resident",
                    boxes.len(),
                    at.join(", ")
                )
            }
            PhotoError::Quality(r, detail) => write!(f, "{} ({detail})", r.explain()),
            PhotoError::Failed(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PhotoError {}

/// Reads and decodes an image file into an 8-bit BGR frame.
pub fn load(path: &Path) -> Result<Mat, PhotoError> {
    let meta = std::fs::metadata(path).map_err(|e| PhotoError::Unreadable(e.to_string()))?;
    if !meta.is_file() {
        return Err(PhotoError::Unreadable("not a regular file".into()));
    }
    if meta.len() > MAX_PHOTO_BYTES {
        return Err(PhotoError::TooLarge(meta.len()));
    }
    let bytes = std::fs::read(path).map_err(|e| PhotoError::Unreadable(e.to_string()))?;
    decode(&bytes)
}

/// Decodes image bytes. Truncated JPEG and PNG files are refused even where
/// the decoder would return a half-grey picture.
pub fn decode(bytes: &[u8]) -> Result<Mat, PhotoError> {
    if is_truncated(bytes) {
        return Err(PhotoError::Truncated);
    }
    let buf: Vector<u8> = Vector::from_slice(bytes);
    let mat =
        imgcodecs::imdecode(&buf, imgcodecs::IMREAD_COLOR).map_err(|_| PhotoError::NotAnImage)?;
    if mat.empty() {
        return Err(PhotoError::NotAnImage);
    }
    Ok(mat)
}

/// A JPEG must end with its end-of-image marker, a PNG with its IEND chunk.
pub fn is_truncated(bytes: &[u8]) -> bool {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        // Some writers pad after the marker; allow a little slack.
        let end = bytes.len();
        let mut tail_end = end;
        while tail_end > 0 && bytes[tail_end - 1] == 0 {
            tail_end -= 1;
        }
        let tail = &bytes[tail_end.saturating_sub(64)..tail_end];
        return !tail.windows(2).any(|w| w == [0xFF, 0xD9]);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let tail = &bytes[bytes.len().saturating_sub(64)..];
        return !tail.windows(4).any(|w| w == b"IEND");
    }
    false
}

/// The detector width to use for a still photo of `frame_w` pixels: the
/// photo's own width rounded to 32, between the configured width and
/// [`PHOTO_DETECT_WIDTH`].
pub fn detect_width(frame_w: i32, configured: u32) -> u32 {
    let own = (frame_w.max(1) as u32).div_ceil(32) * 32;
    own.clamp(
        configured.min(PHOTO_DETECT_WIDTH),
        PHOTO_DETECT_WIDTH.max(configured),
    )
}

/// All faces in a photo, best first.
pub fn detect(engine: &mut FaceEngine, frame: &Mat) -> Result<Vec<Detection>, PhotoError> {
    let width = detect_width(frame.cols(), engine.detector.settings.width);
    let mut faces = engine
        .detector
        .detect_at(frame, width)
        .map_err(|e| PhotoError::Failed(format!("{e:#}")))?;
    if engine.detector.settings.refine_landmarks {
        engine
            .detector
            .refine(frame, &mut faces, width)
            .map_err(|e| PhotoError::Failed(format!("{e:#}")))?;
    }
    Ok(faces)
}

/// The one face of an enrolment photo, aligned, checked and embedded.
pub fn single_face(engine: &mut FaceEngine, frame: &Mat) -> Result<AnalyzedFace, PhotoError> {
    let faces = detect(engine, frame)?;
    let detection = match faces.as_slice() {
        [] => return Err(PhotoError::NoFace),
        [one] => *one,
        many => {
            return Err(PhotoError::SeveralFaces(
                many.iter().map(|d| d.bbox).collect(),
            ))
        }
    };
    let face = engine
        .analyze(frame, detection)
        .map_err(|e| PhotoError::Failed(format!("{e:#}")))?;
    if let Err(reason) = face.verdict {
        let q = &face.quality;
        let g = &engine.quality;
        let detail = match reason {
            Rejection::TooSmall => format!(
                "{:.0} px between the eyes, at least {:.0} needed",
                q.eye_px, g.min_eye_px
            ),
            Rejection::Blurred => format!(
                "sharpness {:.1}, at least {:.1} needed",
                q.sharpness, g.min_sharpness
            ),
            Rejection::Pose => format!(
                "yaw {:.2} (limit ±{:.2}), pitch {:.2} (limits {:.2}..{:.2})",
                q.yaw, g.max_abs_yaw, q.pitch, g.pitch_range.0, g.pitch_range.1
            ),
            Rejection::TooDark | Rejection::TooBright => format!(
                "brightness {:.0}, expected {:.0}..{:.0}",
                q.brightness, g.brightness_range.0, g.brightness_range.1
            ),
        };
        return Err(PhotoError::Quality(reason, detail));
    }
    Ok(face)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_jpeg_and_png_are_recognised() {
        assert!(is_truncated(&[0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]));
        assert!(!is_truncated(&[
            0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 0xFF, 0xD9, 0, 0
        ]));
        assert!(is_truncated(b"\x89PNG\r\n\x1a\n1234"));
        assert!(!is_truncated(b"\x89PNG\r\n\x1a\n1234IEND\xaeB`\x82"));
        assert!(!is_truncated(b"hello"));
    }

    #[test]
    fn text_is_not_an_image() {
        assert!(matches!(
            decode(b"hello world\n"),
            Err(PhotoError::NotAnImage)
        ));
    }

    #[test]
    fn decodes_photos_upright_with_their_exif_orientation() {
        // Stored 640×480 with EXIF orientation 6 (rotate 90°): upright, it is 480×640.
        // Left sideways, a printed photo scores as a real face (shared models README).
        let shared = std::env::var_os("GATEHOUSE_SHARED")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
        for name in ["image_T1.jpg", "image_F1.jpg", "image_F2.jpg"] {
            let frame = load(&shared.join("faces/liveness").join(name)).unwrap();
            assert_eq!((frame.cols(), frame.rows()), (480, 640), "{name}");
        }
    }

    #[test]
    fn photo_detect_width_follows_the_photo_within_bounds() {
        assert_eq!(detect_width(250, 320), 320);
        assert_eq!(detect_width(500, 320), 512);
        assert_eq!(detect_width(4000, 320), 640);
        assert_eq!(detect_width(4000, 960), 960);
    }
}
