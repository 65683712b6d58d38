//! `gatehouse face eval-1n` and `gatehouse face calibrate`: printing around
//! `face::openset` and `face::calibrate`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;

use super::failed;
use crate::config::Config;
use crate::domain::embedding::Combine;
use crate::face::calibrate::{self, percent, Calibrated};
use crate::face::openset::{self, AnalysedPhotos, OpenSetOptions};
use crate::face::{self, FaceEngine, MatchPolicy};

/// Where the labelled photos are and how to read them.
#[derive(Args, Debug, Clone)]
pub struct LabelledSet {
    /// CSV of `file,identity` rows (header optional)
    #[arg(long, value_name = "FILE.csv")]
    pub labels: PathBuf,
    /// Folder the paths in the labels file are relative to
    #[arg(long, value_name = "DIR")]
    pub root: PathBuf,
    /// K: enrolment photos per resident (fewer when a person has fewer photos)
    #[arg(long, value_name = "K", default_value_t = 3)]
    pub enrol_per_person: usize,
    /// Seed of the splits and enrolment choices
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Combine a resident's faces this way [default: the configured `[face] combine`]
    #[arg(long, value_name = "best|centroid|both")]
    pub combine: Option<Combine>,
    /// Average embeddings with their mirror image [default: `[face] flip_average`]
    #[arg(long, value_name = "BOOL")]
    pub flip_average: Option<bool>,
    /// Judge every face, without the quality floor
    #[arg(long)]
    pub no_quality_floor: bool,
}

#[derive(Args, Debug)]
pub struct EvalOneToN {
    #[command(flatten)]
    pub set: LabelledSet,
    /// F: photos of one person taken as consecutive frames of one face
    /// [default: the configured confirm_frames]
    #[arg(long, value_name = "F")]
    pub frames: Option<usize>,
    /// Number of seeded resident/stranger splits
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub splits: usize,
    /// Threshold to report at [default: the configured match threshold]
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Margin over the second identity [default: the configured margin]
    #[arg(long)]
    pub margin: Option<f32>,
    /// Also write the whole DIR-vs-FPIR curve (threshold,dir,fpir,misid) to this CSV
    #[arg(long, value_name = "FILE")]
    pub curve: Option<PathBuf>,
    /// Choose each split's threshold from its enrolled residents alone (the
    /// site's self-calibration; the embedder's prior while they are too few)
    #[arg(long, requires = "target_fpir", conflicts_with = "threshold")]
    pub self_calibrate: bool,
    /// Stranger false-accept rate the self-calibration aims at (0.01 = 1 %)
    #[arg(long, value_name = "RATE", value_parser = parse_rate, requires = "self_calibrate")]
    pub target_fpir: Option<f64>,
    /// Household + face (1:few): group the residents into households of this
    /// many members and match each probe against one household only (its own;
    /// a stranger's, one drawn at random), at the verify threshold
    /// (`--threshold` overrides it) without a margin, as a household gate does
    #[arg(long, value_name = "MEMBERS", value_parser = clap::value_parser!(u64).range(1..=100))]
    pub household: Option<u64>,
}

#[derive(Args, Debug)]
pub struct Calibrate {
    #[command(flatten)]
    pub set: LabelledSet,
    /// Stranger false-accept rate to keep (0.01 = 1 % of strangers admitted)
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub target_fpir: f64,
    /// Residents with an enrolled face the threshold must hold for
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub gallery_size: u64,
    /// Write `[face] match_threshold` (and the fitted tail) into this config file
    #[arg(long, value_name = "FILE")]
    pub write_config: Option<PathBuf>,
    /// Seeded draws of the enrolment photos whose comparisons are pooled
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub draws: u64,
    /// Also fit the extreme-value tail over every identity enrolled as a
    /// resident and write it as a manifest prior (`[model.impostor_prior]`) to this file
    #[arg(long, value_name = "FILE")]
    pub prior_out: Option<PathBuf>,
    /// What the prior was measured on, for the manifest (e.g. "lfw + east_asian + identities")
    #[arg(long, value_name = "TEXT", default_value = "labelled photos")]
    pub prior_source: String,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r < 1.0 => Ok(r),
        _ => Err(format!(
            "expected a rate between 0 and 1 (0.01 = 1 %), got {s:?}"
        )),
    }
}

