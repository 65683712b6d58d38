//! `gatehouse face eval-liveness`: presentation-attack detection measured per
//! frame the way ISO/IEC 30107-3 does (APCER, BPCER, EER and a curve), on
//! labelled frames (`file,subject,label` with label `live` or `spoof`), with
//! the gate's own detector, box and models.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::failed;
use crate::config::Config;
use crate::face::liveness::{self, Combination, ErrorRates, Liveness, Scored};
use crate::face::{photo, FaceEngine};

#[derive(Args, Debug)]
pub struct EvalLiveness {
    /// CSV of `file,subject,label` rows, label `live` or `spoof` (header optional)
    #[arg(long, value_name = "FILE.csv")]
    pub labels: PathBuf,
    /// Folder the paths in the labels file are relative to
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// Fused liveness threshold to report at [default: the configured one]
    #[arg(long, value_parser = parse_probability)]
    pub threshold: Option<f32>,
    /// Also write every frame's scores to this CSV (file,subject,label,score,model scores…)
    #[arg(long, value_name = "FILE")]
    pub scores: Option<PathBuf>,
}

fn parse_probability(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(t) if (0.0..=1.0).contains(&t) => Ok(t),
        _ => Err(format!("expected a number 0..=1, got {s:?}")),
    }
}

/// One row of the labels file.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledFrame {
    pub file: String,
    pub subject: String,
    pub live: bool,
}

/// Parses `file,subject,label` rows; a header row is skipped; every problem
/// names its line.
pub fn parse_labels(text: &str) -> Result<Vec<LabelledFrame>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if i == 0 && fields.first() == Some(&"file") {
            continue;
        }
        let [file, subject, label] = fields.as_slice() else {
            bail!(
                "line {}: expected 3 columns file,subject,label, got {}",
                i + 1,
                fields.len()
            );
        };
        let live = match *label {
            "live" => true,
            "spoof" => false,
            other => bail!("line {}: label {other:?}: expected live or spoof", i + 1),
        };
        if file.is_empty() || subject.is_empty() {
            bail!("line {}: empty file or subject", i + 1);
        }
        out.push(LabelledFrame {
            file: file.to_string(),
            subject: subject.to_string(),
            live,
        });
    }
    if out.is_empty() {
        bail!("no labelled frames");
    }
    Ok(out)
}

