//! Presentation-attack detection (liveness): is the face in front of the
//! camera a live person, or a printed photo or a screen held up to it?
//!
//! A resident's photo is easy to get (WeChat moments, a printed notice), and
//! without this check it opens a face gate. Two MiniFASNet models
//! (Silent-Face-Anti-Spoofing, Apache-2.0) look at the face with its
//! surroundings at two scales (2.7× and 4.0× the detector's box, where the
//! edge of a photo or a screen shows); each gives p(real), and the gate uses
//! their geometric mean: a face is live only if both views agree, so one
//! model's confident "photo" is enough to refuse. The models run through the same ONNX Runtime path as the
//! detector and the embedder, their preprocessing comes from the manifest,
//! and several faces of one frame go through each model in one batch.
//!
//! Measured as ISO/IEC 30107-3 does (APCER: attacks accepted; BPCER: live
//! faces refused) by `gatehouse face eval-liveness`; the threshold and why it
//! is where it is: BENCHMARKS.md, "Liveness". Not covered: 3-D masks, and
//! video injected into the camera feed (deepfakes), which these models never saw.

use std::path::Path;

use anyhow::{bail, Context, Result};
use opencv::core::{Mat, Rect, Size};
use opencv::imgproc;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::TensorRef;

use super::cv;
use super::detect::{BBox, Normalize};
use crate::config::Config;
use crate::models::{self, Manifest, ModelRole, ModelSpec};
use crate::onnx::rewrite::{Changes, Target};

/// The fused p(real) a face must reach to count as live, unless `[face]
/// liveness_threshold` says otherwise. The attacks' scores move with the
/// person and the print far more than the live faces' (leave-one-subject-out
/// on NUAA: one person's photos reach 0.058, the others' stay below 0.021;
/// the repository's printed sample F1 scores 0.068), so the threshold sits
/// about 1.5× above the highest attack seen from both sources, and costs
/// 2.8 % of live frames on NUAA (BENCHMARKS.md, "Liveness").
pub const DEFAULT_THRESHOLD: f32 = 0.1;

/// The crop rectangle of one model: `scale` × the face box around its centre,
/// at most the whole image, shifted (not clipped) to stay inside it.
/// Returns the inclusive pixel corners `(x1, y1, x2, y2)`, as
/// Silent-Face-Anti-Spoofing's `CropImage._get_new_box` computes them, so the
/// models see what they were trained on.
pub fn crop_box(
    image_w: i32,
    image_h: i32,
    face: &BBox,
    scale: f32,
) -> Option<(i32, i32, i32, i32)> {
    if image_w < 2 || image_h < 2 || !(face.w > 0.0 && face.h > 0.0) {
        return None;
    }
    let (src_w, src_h) = (image_w as f32, image_h as f32);
    let scale = scale
        .min((src_h - 1.0) / face.h)
        .min((src_w - 1.0) / face.w);
    let (w, h) = (face.w * scale, face.h * scale);
    let (cx, cy) = (face.x + face.w / 2.0, face.y + face.h / 2.0);
    let (mut x1, mut y1, mut x2, mut y2) = (cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0);
    if x1 < 0.0 {
        x2 -= x1;
        x1 = 0.0;
    }
    if y1 < 0.0 {
        y2 -= y1;
        y1 = 0.0;
    }
    if x2 > src_w - 1.0 {
        x1 -= x2 - src_w + 1.0;
        x2 = src_w - 1.0;
    }
    if y2 > src_h - 1.0 {
        y1 -= y2 - src_h + 1.0;
        y2 = src_h - 1.0;
    }
    // Truncated like Python's int(); clamped against float dust at the edges.
    let (x1, y1) = ((x1 as i32).max(0), (y1 as i32).max(0));
    let (x2, y2) = ((x2 as i32).min(image_w - 1), (y2 as i32).min(image_h - 1));
    (x2 > x1 && y2 > y1).then_some((x1, y1, x2, y2))
}

/// Softmax of one row of logits, numerically stable.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

/// How far (in logits) a rewritten model may stray from the published one on
/// the test crops; the rewrites only reorder float arithmetic (about 1e-6).
const REWRITE_TOLERANCE: f32 = 1e-3;

