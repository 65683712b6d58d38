//! Verification accuracy on labelled image pairs (`face eval`): ROC AUC, the
//! best accuracy and its threshold, and the false-accept and false-reject rates
//! at the configured threshold, plus the time per image for detection and for
//! alignment + embedding. The score is the same cosine similarity the
//! gallery computes, and "accept" means `score >= threshold`, as in the policy.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::{photo, Embedding, FaceEngine};

/// One `image_a,image_b,same` row.
#[derive(Clone, Debug, PartialEq)]
pub struct Pair {
    pub a: PathBuf,
    pub b: PathBuf,
    pub same: bool,
}

/// Reads a pairs file. The header row is optional; `same` is 1/0, true/false or yes/no.
pub fn read_pairs(path: &Path) -> Result<Vec<Pair>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read pairs file {}", path.display()))?;
    parse_pairs(&text).with_context(|| format!("pairs file {}", path.display()))
}

pub fn parse_pairs(text: &str) -> Result<Vec<Pair>> {
    let mut pairs = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line
            .split(',')
            .map(|f| f.trim().trim_matches('"').trim())
            .collect();
        if n == 0
            && fields
                .first()
                .is_some_and(|f| f.eq_ignore_ascii_case("image_a"))
        {
            continue;
        }
        let [a, b, same] = fields.as_slice() else {
            bail!(
                "line {}: expected image_a,image_b,same, got {} fields",
                n + 1,
                fields.len()
            );
        };
        let same = match same.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" => false,
            other => bail!("line {}: same must be 1 or 0, got {other:?}", n + 1),
        };
        if a.is_empty() || b.is_empty() {
            bail!("line {}: empty image path", n + 1);
        }
        pairs.push(Pair {
            a: PathBuf::from(a),
            b: PathBuf::from(b),
            same,
        });
    }
    if pairs.is_empty() {
        bail!("no pairs");
    }
    Ok(pairs)
}

/// The figures `face eval` reports; serialised as its final JSON line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PairsSummary {
    /// Pairs where both images gave a face.
    pub pairs: usize,
    /// Images (distinct files) that gave no face (including unreadable files).
    pub no_face: usize,
    pub auc: f64,
    pub best_accuracy: f64,
    pub best_threshold: f32,
    pub threshold: f32,
    pub far: f64,
    pub frr: f64,
    /// Median milliseconds per image.
    pub detect_ms: f64,
    pub embed_ms: f64,
    /// True-accept rate at a false-accept rate of 1e-2, 1e-3 and 1e-4 (the
    /// threshold just above the impostor quantile); `null` where there are
    /// fewer than 1/FAR different-person pairs to measure it on.
    pub tar_at_far: BTreeMap<String, Option<f64>>,
}

/// The false-accept rates `face eval` reports TAR at.
pub const TAR_FARS: [(&str, f64); 3] = [("1e-2", 1e-2), ("1e-3", 1e-3), ("1e-4", 1e-4)];

/// The summary plus what the human-readable report needs.
#[derive(Clone, Debug)]
pub struct PairsReport {
    pub summary: PairsSummary,
    pub genuine: Vec<f32>,
    pub impostor: Vec<f32>,
    /// (image, reason) for images that gave no face.
    pub failed: Vec<(PathBuf, String)>,
    /// (pair index, score) for every pair that was scored.
    pub scores: Vec<(usize, f32)>,
}