/// The engine, policy and analysed photos both commands start from.
struct Loaded {
    engine_model: String,
    dim: usize,
    policy: MatchPolicy,
    flip_average: bool,
    photos: AnalysedPhotos,
    analyse_s: f64,
}

fn load(config: &Config, set: &LabelledSet) -> Result<Loaded> {
    let labels = openset::read_labels(&set.labels)?;
    if !set.root.is_dir() {
        return Err(failed(format!(
            "--root {}: not a directory",
            set.root.display()
        )));
    }
    if set.enrol_per_person == 0 {
        return Err(failed("--enrol-per-person must be at least 1".into()));
    }
    let mut config = config.clone();
    if let Some(flip) = set.flip_average {
        config.face.flip_average = flip;
    }
    let spec = face::embedder_spec(&config)?;
    let mut policy = MatchPolicy::from_config(&config.face, &spec)?;
    if let Some(combine) = set.combine {
        policy.combine = combine;
    }
    let mut engine = FaceEngine::load(&config)?;
    let started = Instant::now();
    let photos = openset::analyse_photos(&mut engine, &labels, &set.root)
        .map_err(|e| failed(format!("{e:#}")))?;
    Ok(Loaded {
        engine_model: engine.model_name().to_string(),
        dim: engine.embedder.dim(),
        policy,
        flip_average: config.face.flip_average,
        photos,
        analyse_s: started.elapsed().as_secs_f64(),
    })
}

fn stats(v: &[f32]) -> String {
    if v.is_empty() {
        return "none".into();
    }
    let mut s = v.to_vec();
    s.sort_by(f32::total_cmp);
    format!(
        "n={} min {:.3} median {:.3} max {:.3}",
        s.len(),
        s[0],
        s[s.len() / 2],
        s[s.len() - 1]
    )
}