/// Test crops for comparing a rewritten model with the published one: a
/// gradient, a flat grey and a pseudo-random pattern, so no channel of the
/// network stays idle.
fn probe_crops(width: usize, height: usize) -> Vec<f32> {
    let per = 3 * width * height;
    let mut out = Vec::with_capacity(3 * per);
    out.extend((0..per).map(|i| ((i * 255) / per) as f32));
    out.extend(std::iter::repeat_n(128.0, per));
    let mut state = 0x9e37_79b9_u32;
    out.extend((0..per).map(|_| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        (state % 256) as f32
    }));
    out
}

fn max_difference(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return f32::INFINITY;
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(
            0.0,
            |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) },
        )
}

/// One liveness model with its session and the manifest's crop and preprocessing.
pub struct LivenessModel {
    session: Session,
    name: String,
    input_name: String,
    output_name: Option<String>,
    width: usize,
    height: usize,
    crop_scale: f32,
    real_class: usize,
    normalize: Normalize,
    tensor: Vec<f32>,
    rewritten: Changes,
}

impl LivenessModel {
    pub fn load(spec: &ModelSpec, path: &Path, threads: usize) -> Result<LivenessModel> {
        Self::load_for(spec, path, threads, Target::this_machine())
    }

    /// As [`LivenessModel::load`], with the graph rewritten for `target`
    /// (tests check the other architecture's form on this machine).
    pub fn load_for(
        spec: &ModelSpec,
        path: &Path,
        threads: usize,
        target: Target,
    ) -> Result<LivenessModel> {
        let (Some(width), Some(height), Some(crop_scale), Some(real_class)) = (
            spec.input_width,
            spec.input_height,
            spec.crop_scale,
            spec.real_class,
        ) else {
            bail!(
                "liveness model {:?} needs input_width, input_height, crop_scale and real_class in the manifest",
                spec.name
            );
        };
        let session = crate::onnx::session(path, threads)?;
        if let Some(out) = &spec.output_name {
            if !session.outputs().iter().any(|o| o.name() == out) {
                bail!("model {} has no output {out:?}", path.display());
            }
        }
        let mut model = LivenessModel {
            session,
            name: spec.name.clone(),
            input_name: spec.input_name.clone(),
            output_name: spec.output_name.clone(),
            width: width as usize,
            height: height as usize,
            crop_scale,
            real_class,
            normalize: Normalize::from_spec(spec),
            tensor: Vec::new(),
            rewritten: Changes::default(),
        };
        if !spec.rewrites.is_empty() {
            match model.speed_up(spec, path, threads, target) {
                Ok(changes) => {
                    model.rewritten = changes;
                    tracing::debug!(
                    model = %spec.name,
                    prelus = changes.prelus,
                    padded_chains = changes.padded_chains,
                    "liveness model rewritten for ONNX Runtime's fast kernels"
                    )
                }
                Err(e) => tracing::warn!(
                    model = %spec.name,
                    "liveness model kept as published: {e:#}"
                ),
            }
        }
        Ok(model)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// What `onnx::rewrite` changed in the graph this model runs (nothing when
    /// the manifest asks for no rewrite or the rewritten graph was refused).
    pub fn rewritten(&self) -> Changes {
        self.rewritten
    }

    /// The model's input for one face: its crop, resized without keeping the
    /// aspect ratio (bilinear, as `cv2.resize`), written into `out`.
    fn write_crop(&self, frame: &Mat, face: &BBox, out: &mut [f32]) -> Result<()> {
        let (x1, y1, x2, y2) = crop_box(frame.cols(), frame.rows(), face, self.crop_scale)
            .with_context(|| format!("face box {face:?} gives no crop"))?;
        let roi = cv(
            Mat::roi(frame, Rect::new(x1, y1, x2 - x1 + 1, y2 - y1 + 1)),
            "liveness crop",
        )?;
        let mut resized = Mat::default();
        cv(
            imgproc::resize(
                &roi,
                &mut resized,
                Size::new(self.width as i32, self.height as i32),
                0.0,
                0.0,
                imgproc::INTER_LINEAR,
            ),
            "cannot resize liveness crop",
        )?;
        let bytes = cv(resized.data_bytes(), "liveness crop pixels")?;
        self.normalize
            .write_nchw(bytes, self.width, self.height, out, self.width, self.height);
        Ok(())
    }

    /// p(real) for each face box of one BGR frame, in one batch.
    pub fn score(&mut self, frame: &Mat, faces: &[BBox]) -> Result<Vec<f32>> {
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        if frame.typ() != opencv::core::CV_8UC3 {
            bail!("expected an 8-bit BGR frame");
        }
        let per = 3 * self.width * self.height;
        let mut tensor = std::mem::take(&mut self.tensor);
        tensor.clear();
        tensor.resize(per * faces.len(), 0.0);
        for (face, out) in faces.iter().zip(tensor.chunks_exact_mut(per)) {
            self.write_crop(frame, face, out)?;
        }
        let result = self.run(&tensor, faces.len());
        self.tensor = tensor;
        result
    }

    /// The model's raw output for `n` crops, checked for its shape.
    fn logits(&mut self, tensor: &[f32], n: usize) -> Result<Vec<f32>> {
        let input = TensorRef::from_array_view(([n, 3, self.height, self.width], tensor))
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("cannot build liveness input")?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => input])
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("liveness model {} failed", self.name))?;
        let name = match &self.output_name {
            Some(name) => name.clone(),
            None => outputs
                .keys()
                .next()
                .context("liveness model produced no output")?
                .to_string(),
        };
        let value = outputs
            .get(&name)
            .with_context(|| format!("liveness output {name} missing"))?;
        let (_, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("liveness output is not f32")?;
        if n == 0 || data.len() % n != 0 || data.len() / n <= self.real_class {
            bail!(
                "liveness model {} returned {} values for {n} faces; expected a real class at index {}",
                self.name,
                data.len(),
                self.real_class
            );
        }
        Ok(data.to_vec())
    }

    /// Swaps in the graph rewritten for ONNX Runtime's fast kernels
    /// (`onnx::rewrite`, as the manifest entry asks), but only after it gave
    /// the published model's logits on test crops; otherwise keeps the
    /// published one and says why. Returns what was rewritten.
    fn speed_up(
        &mut self,
        spec: &ModelSpec,
        path: &Path,
        threads: usize,
        target: Target,
    ) -> Result<Changes> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        // The bytes rewritten are the ones the manifest pins, read once.
        if !models::sha256_bytes(&bytes).eq_ignore_ascii_case(&spec.sha256) {
            bail!("{} no longer matches its sha256", path.display());
        }
        let (rewritten, changes) = crate::onnx::rewrite::apply_for(&bytes, &spec.rewrites, target)
            .with_context(|| format!("cannot rewrite {}", path.display()))?;
        if changes == Changes::default() {
            return Ok(changes);
        }
        let probes = probe_crops(self.width, self.height);
        let n = probes.len() / (3 * self.width * self.height);
        let published = self.logits(&probes, n)?;
        let label = format!("{} (rewritten)", path.display());
        let fast = crate::onnx::session_from_bytes(&rewritten, &label, threads)?;
        let original = std::mem::replace(&mut self.session, fast);
        let agree = match self.logits(&probes, n) {
            Ok(after) => max_difference(&published, &after) <= REWRITE_TOLERANCE,
            Err(_) => false,
        };
        if !agree {
            self.session = original;
            bail!(
                "the rewritten {} does not give the published model's output",
                self.name
            );
        }
        Ok(changes)
    }

    fn run(&mut self, tensor: &[f32], n: usize) -> Result<Vec<f32>> {
        let data = self.logits(tensor, n)?;
        let classes = data.len() / n;
        data.chunks_exact(classes)
            .map(|row| {
                let p = softmax(row)[self.real_class];
                if p.is_finite() {
                    Ok(p)
                } else {
                    bail!("liveness model {} gave a non-finite score", self.name)
                }
            })
            .collect()
    }
}