/// Embeds every distinct image once (its largest face) and scores the pairs.
pub fn run_pairs(
    engine: &mut FaceEngine,
    pairs: &[Pair],
    root: &Path,
    threshold: f32,
) -> Result<PairsReport> {
    let mut embeddings: HashMap<PathBuf, Option<Embedding>> = HashMap::new();
    let mut detect_ms = Vec::new();
    let mut embed_ms = Vec::new();
    let mut failed = Vec::new();
    for pair in pairs {
        for image in [&pair.a, &pair.b] {
            if embeddings.contains_key(image) {
                continue;
            }
            let path = root.join(image);
            let embedding = match embed_image(engine, &path) {
                Ok((e, d_ms, e_ms)) => {
                    detect_ms.push(d_ms);
                    embed_ms.push(e_ms);
                    Some(e)
                }
                Err(EvalImageError::Photo(err, d_ms)) => {
                    if let Some(ms) = d_ms {
                        detect_ms.push(ms);
                    }
                    failed.push((image.clone(), err.to_string()));
                    None
                }
                Err(EvalImageError::Other(e)) => return Err(e),
            };
            embeddings.insert(image.clone(), embedding);
        }
    }
    let mut genuine = Vec::new();
    let mut impostor = Vec::new();
    let mut scores = Vec::new();
    for (index, pair) in pairs.iter().enumerate() {
        let (Some(Some(a)), Some(Some(b))) = (embeddings.get(&pair.a), embeddings.get(&pair.b))
        else {
            continue;
        };
        let score = a.cosine(b);
        scores.push((index, score));
        if pair.same {
            genuine.push(score);
        } else {
            impostor.push(score);
        }
    }
    if genuine.is_empty() || impostor.is_empty() {
        bail!(
            "no figures: {} same-person and {} different-person pairs could be scored ({} of {} images gave no face)",
            genuine.len(),
            impostor.len(),
            failed.len(),
            embeddings.len()
        );
    }
    let (best_accuracy, best_threshold) = best_accuracy(&genuine, &impostor);
    let (far, frr) = error_rates(&genuine, &impostor, threshold);
    Ok(PairsReport {
        summary: PairsSummary {
            pairs: genuine.len() + impostor.len(),
            no_face: failed.len(),
            auc: roc_auc(&genuine, &impostor),
            best_accuracy,
            best_threshold,
            threshold,
            far,
            frr,
            detect_ms: median(&detect_ms),
            embed_ms: median(&embed_ms),
            tar_at_far: TAR_FARS
                .iter()
                .map(|(name, far)| (name.to_string(), tar_at_far(&genuine, &impostor, *far)))
                .collect(),
        },
        genuine,
        impostor,
        failed,
        scores,
    })
}

enum EvalImageError {
    /// The image gave no face; detection time if detection ran.
    Photo(photo::PhotoError, Option<f64>),
    /// A fault of the models or runtime: the evaluation cannot go on.
    Other(anyhow::Error),
}

/// (embedding of the largest face, detection ms, alignment + embedding ms).
fn embed_image(
    engine: &mut FaceEngine,
    path: &Path,
) -> std::result::Result<(Embedding, f64, f64), EvalImageError> {
    let frame = photo::load(path).map_err(|e| EvalImageError::Photo(e, None))?;
    let started = Instant::now();
    // A detector that fails is a broken model, never "no face": stop the evaluation.
    let faces = photo::detect(engine, &frame).map_err(|e| match e {
        photo::PhotoError::Failed(why) => EvalImageError::Other(anyhow::anyhow!(
            "face detector failed on {}: {why}",
            path.display()
        )),
        other => EvalImageError::Photo(other, None),
    })?;
    let d_ms = started.elapsed().as_secs_f64() * 1000.0;
    // Several faces: the largest is the subject (how labelled face sets are framed).
    let Some(face) = faces
        .iter()
        .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
    else {
        return Err(EvalImageError::Photo(photo::PhotoError::NoFace, Some(d_ms)));
    };
    let started = Instant::now();
    let crop =
        super::align::align(&frame, &face.landmarks, 112, 112).map_err(EvalImageError::Other)?;
    let embedding = engine
        .embed_face(&frame, face, &crop)
        .map_err(EvalImageError::Other)?;
    Ok((embedding, d_ms, started.elapsed().as_secs_f64() * 1000.0))
}

/// Area under the ROC curve: the probability that a random genuine pair
/// scores above a random impostor pair (ties count half). NaN without both kinds.
pub fn roc_auc(genuine: &[f32], impostor: &[f32]) -> f64 {
    if genuine.is_empty() || impostor.is_empty() {
        return f64::NAN;
    }
    let mut imp = impostor.to_vec();
    imp.sort_by(f32::total_cmp);
    let mut wins = 0.0f64;
    for g in genuine {
        let below = imp.partition_point(|i| i < g);
        let not_above = imp.partition_point(|i| i <= g);
        wins += below as f64 + 0.5 * (not_above - below) as f64;
    }
    wins / (genuine.len() as f64 * impostor.len() as f64)
}

/// The share of genuine scores accepted at the strictest threshold that lets
/// at most `far` of the impostor scores through (accept means score above the
/// `floor(far·n)+1`-th highest impostor score). `None` when there are fewer
/// than `1/far` impostor scores: the rate cannot be resolved.
pub fn tar_at_far(genuine: &[f32], impostor: &[f32], far: f64) -> Option<f64> {
    if genuine.is_empty() || far <= 0.0 || (impostor.len() as f64) * far < 1.0 - 1e-9 {
        return None;
    }
    let mut imp = impostor.to_vec();
    imp.sort_by(|a, b| b.total_cmp(a));
    let allowed = ((far * imp.len() as f64) + 1e-9).floor() as usize;
    let bar = imp[allowed.min(imp.len() - 1)];
    let accepted = genuine.iter().filter(|g| **g > bar).count();
    Some(accepted as f64 / genuine.len() as f64)
}