pub fn eval_liveness(config: &Config, args: &EvalLiveness) -> Result<ExitCode> {
    let text = std::fs::read_to_string(&args.labels)
        .with_context(|| format!("cannot read {}", args.labels.display()))?;
    let frames =
        parse_labels(&text).map_err(|e| failed(format!("{}: {e:#}", args.labels.display())))?;
    let mut engine = FaceEngine::load(config)?;
    let mut live_models = Liveness::load(config)?;
    let threshold = args.threshold.unwrap_or(live_models.threshold);
    // A fixed-input model is letterboxed into its own shape; the configured width does not apply.
    let detector_input = match engine.detector.fixed_input() {
        Some((w, h)) => format!("its fixed {w}x{h} input"),
        None => format!("width {}", engine.detector.settings.width),
    };
    eprintln!(
        "{} frames; detector {} at {detector_input}; liveness {} fused by their geometric mean",
        frames.len(),
        config.models.detector,
        live_models.model_names().join(" + ")
    );
    let mut scored = Vec::new();
    let mut csv = String::from("file,subject,label,score,models\n");
    let (mut no_face, mut quality_refused, mut pad_ms) = (0usize, 0usize, 0.0f64);
    // Frames in file-name order per subject and label: a presentation's sequence.
    let mut sequences: std::collections::BTreeMap<(String, bool), Vec<(String, f32)>> =
        Default::default();
    for f in &frames {
        let path = args.root.join(&f.file);
        let frame = photo::load(&path).map_err(|e| failed(format!("{}: {e}", path.display())))?;
        // The gate's own path: the camera's detector width, the best face.
        let detections = engine.detector.detect(&frame)?;
        let Some(d) = detections.first().copied() else {
            no_face += 1;
            continue;
        };
        if engine.analyze(&frame, d)?.verdict.is_err() {
            quality_refused += 1;
        }
        let started = Instant::now();
        let s = live_models.score_one(&frame, &d.bbox)?;
        pad_ms += started.elapsed().as_secs_f64() * 1000.0;
        csv.push_str(&format!(
            "{},{},{},{:.6},{}\n",
            f.file,
            f.subject,
            if f.live { "live" } else { "spoof" },
            s.score,
            s.per_model
                .iter()
                .map(|p| format!("{p:.6}"))
                .collect::<Vec<_>>()
                .join(" ")
        ));
        sequences
            .entry((f.subject.clone(), f.live))
            .or_default()
            .push((f.file.clone(), s.score));
        scored.push(Scored {
            subject: f.subject.clone(),
            live: f.live,
            score: s.score,
        });
    }
    if let Some(out) = &args.scores {
        std::fs::write(out, &csv).with_context(|| format!("cannot write {}", out.display()))?;
    }
    let live = scored.iter().filter(|s| s.live).count();
    let spoof = scored.len() - live;
    let at = liveness::rates(&scored, threshold);
    let eer = liveness::eer(&scored);
    let (accepted, refused) = (
        (at.apcer * spoof as f64).round() as usize,
        (at.bpcer * live as f64).round() as usize,
    );
    println!(
        "{} frames: {live} live, {spoof} spoof with a face; {no_face} without a face ({}); {quality_refused} below the quality floor (scored anyway)",
        frames.len(),
        pct(no_face as f64 / frames.len().max(1) as f64)
    );
    println!(
        "at threshold {threshold:.3}: APCER {} ({accepted}/{spoof}, 95 % upper bound {}), BPCER {} ({refused}/{live}, 95 % upper bound {})",
        pct(at.apcer),
        pct(liveness::upper_bound_95(accepted, spoof)),
        pct(at.bpcer),
        pct(liveness::upper_bound_95(refused, live)),
    );
    println!("EER {} at threshold {:.3}", pct(eer.apcer), eer.threshold);
    println!("curve:\n  threshold  APCER    BPCER");
    for i in 1..20 {
        let r = liveness::rates(&scored, i as f32 * 0.05);
        println!(
            "  {:.2}       {:<8} {}",
            r.threshold,
            pct(r.apcer),
            pct(r.bpcer)
        );
    }
    // Per subject at the threshold: does it hold for each person, or only on average?
    let folds = liveness::leave_one_subject_out(&scored, |_| threshold);
    println!("per subject at {threshold:.3}:");
    for (subject, r) in &folds {
        println!("  {subject}: APCER {} BPCER {}", pct(r.apcer), pct(r.bpcer));
    }
    // The same rule fitted without each subject: how far an EER threshold
    // chosen on the others moves, and what it gives on the one left out.
    let loso = liveness::leave_one_subject_out(&scored, |train| liveness::eer(train).threshold);
    let (lo, hi) = loso.iter().fold((f32::MAX, f32::MIN), |(lo, hi), (_, r)| {
        (lo.min(r.threshold), hi.max(r.threshold))
    });
    let pooled = pooled(&loso, &scored);
    println!(
        "leave-one-subject-out EER threshold: {lo:.3}..{hi:.3}; on the subject left out: APCER {} BPCER {}",
        pct(pooled.apcer),
        pct(pooled.bpcer)
    );
    // The gate's K-of-M over consecutive frames, in non-overlapping windows of M.
    let (k, m) = (
        config.face.confirm_frames.max(1) as usize,
        config
            .face
            .confirm_window
            .max(config.face.confirm_frames)
            .max(1) as usize,
    );
    for how in [Combination::EachFrame, Combination::Mean] {
        let (mut windows, mut live_ok, mut live_n, mut spoof_ok, mut spoof_n) = (0, 0, 0, 0, 0);
        // Live windows with K failing frames: the gate would call them an attack.
        let mut live_attack = 0;
        for ((_, is_live), seq) in sequences.iter_mut() {
            seq.sort_by_key(|a| natural(&a.0));
            for chunk in seq.chunks(m) {
                if chunk.len() < k {
                    continue;
                }
                windows += 1;
                let scores: Vec<f32> = chunk.iter().map(|c| c.1).collect();
                let ok = liveness::confirmed_live(&scores, k, m, threshold, how);
                if *is_live {
                    live_n += 1;
                    live_ok += usize::from(ok);
                    live_attack +=
                        usize::from(scores.iter().filter(|s| **s < threshold).count() >= k);
                } else {
                    spoof_n += 1;
                    spoof_ok += usize::from(ok);
                }
            }
        }
        println!(
            "{k} of {m} frames, {how:?}: {windows} windows; attacks confirmed live {} ({spoof_ok}/{spoof_n}), live faces not confirmed {} ({}/{live_n}); live windows with {k} failing frames (an attack to the gate): {live_attack}",
            pct(spoof_ok as f64 / spoof_n.max(1) as f64),
            pct((live_n - live_ok) as f64 / live_n.max(1) as f64),
            live_n - live_ok
        );
    }
    let ms_per_face = pad_ms / scored.len().max(1) as f64;
    println!(
        "{}",
        serde_json::json!({
            "frames": frames.len(),
            "live": live,
            "spoof": spoof,
            "no_face": no_face,
            "threshold": (f64::from(threshold) * 1e6).round() / 1e6,
            "apcer": at.apcer,
            "bpcer": at.bpcer,
            "eer": eer.apcer,
            "ms_per_face": (ms_per_face * 1000.0).round() / 1000.0,
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// The pooled rates of leave-one-out folds (each fold's counts added up).
fn pooled(folds: &[(String, ErrorRates)], scored: &[Scored]) -> ErrorRates {
    let (mut acc, mut attacks, mut rej, mut live) = (0.0, 0usize, 0.0, 0usize);
    for (subject, r) in folds {
        let a = scored
            .iter()
            .filter(|s| &s.subject == subject && !s.live)
            .count();
        let l = scored
            .iter()
            .filter(|s| &s.subject == subject && s.live)
            .count();
        acc += r.apcer * a as f64;
        rej += r.bpcer * l as f64;
        attacks += a;
        live += l;
    }
    ErrorRates {
        threshold: f32::NAN,
        apcer: acc / attacks.max(1) as f64,
        bpcer: rej / live.max(1) as f64,
    }
}

/// A file name's sort key with its digit runs compared as numbers
/// (`_2.jpg` before `_12.jpg`).
fn natural(name: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut digits = String::new();
    for c in name.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if !digits.is_empty() {
                out.push((
                    digits.parse().unwrap_or(u64::MAX),
                    std::mem::take(&mut text),
                ));
                digits.clear();
            }
            text.push(c);
        }
    }
    out.push((digits.parse().unwrap_or(0), text));
    out
}

fn pct(x: f64) -> String {
    format!("{:.2} %", x * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_line_of_a_bad_row() {
        let ok = parse_labels("file,subject,label\na.jpg,1,live\nb.jpg,1,spoof\n").unwrap();
        assert_eq!(ok.len(), 2);
        assert!(ok[0].live && !ok[1].live);
        let err = parse_labels("file,subject,label\na.jpg,1,fake\n").unwrap_err();
        assert!(format!("{err}").contains("line 2"), "{err}");
        let err = parse_labels("a.jpg,1\n").unwrap_err();
        assert!(format!("{err}").contains("line 1"), "{err}");
        assert!(parse_labels("file,subject,label\n").is_err());
    }

    #[test]
    fn natural_order_compares_numbers_as_numbers() {
        let mut v = vec!["x_12.jpg", "x_2.jpg", "x_100.jpg"];
        v.sort_by_key(|n| natural(n));
        assert_eq!(v, ["x_2.jpg", "x_12.jpg", "x_100.jpg"]);
    }
}