/// The configured liveness models, fused: a face's liveness is the
/// geometric mean of their p(real) ([`fuse`]).
pub struct Liveness {
    models: Vec<LivenessModel>,
    pub threshold: f32,
}

/// One face's liveness: the fused score and each model's.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LivenessScore {
    pub score: f32,
    pub per_model: Vec<f32>,
}

impl Liveness {
    /// Loads the models `[models] liveness` names, each checked against its sha256.
    pub fn load(config: &Config) -> Result<Liveness> {
        crate::onnx::init(config.models.onnxruntime.as_deref())?;
        let manifest = Manifest::for_config(config)?;
        let dir = config.models_dir();
        if config.models.liveness.is_empty() {
            bail!("[models] liveness names no model, but a gate has liveness on");
        }
        let mut loaded = Vec::new();
        for name in &config.models.liveness {
            let spec = super::model_with_role(&manifest, name, ModelRole::Liveness)?;
            loaded.push(
                LivenessModel::load(
                    spec,
                    &models::installed_path(spec, &dir)?,
                    config.models.threads,
                )
                .with_context(|| format!("cannot load liveness model {name:?}"))?,
            );
        }
        Ok(Liveness {
            models: loaded,
            threshold: threshold(config),
        })
    }

    pub fn model_names(&self) -> Vec<&str> {
        self.models.iter().map(LivenessModel::name).collect()
    }