/// (false-accept rate, false-reject rate) when `score >= threshold` accepts.
pub fn error_rates(genuine: &[f32], impostor: &[f32], threshold: f32) -> (f64, f64) {
    let rate = |n: usize, of: usize| if of == 0 { 0.0 } else { n as f64 / of as f64 };
    let fa = impostor.iter().filter(|s| **s >= threshold).count();
    let fr = genuine.iter().filter(|s| **s < threshold).count();
    (rate(fa, impostor.len()), rate(fr, genuine.len()))
}

/// The best accuracy over all thresholds, and the threshold (midway between
/// the two scores it separates) that reaches it.
pub fn best_accuracy(genuine: &[f32], impostor: &[f32]) -> (f64, f32) {
    let total = genuine.len() + impostor.len();
    if total == 0 {
        return (f64::NAN, f32::NAN);
    }
    let mut all: Vec<f32> = genuine.iter().chain(impostor).copied().collect();
    all.sort_by(f32::total_cmp);
    all.dedup();
    let mut candidates = vec![all[0] - 1e-3];
    candidates.extend(all.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    candidates.push(all[all.len() - 1] + 1e-3);
    let mut best = (-1.0f64, 0.0f32);
    for t in candidates {
        let (far, frr) = error_rates(genuine, impostor, t);
        let correct = (1.0 - far) * impostor.len() as f64 + (1.0 - frr) * genuine.len() as f64;
        let acc = correct / total as f64;
        if acc > best.0 + 1e-12 {
            best = (acc, t);
        }
    }
    best
}

pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_counts_ordered_pairs_and_ties_half() {
        assert_eq!(roc_auc(&[0.9, 0.8], &[0.1, 0.2]), 1.0);
        assert_eq!(roc_auc(&[0.1], &[0.9]), 0.0);
        assert_eq!(roc_auc(&[0.5], &[0.5]), 0.5);
        // genuine 0.6 beats 0.2 and 0.4 but not 0.7: 2 of 3
        assert!((roc_auc(&[0.6], &[0.2, 0.4, 0.7]) - 2.0 / 3.0).abs() < 1e-12);
        assert!(roc_auc(&[], &[0.1]).is_nan());
    }

    #[test]
    fn rates_and_best_threshold_separate_the_scores() {
        let genuine = [0.7, 0.8, 0.45];
        let impostor = [0.1, 0.3, 0.5];
        assert_eq!(error_rates(&genuine, &impostor, 0.4), (1.0 / 3.0, 0.0));
        assert_eq!(error_rates(&genuine, &impostor, 0.6), (0.0, 1.0 / 3.0));
        let (acc, t) = best_accuracy(&genuine, &impostor);
        assert!((acc - 5.0 / 6.0).abs() < 1e-12, "{acc}");
        let (far, frr) = error_rates(&genuine, &impostor, t);
        assert!((1.0 - (far * 3.0 + frr * 3.0) / 6.0 - acc).abs() < 1e-12);
        let (acc, t) = best_accuracy(&[0.9], &[0.1]);
        assert_eq!(acc, 1.0);
        assert!(t > 0.1 && t <= 0.9);
    }

    #[test]
    fn tar_at_far_uses_the_impostor_quantile_and_refuses_too_few_impostors() {
        // 100 impostors 0.00..0.99; at FAR 1e-2 one may pass: the bar is the
        // second highest (0.98), so genuine scores above 0.98 count.
        let impostor: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let genuine = [0.985, 0.995, 0.5, 0.2];
        assert_eq!(tar_at_far(&genuine, &impostor, 1e-2), Some(0.5));
        // 1e-3 needs at least 1,000 impostor scores.
        assert_eq!(tar_at_far(&genuine, &impostor, 1e-3), None);
        assert_eq!(tar_at_far(&[], &impostor, 1e-2), None);
    }

    #[test]
    fn pairs_parse_with_header_and_report_bad_lines() {
        let p = parse_pairs("image_a,image_b,same\na.jpg,b.jpg,1\nc.jpg, \"d.jpg\" ,0\n").unwrap();
        assert_eq!(p.len(), 2);
        assert!(p[0].same && !p[1].same);
        assert_eq!(p[1].b, PathBuf::from("d.jpg"));
        let err = parse_pairs("a.jpg,b.jpg,maybe\n").unwrap_err();
        assert!(err.to_string().contains("line 1"), "{err}");
        assert!(parse_pairs("a.jpg,b.jpg\n").is_err());
        assert!(parse_pairs("image_a,image_b,same\n").is_err());
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}
