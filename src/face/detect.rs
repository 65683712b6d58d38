//! Face detection: the YuNet ONNX detector run through ONNX Runtime.
//!
//! We run the ONNX ourselves (not OpenCV's FaceDetectorYN, which cannot load
//! the newer YuNet files) so detection and recognition share one runtime and
//! one place to tune threads. The frame is letterboxed to a fixed width
//! (padded right/bottom to multiples of 32), the cls/obj/bbox/kps heads of the
//! 8/16/32 strides are decoded, thresholded and NMS-filtered, and boxes and
//! the five landmarks are mapped back to frame pixels.
//!
//! A model that declares a fixed input (YuNet 2023mar, the product default:
//! 1×3×640×640) refuses any other size, so its letterbox is taken from the
//! model's own input shape ([`letterbox_fixed`]) and the configured width does
//! not apply to it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use opencv::core::{Mat, Size};
use opencv::imgproc;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::TensorRef;

use super::cv;
use crate::models::{ChannelOrder, ModelSpec};

/// Right eye, left eye, nose tip, right mouth corner, left mouth corner (the
/// subject's right eye is on the image's left), in frame pixels.
pub type Landmarks = [[f32; 2]; 5];

/// An axis-aligned box in pixels (top-left corner and size).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl BBox {
    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    pub fn iou(&self, other: &BBox) -> f32 {
        let x1 = self.x.max(other.x);
        let y1 = self.y.max(other.y);
        let x2 = (self.x + self.w).min(other.x + other.w);
        let y2 = (self.y + self.h).min(other.y + other.h);
        let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    pub fn scaled(&self, factor: f32) -> BBox {
        BBox {
            x: self.x * factor,
            y: self.y * factor,
            w: self.w * factor,
            h: self.h * factor,
        }
    }
}

/// One detected face.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
    pub landmarks: Landmarks,
}

impl Detection {
    /// Distance between the eye landmarks in pixels: the face's usable size.
    pub fn eye_distance(&self) -> f32 {
        let [r, l] = [self.landmarks[0], self.landmarks[1]];
        ((r[0] - l[0]).powi(2) + (r[1] - l[1]).powi(2)).sqrt()
    }