    /// The fused score of each face of one frame (each model runs once, on all faces).
    pub fn score(&mut self, frame: &Mat, faces: &[BBox]) -> Result<Vec<LivenessScore>> {
        let mut per_face: Vec<Vec<f32>> = vec![Vec::with_capacity(self.models.len()); faces.len()];
        for model in &mut self.models {
            for (face, p) in per_face.iter_mut().zip(model.score(frame, faces)?) {
                face.push(p);
            }
        }
        Ok(per_face
            .into_iter()
            .map(|per_model| LivenessScore {
                score: fuse(&per_model),
                per_model,
            })
            .collect())
    }

    /// The fused score of one face.
    pub fn score_one(&mut self, frame: &Mat, face: &BBox) -> Result<LivenessScore> {
        self.score(frame, std::slice::from_ref(face))?
            .pop()
            .context("liveness gave no score")
    }

    pub fn is_live(&self, score: f32) -> bool {
        score >= self.threshold
    }
}

/// The fusion of the models' p(real): their geometric mean. The reference
/// implementation adds the softmaxes (an arithmetic mean), which lets one
/// model's doubt outvote the other's certainty: the printed sample F1 scores
/// 0.008 with V2 and 0.59 with V1SE, 0.30 by the mean but 0.068 by the
/// geometric mean, while live faces lose little (BENCHMARKS.md, "Liveness").
pub fn fuse(per_model: &[f32]) -> f32 {
    if per_model.is_empty() || per_model.iter().any(|p| !p.is_finite()) {
        return 0.0;
    }
    let log_sum: f64 = per_model
        .iter()
        .map(|p| f64::from(p.clamp(1e-12, 1.0)).ln())
        .sum();
    (log_sum / per_model.len() as f64).exp() as f32
}

/// The configured fused threshold.
pub fn threshold(config: &Config) -> f32 {
    config.face.liveness_threshold.unwrap_or(DEFAULT_THRESHOLD)
}

/// A labelled presentation and the fused score the gate gave it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Scored {
    pub subject: String,
    /// True for a live (bona fide) face, false for an attack.
    pub live: bool,
    pub score: f32,
}

/// APCER and BPCER (ISO/IEC 30107-3) at one threshold: the share of attacks
/// accepted as live (score ≥ threshold) and of live faces refused.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ErrorRates {
    pub threshold: f32,
    pub apcer: f64,
    pub bpcer: f64,
}

pub fn rates(scored: &[Scored], threshold: f32) -> ErrorRates {
    let (mut attacks, mut accepted, mut live, mut refused) = (0usize, 0usize, 0usize, 0usize);
    for s in scored {
        if s.live {
            live += 1;
            refused += usize::from(s.score < threshold);
        } else {
            attacks += 1;
            accepted += usize::from(s.score >= threshold);
        }
    }
    let share = |n: usize, of: usize| if of == 0 { 0.0 } else { n as f64 / of as f64 };
    ErrorRates {
        threshold,
        apcer: share(accepted, attacks),
        bpcer: share(refused, live),
    }
}

/// The equal error rate: over every candidate threshold (the scores
/// themselves), the one where APCER and BPCER are closest; their mean there.
pub fn eer(scored: &[Scored]) -> ErrorRates {
    let mut candidates: Vec<f32> = scored.iter().map(|s| s.score).collect();
    candidates.push(1.0 + f32::EPSILON);
    candidates.sort_by(f32::total_cmp);
    candidates.dedup();
    let mut best = rates(scored, 0.5);
    let mut gap = f64::INFINITY;
    for t in candidates {
        let r = rates(scored, t);
        if (r.apcer - r.bpcer).abs() < gap {
            gap = (r.apcer - r.bpcer).abs();
            best = r;
        }
    }
    let mean = (best.apcer + best.bpcer) / 2.0;
    ErrorRates {
        threshold: best.threshold,
        apcer: mean,
        bpcer: mean,
    }
}