pub fn eval_1n(config: &Config, args: &EvalOneToN) -> Result<ExitCode> {
    let started = Instant::now();
    let mut loaded = load(config, &args.set)?;
    if args.household.is_some() {
        // A household gate checks each member 1:1 at the verify threshold.
        loaded.policy.threshold = loaded.policy.verify_threshold;
    }
    if let Some(t) = args.threshold {
        loaded.policy.threshold = t;
    }
    if let Some(m) = args.margin {
        loaded.policy.margin = m;
    }
    let frames = args.frames.unwrap_or(loaded.policy.confirm_k);
    if frames == 0 || args.splits == 0 {
        return Err(failed("--frames and --splits must be at least 1".into()));
    }
    let mut curve = OpenSetOptions::default_curve();
    if !curve.contains(&loaded.policy.threshold) {
        curve.push(loaded.policy.threshold);
        curve.sort_by(f32::total_cmp);
    }
    let opts = OpenSetOptions {
        enrol_per_person: args.set.enrol_per_person,
        frames,
        splits: args.splits,
        seed: args.set.seed,
        quality_floor: !args.set.no_quality_floor,
        curve,
        self_calibrate: match (args.self_calibrate, args.target_fpir) {
            (true, Some(target_fpir)) => Some(openset::SelfCalibrate {
                target_fpir,
                prior: calibrate::prior_curve(&face::embedder_spec(config)?),
            }),
            _ => None,
        },
        household: args.household.map(|m| m as usize),
    };
    let p = &loaded.photos;
    let report = openset::evaluate(
        &p.names,
        &p.samples,
        &loaded.policy,
        &loaded.engine_model,
        loaded.dim,
        &opts,
    )?;
    if let Some(out) = &args.curve {
        let mut csv = String::from("threshold,dir,fpir,misid\n");
        for c in &report.curve {
            csv.push_str(&format!(
                "{:.2},{:.6},{:.6},{:.6}\n",
                c.threshold, c.dir, c.fpir, c.misid
            ));
        }
        std::fs::write(out, csv).with_context(|| format!("cannot write {}", out.display()))?;
    }
    let s = &report.summary;
    let policy = &loaded.policy;
    for (file, why) in &p.no_face {
        println!("no face: {} ({why})", file.display());
    }
    println!(
        "embedder:   {} (detector {}), flip-average {}",
        loaded.engine_model,
        config.models.detector,
        if loaded.flip_average { "on" } else { "off" }
    );
    println!(
        "policy:     threshold {:.3}, margin {:.3}, combine {}, quality floor {}, {} of {} frames",
        policy.threshold,
        policy.margin,
        policy.combine.as_str(),
        if opts.quality_floor { "on" } else { "off" },
        s.confirm_k,
        s.confirm_m
    );
    println!(
        "photos:     {} of {} identities, {} with no face; {:.1} s to analyse ({:.1} ms per photo)",
        s.photos,
        s.identities,
        s.no_face,
        loaded.analyse_s,
        loaded.analyse_s * 1000.0 / s.photos.max(1) as f64
    );
    println!(
        "splits:     {} (seed {}): half the identities enrolled with up to {} photos each, the rest strangers; each probe is {} frame(s) of one person",
        s.splits, s.seed, s.enrol_per_person, s.frames
    );
    if let Some(members) = s.household {
        println!(
            "household:  residents in households of {members}; each probe matched against one household only (its own, or a stranger's drawn at random), no margin"
        );
    }
    if !report.strangers_only.is_empty() {
        println!(
            "strangers only (fewer than two photos with a face, so no probe if enrolled): {}",
            report.strangers_only.join(", ")
        );
    }
    if !report.enrolled_fewer.is_empty() {
        let list: Vec<String> = report
            .enrolled_fewer
            .iter()
            .map(|(n, k)| format!("{n} ({k})"))
            .collect();
        println!(
            "enrolled with fewer than {} photos (every photo but one probe): {}",
            s.enrol_per_person,
            list.join(", ")
        );
    }
    if report.repeated_frames > 0 {
        println!(
            "probes that repeat a photo as a frame (fewer than {} probe photos of that person): {} of {}",
            s.frames,
            report.repeated_frames,
            s.known_probes + s.unknown_probes
        );
    }
    let mut refused: std::collections::BTreeMap<&str, usize> = Default::default();
    for sample in &p.samples {
        if let (Some(_), Err(reason)) = (&sample.embedding, sample.quality) {
            *refused.entry(reason.as_str()).or_default() += 1;
        }
    }
    let faces = p.samples.iter().filter(|s| s.embedding.is_some()).count();
    println!(
        "quality floor refuses {} of {faces} faces{}",
        refused.values().sum::<usize>(),
        if refused.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = refused.iter().map(|(r, n)| format!("{r} {n}")).collect();
            format!(" ({})", list.join(", "))
        }
    );
    println!("same person:          {}", stats(&report.genuine));
    println!("best other resident:  {}", stats(&report.best_impostor));
    if let (Some(target), Some(predicted), Some(upper), Some(own)) = (
        s.target_fpir,
        s.predicted_fpir,
        s.predicted_fpir_upper,
        s.own_register_splits,
    ) {
        println!(
            "self-calibrated: threshold {:.3} on average for {} strangers admitted; predicted {} (95 % bound {}); from the residents' own faces in {own} of {} splits, the model's prior in the rest",
            s.threshold,
            percent(target),
            percent(predicted),
            percent(upper),
            s.splits
        );
    }
    println!(
        "at threshold {:.3}:   DIR {:.4} ({} of {} resident probes), FPIR {:.4} ({} of {} stranger probes), misidentification {:.4} ({})",
        s.threshold,
        s.dir,
        report.identified,
        s.known_probes,
        s.fpir,
        report.false_accepts,
        s.unknown_probes,
        s.misid,
        report.misidentified
    );
    println!("DIR against FPIR over thresholds (whole curve: --curve FILE):");
    println!("  threshold     DIR    FPIR   misid");
    for c in &report.curve {
        let on_grid =
            (c.threshold * 100.0).round() as i32 % 5 == 0 && (0.2..=0.75).contains(&c.threshold);
        let configured = c.threshold == policy.threshold;
        if on_grid || configured {
            println!(
                "  {:>9.3}  {:>6.4}  {:>6.4}  {:>6.4}{}",
                c.threshold,
                c.dir,
                c.fpir,
                c.misid,
                if configured { "  <- policy" } else { "" }
            );
        }
    }
    let mut json = serde_json::to_value(s)?;
    json["seconds"] = serde_json::json!((started.elapsed().as_secs_f64() * 100.0).round() / 100.0);
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}