    fn scaled(&self, factor: f32) -> Detection {
        let mut landmarks = self.landmarks;
        for p in &mut landmarks {
            p[0] *= factor;
            p[1] *= factor;
        }
        Detection {
            bbox: self.bbox.scaled(factor),
            score: self.score,
            landmarks,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DetectorSettings {
    /// Letterbox width in pixels (a multiple of `multiple`).
    pub width: u32,
    pub score_threshold: f32,
    pub nms_iou: f32,
    pub multiple: u32,
    /// `[face] refine_landmarks`: a second pass per face ([`Detector::refine`]).
    pub refine_landmarks: bool,
}

impl DetectorSettings {
    pub fn from_config(face: &crate::config::Face, spec: &ModelSpec) -> DetectorSettings {
        DetectorSettings {
            width: face.detect_width,
            score_threshold: face.detect_score,
            nms_iou: spec.nms_iou.unwrap_or(0.3),
            multiple: spec.input_multiple.unwrap_or(32).max(1),
            refine_landmarks: face.refine_landmarks,
        }
    }
}

/// How a frame maps onto the detector input: scaled by `scale` to
/// `resized_w × resized_h`, then zero-padded right/bottom to `input_w × input_h`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    pub scale: f32,
    pub resized_w: u32,
    pub resized_h: u32,
    pub input_w: u32,
    pub input_h: u32,
}

/// Inputs taller than this many times the width are scaled to fit the height
/// instead, so a strange aspect ratio cannot blow up the tensor.
const MAX_ASPECT: u32 = 3;

/// The letterbox for a `frame_w × frame_h` frame at detector width `width`.
pub fn letterbox(frame_w: u32, frame_h: u32, width: u32, multiple: u32) -> Letterbox {
    let round_up = |v: u32| v.div_ceil(multiple).max(1) * multiple;
    let input_w = round_up(width);
    let max_h = input_w * MAX_ASPECT;
    let fw = frame_w.max(1) as f32;
    let fh = frame_h.max(1) as f32;
    let scale = (input_w as f32 / fw).min(max_h as f32 / fh);
    let resized_w = ((fw * scale).round() as u32).clamp(1, input_w);
    let resized_h = ((fh * scale).round() as u32).clamp(1, max_h);
    Letterbox {
        scale,
        resized_w,
        resized_h,
        input_w,
        input_h: round_up(resized_h),
    }
}

/// The letterbox for a model whose input is fixed at `input_w × input_h`:
/// the frame is scaled (up or down) to fit inside and padded right/bottom.
pub fn letterbox_fixed(frame_w: u32, frame_h: u32, input_w: u32, input_h: u32) -> Letterbox {
    let fw = frame_w.max(1) as f32;
    let fh = frame_h.max(1) as f32;
    let scale = (input_w as f32 / fw).min(input_h as f32 / fh);
    Letterbox {
        scale,
        resized_w: ((fw * scale).round() as u32).clamp(1, input_w),
        resized_h: ((fh * scale).round() as u32).clamp(1, input_h),
        input_w,
        input_h,
    }
}

/// The input `(width, height)` a model declares, when both are fixed
/// (`[1,3,H,W]` with H, W > 0); `None` for dynamic sides.
pub fn fixed_input_size(shape: &[i64]) -> Option<(u32, u32)> {
    match shape {
        [_, _, h, w] if *h > 0 && *w > 0 => Some((*w as u32, *h as u32)),
        _ => None,
    }
}

/// The raw output heads of one stride, each flattened row-major.
pub struct StrideOutput<'a> {
    pub stride: u32,
    pub cls: &'a [f32],
    pub obj: &'a [f32],
    pub bbox: &'a [f32],
    pub kps: &'a [f32],
}

pub const STRIDES: [u32; 3] = [8, 16, 32];

/// Decodes YuNet heads into detections in detector-input pixels (before NMS).
pub fn decode(
    heads: &[StrideOutput<'_>],
    input_w: u32,
    input_h: u32,
    threshold: f32,
) -> Vec<Detection> {
    let mut out = Vec::new();
    for head in heads {
        let s = head.stride as f32;
        let cols = (input_w / head.stride) as usize;
        let rows = (input_h / head.stride) as usize;
        let n = (cols * rows)
            .min(head.cls.len())
            .min(head.obj.len())
            .min(head.bbox.len() / 4)
            .min(head.kps.len() / 10);
        for i in 0..n {
            let score = (head.cls[i].clamp(0.0, 1.0) * head.obj[i].clamp(0.0, 1.0)).sqrt();
            if score < threshold {
                continue;
            }
            let col = (i % cols) as f32;
            let row = (i / cols) as f32;
            let b = &head.bbox[i * 4..i * 4 + 4];
            let cx = (col + b[0]) * s;
            let cy = (row + b[1]) * s;
            let w = b[2].exp() * s;
            let h = b[3].exp() * s;
            let k = &head.kps[i * 10..i * 10 + 10];
            let mut landmarks = [[0.0f32; 2]; 5];
            for (n, p) in landmarks.iter_mut().enumerate() {
                *p = [(k[2 * n] + col) * s, (k[2 * n + 1] + row) * s];
            }
            out.push(Detection {
                bbox: BBox {
                    x: cx - w / 2.0,
                    y: cy - h / 2.0,
                    w,
                    h,
                },
                score,
                landmarks,
            });
        }
    }
    out
}

/// Greedy non-maximum suppression: keeps the best-scoring box of each overlapping group.
pub fn nms(mut detections: Vec<Detection>, iou: f32) -> Vec<Detection> {
    detections.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Detection> = Vec::new();
    for d in detections {
        if kept.iter().all(|k| k.bbox.iou(&d.bbox) <= iou) {
            kept.push(d);
        }
    }
    kept
}

/// Per-channel preprocessing from a manifest entry: `(v * scale - mean) / std`,
/// with the channels in the model's order.
#[derive(Clone, Copy, Debug)]
pub struct Normalize {
    pub rgb: bool,
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalize {
    pub fn from_spec(spec: &ModelSpec) -> Normalize {
        Normalize {
            rgb: spec.channel_order == ChannelOrder::Rgb,
            scale: spec.scale,
            mean: spec.mean,
            std: spec.std,
        }
    }

    /// Writes a continuous 8-bit BGR image into `out` (one NCHW image of
    /// `plane_w × plane_h`), top-left aligned; the rest of `out` is left alone.
    pub fn write_nchw(
        &self,
        bgr: &[u8],
        img_w: usize,
        img_h: usize,
        out: &mut [f32],
        plane_w: usize,
        plane_h: usize,
    ) {
        let plane = plane_w * plane_h;
        // Precomputed lookup per channel: 256 entries, so the loop is a copy.
        let mut lut = [[0.0f32; 256]; 3];
        for (c, table) in lut.iter_mut().enumerate() {
            for (v, slot) in table.iter_mut().enumerate() {
                *slot = (v as f32 * self.scale - self.mean[c]) / self.std[c];
            }
        }
        for y in 0..img_h.min(plane_h) {
            let row = &bgr[y * img_w * 3..(y + 1) * img_w * 3];
            for x in 0..img_w.min(plane_w) {
                let px = &row[x * 3..x * 3 + 3];
                let (first, third) = if self.rgb { (2, 0) } else { (0, 2) };
                let at = y * plane_w + x;
                out[at] = lut[0][px[first] as usize];
                out[plane + at] = lut[1][px[1] as usize];
                out[2 * plane + at] = lut[2][px[third] as usize];
            }
        }
    }
}

/// The second, per-face pass of [`Detector::refine`] looks at a crop of this
/// many times the face box, detected at [`REFINE_WIDTH`], so the face is about
/// 150 pixels wide there. Chosen on gate-like frames (BENCHMARKS.md,
/// "Landmarks"): the face's size in the second pass is what counts (80 px
/// helped little, 150 px most of the way, 240 px a little more at twice the
/// cost).
pub const REFINE_CROP: f32 = 1.5;
pub const REFINE_WIDTH: u32 = 224;

/// The second pass's face must overlap the first's this much to be taken
/// for the same face.
const REFINE_MIN_IOU: f32 = 0.5;

/// The YuNet detector with its ONNX Runtime session.
pub struct Detector {
    session: Session,
    input_name: String,
    normalize: Normalize,
    pub settings: DetectorSettings,
    /// The model's fixed input `(width, height)`, if it declares one.
    fixed_input: Option<(u32, u32)>,
    tensor: Vec<f32>,
}

impl Detector {
    pub fn load(
        spec: &ModelSpec,
        path: &Path,
        threads: usize,
        settings: DetectorSettings,
    ) -> Result<Detector> {
        let session = crate::onnx::session(path, threads)?;
        for name in ["cls_8", "obj_8", "bbox_8", "kps_8"] {
            if !session.outputs().iter().any(|o| o.name() == name) {
                bail!(
                    "model {} has no output {name:?}; is it a YuNet face detector?",
                    path.display()
                );
            }
        }
        let fixed_input = session
            .inputs()
            .iter()
            .find(|i| i.name() == spec.input_name)
            .and_then(|i| i.dtype().tensor_shape().map(|s| s.to_vec()))
            .and_then(|shape| fixed_input_size(&shape));
        Ok(Detector {
            session,
            input_name: spec.input_name.clone(),
            normalize: Normalize::from_spec(spec),
            settings,
            fixed_input,
            tensor: Vec::new(),
        })
    }

    /// The model's fixed input `(width, height)`, when it declares one
    /// (then every frame is letterboxed into it, whatever width is asked for).
    pub fn fixed_input(&self) -> Option<(u32, u32)> {
        self.fixed_input
    }

    /// Faces in a BGR frame at the configured width, best first, with their
    /// landmarks refined when the settings ask for it ([`Detector::refine`]).
    pub fn detect(&mut self, frame: &Mat) -> Result<Vec<Detection>> {
        let mut faces = self.detect_at(frame, self.settings.width)?;
        if self.settings.refine_landmarks {
            self.refine(frame, &mut faces, self.settings.width)?;
        }
        Ok(faces)
    }

    /// Finds each face's landmarks again on a crop of [`REFINE_CROP`] × the
    /// face, detected at [`REFINE_WIDTH`] (the face about 150 pixels wide
    /// there): at a camera's detection width a face across the street is a
    /// few dozen pixels and its landmarks, hence the alignment the embedder
    /// sees, are coarse. `first_width` is the width the faces were detected
    /// at; faces already that large there are left alone. Boxes and scores
    /// are kept; a face the second pass does not find keeps its landmarks.
    /// Only for detectors that take any input size: a fixed-input model would
    /// pay a whole detection per face.
    pub fn refine(&mut self, frame: &Mat, faces: &mut [Detection], first_width: u32) -> Result<()> {
        if self.fixed_input.is_some() || faces.is_empty() {
            return Ok(());
        }
        let (fw, fh) = (frame.cols() as f32, frame.rows() as f32);
        let first_scale = letterbox(
            frame.cols().max(1) as u32,
            frame.rows().max(1) as u32,
            first_width,
            self.settings.multiple,
        )
        .scale;
        for face in faces.iter_mut() {
            let b = face.bbox;
            // Already as large in the first pass as the second would make it.
            if b.w.max(b.h) * first_scale >= REFINE_WIDTH as f32 / REFINE_CROP {
                continue;
            }
            let side = REFINE_CROP * b.w.max(b.h);
            let (cx, cy) = (b.x + b.w / 2.0, b.y + b.h / 2.0);
            let x0 = (cx - side / 2.0).max(0.0).floor();
            let y0 = (cy - side / 2.0).max(0.0).floor();
            let x1 = (cx + side / 2.0).min(fw).ceil();
            let y1 = (cy + side / 2.0).min(fh).ceil();
            if x1 - x0 < 16.0 || y1 - y0 < 16.0 {
                continue;
            }
            let roi = cv(
                Mat::roi(
                    frame,
                    opencv::core::Rect::new(
                        x0 as i32,
                        y0 as i32,
                        (x1 - x0) as i32,
                        (y1 - y0) as i32,
                    ),
                ),
                "landmark refinement crop",
            )?;
            let roi = cv(roi.try_clone(), "copy landmark refinement crop")?;
            let again = self.detect_at(&roi, REFINE_WIDTH)?;
            let local = BBox {
                x: b.x - x0,
                y: b.y - y0,
                ..b
            };
            let best = again
                .iter()
                .map(|d| (d.bbox.iou(&local), d))
                .filter(|(iou, _)| *iou >= REFINE_MIN_IOU)
                .max_by(|a, b| a.0.total_cmp(&b.0));
            if let Some((_, found)) = best {
                for (mine, theirs) in face.landmarks.iter_mut().zip(found.landmarks.iter()) {
                    *mine = [theirs[0] + x0, theirs[1] + y0];
                }
            }
        }
        Ok(())
    }

    /// Faces in a BGR frame with the letterbox at `width`, best first.
    pub fn detect_at(&mut self, frame: &Mat, width: u32) -> Result<Vec<Detection>> {
        let size = cv(frame.size(), "frame size")?;
        if size.width <= 0 || size.height <= 0 || frame.typ() != opencv::core::CV_8UC3 {
            bail!(
                "expected a non-empty 8-bit BGR frame, got {}x{} of type {}",
                size.width,
                size.height,
                frame.typ()
            );
        }
        let lb = match self.fixed_input {
            Some((w, h)) => letterbox_fixed(size.width as u32, size.height as u32, w, h),
            None => letterbox(
                size.width as u32,
                size.height as u32,
                width,
                self.settings.multiple,
            ),
        };
        let mut resized = Mat::default();
        cv(
            imgproc::resize(
                frame,
                &mut resized,
                Size::new(lb.resized_w as i32, lb.resized_h as i32),
                0.0,
                0.0,
                imgproc::INTER_LINEAR,
            ),
            "cannot resize frame for detection",
        )?;
        let resized = if resized.is_continuous() {
            resized
        } else {
            cv(resized.try_clone(), "copy frame")?
        };
        let (iw, ih) = (lb.input_w as usize, lb.input_h as usize);
        self.tensor.clear();
        self.tensor.resize(3 * iw * ih, 0.0);
        self.normalize.write_nchw(
            cv(resized.data_bytes(), "frame pixels")?,
            lb.resized_w as usize,
            lb.resized_h as usize,
            &mut self.tensor,
            iw,
            ih,
        );
        let input = TensorRef::from_array_view(([1usize, 3, ih, iw], self.tensor.as_slice()))
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("cannot build detector input")?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => input])
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("face detector failed")?;
        let get = |name: String| -> Result<&[f32]> {
            let value = outputs
                .get(&name)
                .with_context(|| format!("detector output {name} missing"))?;
            let (_, data) = value
                .try_extract_tensor::<f32>()
                .map_err(|e| anyhow::anyhow!("{e}"))
                .with_context(|| format!("detector output {name} is not f32"))?;
            Ok(data)
        };
        let mut heads = Vec::with_capacity(3);
        for stride in STRIDES {
            heads.push(StrideOutput {
                stride,
                cls: get(format!("cls_{stride}"))?,
                obj: get(format!("obj_{stride}"))?,
                bbox: get(format!("bbox_{stride}"))?,
                kps: get(format!("kps_{stride}"))?,
            });
        }
        let raw = decode(
            &heads,
            lb.input_w,
            lb.input_h,
            self.settings.score_threshold,
        );
        let kept = nms(raw, self.settings.nms_iou);
        Ok(kept.into_iter().map(|d| d.scaled(1.0 / lb.scale)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_keeps_aspect_and_pads_to_multiples_of_32() {
        let lb = letterbox(910, 1137, 512, 32);
        assert_eq!((lb.input_w, lb.input_h), (512, 640));
        assert_eq!(lb.resized_w, 512);
        assert_eq!(lb.resized_h, 640);
        let lb = letterbox(1920, 1080, 320, 32);
        assert_eq!((lb.resized_w, lb.resized_h), (320, 180));
        assert_eq!((lb.input_w, lb.input_h), (320, 192));
        // A very tall image is fitted to three times the width instead.
        let lb = letterbox(100, 10_000, 320, 32);
        assert_eq!(lb.input_h, 960);
        assert!(lb.resized_w <= 320 && lb.resized_w >= 1);
    }

    #[test]
    fn fixed_input_letterbox_fits_the_frame_inside_the_declared_shape() {
        assert_eq!(fixed_input_size(&[1, 3, 640, 640]), Some((640, 640)));
        assert_eq!(fixed_input_size(&[1, 3, -1, -1]), None);
        assert_eq!(fixed_input_size(&[1, 3, 640]), None);
        // A 16:9 camera frame: the width fills 640, the height is padded.
        let lb = letterbox_fixed(1920, 1080, 640, 640);
        assert_eq!((lb.input_w, lb.input_h), (640, 640));
        assert_eq!((lb.resized_w, lb.resized_h), (640, 360));
        // A portrait photo: the height fills 640.
        let lb = letterbox_fixed(910, 1137, 640, 640);
        assert_eq!((lb.resized_w, lb.resized_h), (512, 640));
        // A small photo is scaled up, never past the input.
        let lb = letterbox_fixed(250, 250, 640, 640);
        assert_eq!((lb.resized_w, lb.resized_h), (640, 640));
        assert!((lb.scale - 2.56).abs() < 1e-6);
        // A degenerate strip still fits.
        let lb = letterbox_fixed(10_000, 1, 640, 640);
        assert!(lb.resized_w == 640 && lb.resized_h >= 1);
    }

    #[test]
    fn decode_places_box_and_landmarks_on_the_stride_grid() {
        // One anchor at col 1, row 2 of the stride-8 grid of a 32×32 input (4×4 cells).
        let cells = 16;
        let mut cls = vec![0.0; cells];
        let mut obj = vec![0.0; cells];
        let mut bbox = vec![0.0; cells * 4];
        let mut kps = vec![0.0; cells * 10];
        let i = 2 * 4 + 1;
        cls[i] = 0.81;
        obj[i] = 1.0;
        bbox[i * 4..i * 4 + 4].copy_from_slice(&[0.5, 0.5, 0.0, 2f32.ln()]);
        kps[i * 10..i * 10 + 2].copy_from_slice(&[0.25, -0.5]);
        let heads = [StrideOutput {
            stride: 8,
            cls: &cls,
            obj: &obj,
            bbox: &bbox,
            kps: &kps,
        }];
        let found = decode(&heads, 32, 32, 0.5);
        assert_eq!(found.len(), 1);
        let d = found[0];
        assert!((d.score - 0.9).abs() < 1e-6);
        // centre (1.5·8, 2.5·8) = (12, 20), size 8×16
        assert!((d.bbox.x - 8.0).abs() < 1e-4 && (d.bbox.y - 12.0).abs() < 1e-4);
        assert!((d.bbox.w - 8.0).abs() < 1e-4 && (d.bbox.h - 16.0).abs() < 1e-4);
        assert!((d.landmarks[0][0] - 10.0).abs() < 1e-4);
        assert!((d.landmarks[0][1] - 12.0).abs() < 1e-4);
        assert!(decode(&heads, 32, 32, 0.95).is_empty());
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes_and_separate_faces() {
        let mk = |x: f32, score: f32| Detection {
            bbox: BBox {
                x,
                y: 0.0,
                w: 10.0,
                h: 10.0,
            },
            score,
            landmarks: [[0.0; 2]; 5],
        };
        let kept = nms(vec![mk(0.0, 0.8), mk(1.0, 0.9), mk(50.0, 0.7)], 0.3);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.9);
        assert_eq!(kept[1].bbox.x, 50.0);
    }

    #[test]
    fn normalize_reorders_channels_and_pads() {
        let n = Normalize {
            rgb: true,
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        // one BGR pixel (10, 20, 30) into a 2×1 plane
        let mut out = vec![-1.0; 6];
        n.write_nchw(&[10, 20, 30], 1, 1, &mut out, 2, 1);
        assert_eq!(out, vec![30.0, -1.0, 20.0, -1.0, 10.0, -1.0]);
    }
}