/// The 95 % upper confidence bound of a rate from `errors` in `n` trials
/// (Wilson score interval): what a handful of frames can promise.
pub fn upper_bound_95(errors: usize, n: usize) -> f64 {
    if n == 0 {
        return 1.0;
    }
    let (z, n_f) = (1.96f64, n as f64);
    let p = errors as f64 / n_f;
    let centre = p + z * z / (2.0 * n_f);
    let spread = z * (p * (1.0 - p) / n_f + z * z / (4.0 * n_f * n_f)).sqrt();
    ((centre + spread) / (1.0 + z * z / n_f)).min(1.0)
}

/// Leave one subject out: for each subject, the threshold the rule picks on
/// the *other* subjects' scores, and the rates it then gives on this one.
/// Pooled over subjects, this estimates what the rule does on people it
/// was not chosen on.
pub fn leave_one_subject_out(
    scored: &[Scored],
    rule: impl Fn(&[Scored]) -> f32,
) -> Vec<(String, ErrorRates)> {
    let mut subjects: Vec<&str> = scored.iter().map(|s| s.subject.as_str()).collect();
    subjects.sort_unstable();
    subjects.dedup();
    subjects
        .into_iter()
        .map(|held_out| {
            let train: Vec<Scored> = scored
                .iter()
                .filter(|s| s.subject != held_out)
                .cloned()
                .collect();
            let test: Vec<Scored> = scored
                .iter()
                .filter(|s| s.subject == held_out)
                .cloned()
                .collect();
            (held_out.to_string(), rates(&test, rule(&train)))
        })
        .collect()
}

/// How the confirming frames of one face combine their liveness at the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Combination {
    /// Every confirming frame must pass on its own.
    EachFrame,
    /// The mean of the confirming frames' scores must pass.
    Mean,
}