/// Every identity enrolled with its first K usable photos (seeded order),
/// as the rows of one large register.
fn enrol_everyone(
    p: &AnalysedPhotos,
    per_person: usize,
    floor: bool,
    seed: u64,
) -> Vec<(crate::domain::ResidentId, Vec<f32>)> {
    let mut order: Vec<usize> = (0..p.samples.len()).collect();
    crate::face::openset::SplitMix(seed).shuffle(&mut order);
    let mut taken = vec![0usize; p.names.len()];
    let mut rows = Vec::new();
    for i in order {
        let s = &p.samples[i];
        let Some(e) = &s.embedding else { continue };
        if (floor && s.quality.is_err()) || taken[s.identity] >= per_person {
            continue;
        }
        taken[s.identity] += 1;
        rows.push((
            crate::domain::ResidentId(s.identity as i64 + 1),
            e.as_slice().to_vec(),
        ));
    }
    rows
}

/// `--prior-out`: the GPD tail over all identities, written as a manifest table.
fn write_prior(loaded: &Loaded, args: &Calibrate, out: &std::path::Path) -> Result<()> {
    use crate::face::tail::{TailBasis, TailFit};
    let p = &loaded.photos;
    let rows = enrol_everyone(
        p,
        args.set.enrol_per_person,
        !args.set.no_quality_floor,
        args.set.seed,
    );
    let identities = {
        let mut ids: Vec<_> = rows.iter().map(|r| r.0).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    let mut scores = calibrate::register_impostor_scores(
        &rows,
        &Default::default(),
        &loaded.engine_model,
        loaded.dim,
        loaded.policy.combine,
        20_000_000,
        args.set.seed,
    )?;
    if scores.len() < crate::face::tail::MIN_COMPARISONS {
        // A small set: every photo (not only the enrolled ones) probes the others' centroids.
        let gallery = crate::face::Gallery::from_rows_combined(
            &loaded.engine_model,
            loaded.dim,
            rows.iter().cloned(),
            loaded.policy.combine,
        )?;
        scores.clear();
        for s in p.samples.iter() {
            let Some(e) = &s.embedding else { continue };
            let me = s.identity as u64 + 1;
            for x in gallery.identity_scores(e.as_slice()) {
                if x.resident.0 as u64 != me {
                    scores.push(crate::face::tail::Clustered {
                        score: x.score,
                        cluster: crate::face::tail::pair_cluster(me, x.resident.0 as u64),
                    });
                }
            }
        }
    }
    let fit = TailFit::fit_with(&scores, args.set.seed, 5)?;
    let mut curve = fit.curve(TailBasis::Prior {
        source: args.prior_source.clone(),
        identities,
    });
    // An existing prior in the file: keep the upper envelope of both (the
    // heavier tail wins at every threshold; the data vouch for no less than
    // the weaker set can).
    if let Ok(text) = std::fs::read_to_string(out) {
        #[derive(serde::Deserialize)]
        struct Existing {
            impostor_prior: crate::face::tail::TailCurve,
        }
        let old: Existing = toml::from_str(&text)
            .with_context(|| format!("{} holds no impostor_prior to merge with", out.display()))?;
        curve = curve.envelope(&old.impostor_prior);
        println!(
            "merged with the prior already in {} (upper envelope)",
            out.display()
        );
    }
    println!(
        "prior tail:          {} comparisons over {} pairs of identities ({} identities); GPD above {:.3} (top {}): xi {:.3}, sigma {:.4}; trusted down to {:.1e} per comparison",
        fit.comparisons, fit.clusters, identities, fit.u, fit.exceedances, fit.gpd.xi, fit.gpd.sigma, curve.p_min
    );
    for t in [0.35f32, 0.40, 0.45, 0.50, 0.55, 0.60] {
        let (rate, upper) = curve.at(t);
        println!("  at {t:.2}: {rate:.2e} per comparison (95 % bound {upper:.2e})");
    }
    #[derive(serde::Serialize)]
    struct Table<'a> {
        impostor_prior: &'a crate::face::tail::TailCurve,
    }
    let text = toml::to_string(&Table {
        impostor_prior: &curve,
    })
    .context("cannot write the prior as TOML")?;
    std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote the prior to {}", out.display());
    Ok(())
}

pub fn calibrate(config: &Config, args: &Calibrate) -> Result<ExitCode> {
    let loaded = load(config, &args.set)?;
    if let Some(out) = &args.prior_out {
        write_prior(&loaded, args, out)?;
    }
    let p = &loaded.photos;
    let n = usize::try_from(args.gallery_size).unwrap_or(usize::MAX);
    let comparisons = calibrate::comparisons(
        p.names.len(),
        &p.samples,
        &calibrate::Enrolment {
            per_person: args.set.enrol_per_person,
            combine: loaded.policy.combine,
            quality_floor: !args.set.no_quality_floor,
            draws: args.draws as usize,
            seed: args.set.seed,
        },
        &loaded.engine_model,
        loaded.dim,
    )?;
    let fit = calibrate::fit_tail(&comparisons.impostor)
        .map_err(|e| failed(format!("{}: {e:#}", args.set.labels.display())))?;
    let tail = fit.tail;
    let threshold = tail.threshold_for(args.target_fpir, n);
    if threshold >= 1.0 {
        return Err(failed(format!(
            "no threshold keeps the stranger false-accept rate at {} with {} residents: {} would need a cosine of {threshold:.2} (impostor median {:.3}, sd {:.3}); it holds {} residents at 0.9. Use a stronger embedder or card + face",
            percent(args.target_fpir),
            args.gallery_size,
            loaded.engine_model,
            tail.mean,
            tail.sd,
            tail.max_residents(0.9, args.target_fpir)
        )));
    }
    let p_at = tail.per_comparison(threshold);
    let below = comparisons
        .genuine
        .iter()
        .filter(|g| **g < threshold)
        .count();
    for (file, why) in &p.no_face {
        println!("no face: {} ({why})", file.display());
    }
    println!(
        "embedder:            {} (combine {}, flip-average {}, up to {} enrolment photos per identity)",
        loaded.engine_model,
        loaded.policy.combine.as_str(),
        if loaded.flip_average { "on" } else { "off" },
        args.set.enrol_per_person
    );
    println!(
        "impostor scores:     {} comparisons of a photo with another identity ({} draws of the enrolment photos); median {:.3}, max {:.3}",
        fit.comparisons, args.draws, tail.mean, fit.max
    );
    println!(
        "upper tail:          sd {:.4} from the {} scores above the median ({} pairs of identities); {:.4} used (95 % upper bound)",
        fit.sd_fitted, fit.upper_half, fit.upper_pairs, tail.sd
    );
    println!("same person:         {}", stats(&comparisons.genuine));
    println!(
        "threshold:           {threshold:.3} keeps the stranger false-accept rate at {} with {} residents (per comparison {p_at:.1e})",
        percent(args.target_fpir),
        args.gallery_size
    );
    println!("1:1 (card + face):   a wrong face passes {p_at:.1e} of the time at that threshold");
    if !comparisons.genuine.is_empty() {
        println!(
            "same-person scores below it here: {below} of {}{}",
            comparisons.genuine.len(),
            if below > 0 {
                " (residents will need more frames or will fail; at this register size consider card + face or a stronger embedder)"
            } else {
                ""
            }
        );
    }
    let current = loaded.policy.threshold;
    println!(
        "configured {current:.3}:    FPIR {} at {} residents; supports up to {} residents at {}",
        percent(tail.fpir(current, n)),
        args.gallery_size,
        tail.max_residents(current, args.target_fpir),
        percent(args.target_fpir)
    );
    if let Some(path) = &args.write_config {
        calibrate::write_config(
            path,
            &Calibrated {
                threshold,
                target_fpir: args.target_fpir,
                residents: n,
                tail,
            },
        )?;
        println!(
            "wrote [face] match_threshold = {threshold:.3}, target_fpir, impostor_mean, impostor_sd to {}",
            path.display()
        );
    }
    let json = serde_json::json!({
        "threshold": (f64::from(threshold) * 1000.0).round() / 1000.0,
        "target_fpir": args.target_fpir,
        "gallery_size": args.gallery_size,
        "per_comparison": p_at,
        "impostor_mean": tail.mean,
        "impostor_sd": tail.sd,
        "impostor_sd_fitted": fit.sd_fitted,
        "comparisons": fit.comparisons,
        "identity_pairs": fit.upper_pairs,
        "impostor_max": fit.max,
        "genuine_below": below,
        "genuine": comparisons.genuine.len(),
    });
    println!("{json}");
    Ok(ExitCode::SUCCESS)
}