/// K-of-M confirmation over consecutive frames of one presentation (the
/// scores in time order): whether some window of M frames has K frames that
/// pass (`EachFrame`) or whose K best scores average to a pass (`Mean`).
/// This is what a face standing in front of the camera for `scores.len()`
/// frames gets at the gate.
pub fn confirmed_live(
    scores: &[f32],
    k: usize,
    m: usize,
    threshold: f32,
    how: Combination,
) -> bool {
    let (k, m) = (k.max(1), m.max(k.max(1)));
    if scores.len() < k {
        return false;
    }
    let m = m.min(scores.len());
    scores.windows(m).any(|w| match how {
        Combination::EachFrame => w.iter().filter(|s| **s >= threshold).count() >= k,
        Combination::Mean => {
            let mut best: Vec<f32> = w.to_vec();
            best.sort_by(|a, b| b.total_cmp(a));
            best[..k].iter().sum::<f32>() / k as f32 >= threshold
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32, y: f32, w: f32, h: f32) -> BBox {
        BBox { x, y, w, h }
    }

    #[test]
    fn crop_is_the_scaled_box_around_the_centre_when_it_fits() {
        // 100×100 face in the middle of 1000×1000: 270×270 around (500, 500).
        assert_eq!(
            crop_box(1000, 1000, &b(450.0, 450.0, 100.0, 100.0), 2.7),
            Some((365, 365, 635, 635))
        );
    }

    #[test]
    fn crop_shifts_inside_the_image_instead_of_clipping() {
        // Near the top-left corner: moved right and down by the excess, same size.
        let (x1, y1, x2, y2) = crop_box(640, 480, &b(10.0, 5.0, 100.0, 100.0), 2.7).unwrap();
        assert_eq!((x1, y1), (0, 0));
        assert_eq!((x2, y2), (270, 270));
        // Near the bottom-right corner: moved left and up.
        let (x1, y1, x2, y2) = crop_box(640, 480, &b(560.0, 400.0, 70.0, 70.0), 4.0).unwrap();
        assert_eq!((x2, y2), (639, 479));
        assert_eq!((x2 - x1, y2 - y1), (280, 280));
    }

    #[test]
    fn crop_scale_shrinks_to_the_image_for_a_large_face() {
        // The silent-face repo's T1 box on a 480×640 image: 2.7 × 207 > 479,
        // so the scale becomes 479 / 207 and the crop spans the full width.
        let (x1, y1, x2, y2) = crop_box(480, 640, &b(106.0, 147.0, 207.0, 213.0), 2.7).unwrap();
        assert_eq!((x1, x2), (0, 479));
        assert!(y1 >= 0 && y2 <= 639);
        assert!(((y2 - y1) as f32 - 213.0 * 479.0 / 207.0).abs() <= 1.5);
    }

    #[test]
    fn degenerate_boxes_give_no_crop() {
        assert_eq!(crop_box(640, 480, &b(10.0, 10.0, 0.0, 50.0), 2.7), None);
        assert_eq!(
            crop_box(640, 480, &b(10.0, 10.0, f32::NAN, 50.0), 2.7),
            None
        );
        assert_eq!(crop_box(1, 480, &b(0.0, 0.0, 1.0, 1.0), 2.7), None);
    }

    fn sc(subject: &str, live: bool, score: f32) -> Scored {
        Scored {
            subject: subject.into(),
            live,
            score,
        }
    }

    #[test]
    fn apcer_counts_attacks_accepted_and_bpcer_live_faces_refused() {
        let s = [
            sc("a", true, 0.9),
            sc("a", true, 0.4),
            sc("a", false, 0.6),
            sc("a", false, 0.1),
            sc("a", false, 0.2),
            sc("a", false, 0.3),
        ];
        let r = rates(&s, 0.5);
        assert_eq!((r.apcer, r.bpcer), (0.25, 0.5));
        // At 0.35 the same attack passes, and both live faces do.
        let r = rates(&s, 0.35);
        assert_eq!((r.apcer, r.bpcer), (0.25, 0.0));
        let e = eer(&s);
        assert!(e.apcer <= 0.25 + 1e-9, "{e:?}");
    }

    #[test]
    fn leave_one_subject_out_never_tests_on_the_training_subject() {
        let s = [
            sc("a", true, 0.9),
            sc("a", false, 0.1),
            sc("b", true, 0.8),
            sc("b", false, 0.2),
        ];
        // The rule sees only the other subject: its highest attack score.
        let folds = leave_one_subject_out(&s, |train| {
            assert!(train
                .iter()
                .map(|t| &t.subject)
                .all(|x| x == &train[0].subject));
            train
                .iter()
                .filter(|t| !t.live)
                .map(|t| t.score)
                .fold(0.0, f32::max)
                + 0.01
        });
        assert_eq!(folds.len(), 2);
        assert!((folds[0].1.threshold - 0.21).abs() < 1e-6);
        assert!((folds[1].1.threshold - 0.11).abs() < 1e-6);
        // Fitted on "a" alone, the threshold lets "b"'s photo through: what
        // leave-one-subject-out is there to expose.
        assert_eq!((folds[0].1.apcer, folds[0].1.bpcer), (0.0, 0.0));
        assert_eq!((folds[1].1.apcer, folds[1].1.bpcer), (1.0, 0.0));
    }

    #[test]
    fn confirmation_needs_k_passing_frames_in_a_window_or_a_passing_mean() {
        let each = Combination::EachFrame;
        let mean = Combination::Mean;
        assert!(confirmed_live(&[0.6, 0.2, 0.7], 2, 3, 0.5, each));
        assert!(!confirmed_live(&[0.6, 0.2, 0.2, 0.7], 2, 3, 0.5, each));
        assert!(!confirmed_live(&[0.9, 0.45], 2, 3, 0.5, each));
        assert!(confirmed_live(&[0.9, 0.45], 2, 3, 0.5, mean));
        assert!(!confirmed_live(&[0.9], 2, 3, 0.5, mean));
    }

    #[test]
    fn upper_bound_is_above_the_observed_rate() {
        assert!(upper_bound_95(0, 320) > 0.0 && upper_bound_95(0, 320) < 0.013);
        assert!(upper_bound_95(3, 320) > 3.0 / 320.0);
        assert_eq!(upper_bound_95(0, 0), 1.0);
    }

    #[test]
    fn softmax_and_fusion() {
        let p = softmax(&[0.0, 0.0, 0.0]);
        assert!(p.iter().all(|v| (v - 1.0 / 3.0).abs() < 1e-6));
        let p = softmax(&[1000.0, 0.0, -1000.0]);
        assert!((p[0] - 1.0).abs() < 1e-6 && p[1].is_finite());
        assert!((fuse(&[0.2, 0.8]) - 0.4).abs() < 1e-6);
        // One confident "photo" outweighs the other model's doubt.
        assert!(fuse(&[0.008, 0.59]) < 0.1);
        assert!((fuse(&[0.9, 0.9]) - 0.9).abs() < 1e-6);
        assert_eq!(fuse(&[]), 0.0);
        assert_eq!(fuse(&[f32::NAN, 0.9]), 0.0);
    }
}
