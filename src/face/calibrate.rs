//! Calibration for the register's size. A gate searches every resident, so a
//! stranger is falsely accepted if *any* of N residents scores above the
//! threshold: with a per-comparison false-accept probability p at threshold
//! t, the stranger false-accept rate is FPIR(N) = 1 − (1 − p)^N ≈ N·p.
//! p is far too small to count on a few photos (1e-7 and below), so it is
//! extrapolated from the measured impostor scores (a photo against another
//! person's enrolled faces):
//!
//! - the centre is their median, and the spread is fitted to the *upper
//!   half* only (root mean square distance above the median): the right tail
//!   is what admits strangers, and a right-skewed distribution must not be
//!   made to look narrow by its left half;
//! - that spread is replaced by its one-sided 95 % upper confidence bound
//!   (chi-square), so a small sample errs towards a higher threshold. The
//!   degrees of freedom are the distinct *pairs of identities* among the
//!   upper-half scores, not the scores: photos of the same two people are
//!   not independent evidence about how strangers score;
//! - p(t) is the Gaussian tail beyond t. The margin over the second identity
//!   and the K-of-M frames lower the real rate further; both are left out,
//!   because a stranger's frames are one face and agree with each other.
//!
//! From the same fit: the threshold for a target FPIR at N residents, the
//! rate expected at today's N, and the largest register the model supports
//! at the target ([`StrangerRisk`], shown by `gatehouse doctor`).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::gallery::Gallery;
use super::openset::Sample;
use crate::config::Config;
use crate::domain::embedding::Combine;
use crate::domain::ResidentId;
use crate::models::ModelSpec;

/// The fitted upper tail of impostor scores.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ImpostorTail {
    /// Median impostor score.
    pub mean: f32,
    /// Spread used for extrapolation (the upper confidence bound when fitted).
    pub sd: f32,
}

/// What [`fit_tail`] measured, beside the tail it returns.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct TailFit {
    pub tail: ImpostorTail,
    /// Root mean square distance of the upper half from the median.
    pub sd_fitted: f32,
    pub comparisons: usize,
    pub upper_half: usize,
    /// Distinct identity pairs among the upper half: the degrees of freedom.
    pub upper_pairs: usize,
    pub max: f32,
}

/// One impostor comparison: the score and which two identities it compared.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ImpostorScore {
    pub score: f32,
    /// (probe identity, enrolled identity).
    pub pair: (usize, usize),
}

/// Fewest impostor scores a fit is made from.
pub const MIN_COMPARISONS: usize = 20;

/// Fits the upper tail of impostor scores (see the module docs).
pub fn fit_tail(scores: &[ImpostorScore]) -> Result<TailFit> {
    let mut s: Vec<ImpostorScore> = scores
        .iter()
        .copied()
        .filter(|x| x.score.is_finite())
        .collect();
    if s.len() < MIN_COMPARISONS {
        bail!(
            "{} impostor comparisons; at least {MIN_COMPARISONS} are needed (more identities or photos)",
            s.len()
        );
    }
    s.sort_by(|a, b| a.score.total_cmp(&b.score));
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2].score
    } else {
        (s[n / 2 - 1].score + s[n / 2].score) / 2.0
    };
    let upper: Vec<&ImpostorScore> = s.iter().filter(|x| x.score > median).collect();
    let m = upper.len();
    let mut pairs: Vec<(usize, usize)> = upper.iter().map(|x| x.pair).collect();
    pairs.sort_unstable();
    pairs.dedup();
    if pairs.len() < MIN_PAIRS {
        bail!(
            "the scores above the median come from {} pairs of identities; at least {MIN_PAIRS} are needed (more identities)",
            pairs.len()
        );
    }
    let sd = (upper
        .iter()
        .map(|x| f64::from(x.score - median).powi(2))
        .sum::<f64>()
        / m as f64)
        .sqrt();
    if sd <= 0.0 {
        bail!("impostor scores do not spread; cannot fit a tail");
    }
    let dof = pairs.len() as f64;
    let bound = sd * (dof / chi2_lower_quantile(dof, 1.644_853_6)).sqrt();
    Ok(TailFit {
        tail: ImpostorTail {
            mean: median,
            sd: bound as f32,
        },
        sd_fitted: sd as f32,
        comparisons: n,
        upper_half: m,
        upper_pairs: pairs.len(),
        max: s[n - 1].score,
    })
}

/// Fewest distinct identity pairs above the median a fit is made from.
pub const MIN_PAIRS: usize = 5;

/// The lower quantile of chi-square with `k` degrees of freedom at normal
/// deviate −`z` (Wilson–Hilferty; within 2 % for k ≥ 5).
fn chi2_lower_quantile(k: f64, z: f64) -> f64 {
    let a = 2.0 / (9.0 * k);
    k * (1.0 - a - z * a.sqrt()).powi(3)
}

/// The upper tail of the standard normal, P(Z > z).
pub fn normal_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit,
/// relative error below 1.2e-7 everywhere, so tails of 1e-12 stay accurate).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// The z with `normal_tail(z) == p` (bisection; p in (0, 1)).
pub fn normal_tail_inverse(p: f64) -> f64 {
    let (mut lo, mut hi) = (-40.0f64, 40.0f64);
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if normal_tail(mid) > p {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

impl ImpostorTail {
    /// The probability that one stranger–resident comparison reaches `threshold`.
    pub fn per_comparison(&self, threshold: f32) -> f64 {
        normal_tail(f64::from(threshold - self.mean) / f64::from(self.sd))
    }

    /// Expected stranger false-accept rate against `residents` enrolled people.
    pub fn fpir(&self, threshold: f32, residents: usize) -> f64 {
        fpir_from(self.per_comparison(threshold), residents)
    }

    /// The threshold at which `residents` people give `target` FPIR.
    pub fn threshold_for(&self, target: f64, residents: usize) -> f32 {
        let n = residents.max(1) as f64;
        // 1 − (1 − p)^N = target  ⇔  p = 1 − (1 − target)^(1/N)
        let p = -((-target).ln_1p() / n).exp_m1();
        self.mean + self.sd * normal_tail_inverse(p) as f32
    }

    /// The largest register that stays within `target` at `threshold`.
    pub fn max_residents(&self, threshold: f32, target: f64) -> u64 {
        let p = self.per_comparison(threshold);
        if p <= 0.0 {
            return u64::MAX;
        }
        let n = (-target).ln_1p() / (-p).ln_1p();
        if n >= u64::MAX as f64 {
            u64::MAX
        } else {
            n.floor() as u64
        }
    }
}

fn fpir_from(p: f64, residents: usize) -> f64 {
    -(residents as f64 * (-p).ln_1p()).exp_m1()
}

/// Impostor and genuine scores from labelled samples, every identity against
/// every other: each identity is enrolled from up to K of its photos (the
/// first enrollable ones in a seeded order, combined as the policy says) and
/// every photo of every *other* identity is scored against it, over several
/// draws. The photos not enrolled also give the genuine score with their
/// own identity.
pub struct Comparisons {
    pub impostor: Vec<ImpostorScore>,
    pub genuine: Vec<f32>,
}

/// How [`comparisons`] enrols: K photos per identity, combined by the
/// policy, drawn `draws` times from a seeded order.
#[derive(Clone, Copy, Debug)]
pub struct Enrolment {
    pub per_person: usize,
    pub combine: Combine,
    pub quality_floor: bool,
    pub draws: usize,
    pub seed: u64,
}

pub fn comparisons(
    identities: usize,
    samples: &[Sample],
    enrolment: &Enrolment,
    model: &str,
    dim: usize,
) -> Result<Comparisons> {
    let floor = enrolment.quality_floor;
    let usable = |s: &Sample| s.embedding.is_some() && (!floor || s.quality.is_ok());
    let mut rng = super::openset::SplitMix(enrolment.seed);
    let mut out = Comparisons {
        impostor: Vec::new(),
        genuine: Vec::new(),
    };
    // Several draws of the enrolment photos, pooled: the fit then does not
    // hang on which K photos happened to be chosen.
    for _ in 0..enrolment.draws.max(1) {
        let mut enrolled = vec![false; samples.len()];
        let mut taken = vec![0usize; identities];
        let mut order: Vec<usize> = (0..samples.len()).collect();
        rng.shuffle(&mut order);
        for i in order {
            let s = &samples[i];
            if s.identity < identities && taken[s.identity] < enrolment.per_person && usable(s) {
                taken[s.identity] += 1;
                enrolled[i] = true;
            }
        }
        let rows = samples
            .iter()
            .zip(&enrolled)
            .filter(|(_, e)| **e)
            .filter_map(|(s, _)| {
                s.embedding
                    .as_ref()
                    .map(|e| (ResidentId(s.identity as i64 + 1), e.as_slice().to_vec()))
            });
        let gallery = Gallery::from_rows_combined(model, dim, rows, enrolment.combine)?;
        for (i, s) in samples.iter().enumerate() {
            let Some(e) = s.embedding.as_ref().filter(|_| usable(s)) else {
                continue;
            };
            let own = ResidentId(s.identity as i64 + 1);
            for score in gallery.identity_scores(e.as_slice()) {
                if score.resident != own {
                    out.impostor.push(ImpostorScore {
                        score: score.score,
                        pair: (s.identity, (score.resident.0 - 1) as usize),
                    });
                } else if !enrolled[i] {
                    out.genuine.push(score.score);
                }
            }
        }
    }
    Ok(out)
}

/// Impostor scores from the register itself: every enrolled face of every
/// resident against every *other* resident, combined as the gate combines
/// them (`combine`, the centroid by default), so each score is what a
/// stranger who looks like that face would score. Residents of one household
/// are not compared (relatives look alike, and a stranger is not their
/// relative); each score's cluster is the pair of households (or residents
/// without one), so the bound counts pairs of families, not photos. Above
/// `max_comparisons`, a seeded sample of the faces is compared.
pub fn register_impostor_scores(
    rows: &[(ResidentId, Vec<f32>)],
    households: &std::collections::HashMap<ResidentId, i64>,
    model: &str,
    dim: usize,
    combine: Combine,
    max_comparisons: usize,
    seed: u64,
) -> Result<Vec<super::tail::Clustered>> {
    use super::tail::{pair_cluster, Clustered};
    let gallery = Gallery::from_rows_combined(model, dim, rows.iter().cloned(), combine)?;
    let residents = gallery.identities().max(1);
    // Households and lone residents in one id space.
    let family = |r: ResidentId| -> u64 {
        match households.get(&r) {
            Some(h) => *h as u64,
            None => (1u64 << 40) + r.0 as u64,
        }
    };
    let mut order: Vec<usize> = (0..rows.len()).collect();
    let wanted = (max_comparisons / residents).max(1);
    if wanted < rows.len() {
        super::openset::SplitMix(seed).shuffle(&mut order);
        order.truncate(wanted);
    }
    let mut out = Vec::with_capacity(order.len() * residents);
    for i in order {
        let (me, face) = (&rows[i].0, &rows[i].1);
        let mine = family(*me);
        for score in gallery.identity_scores(face) {
            if score.resident == *me {
                continue;
            }
            let theirs = family(score.resident);
            if theirs == mine {
                continue;
            }
            out.push(Clustered {
                score: score.score,
                cluster: pair_cluster(mine, theirs),
            });
        }
    }
    Ok(out)
}

/// Comparisons a self-calibration reads at most (a few seconds off the
/// frame path on a Pi; beyond it the faces are sampled).
pub const MAX_SELF_COMPARISONS: usize = 2_000_000;

/// The register's own tail curve, or why there is none yet (too few residents).
pub fn own_curve(
    rows: &[(ResidentId, Vec<f32>)],
    households: &std::collections::HashMap<ResidentId, i64>,
    model: &str,
    dim: usize,
    combine: Combine,
) -> Result<super::tail::TailCurve> {
    let residents = {
        let mut ids: Vec<ResidentId> = rows.iter().map(|r| r.0).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    };
    let scores = register_impostor_scores(
        rows,
        households,
        model,
        dim,
        combine,
        MAX_SELF_COMPARISONS,
        1,
    )?;
    let fit = super::tail::TailFit::fit(&scores, 1)
        .with_context(|| format!("{residents} residents with a face"))?;
    Ok(fit.curve(super::tail::TailBasis::OwnRegister { residents }))
}

/// The curve to trust at `residents` people and `target`: the register's
/// own when its data vouches for that size, else the model's prior when it
/// does, else whichever vouches for more (flagged unsupported).
pub fn choose_curve(
    own: Option<super::tail::TailCurve>,
    prior: Option<&super::tail::TailCurve>,
    target: f64,
    residents: usize,
) -> Option<super::tail::TailCurve> {
    match (own, prior) {
        (Some(own), _) if own.supports(target, residents) => Some(own),
        (_, Some(prior)) if prior.supports(target, residents) => Some(prior.clone()),
        (Some(own), Some(prior)) => Some(if own.p_min <= prior.p_min {
            own
        } else {
            prior.clone()
        }),
        (Some(own), None) => Some(own),
        (None, prior) => prior.cloned(),
    }
}

/// A threshold chosen for a target stranger rate at a register size.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThresholdChoice {
    pub residents: usize,
    pub target_fpir: f64,
    /// The threshold whose bound meets the target; 1.0 when none does.
    pub threshold: f32,
    /// Whether any threshold meets the target at this size.
    pub reachable: bool,
    /// Expected stranger rate at the threshold, and its 95 % upper bound.
    pub fpir: f64,
    pub fpir_upper: f64,
    /// Whether the data behind the curve vouches for this size at the target.
    pub supported: bool,
    pub max_supported: u64,
    pub curve: super::tail::TailCurve,
}

/// The threshold for `target` at `residents` people on `curve`.
pub fn choose_threshold(
    curve: super::tail::TailCurve,
    target: f64,
    residents: usize,
) -> ThresholdChoice {
    let found = curve.threshold_for(target, residents);
    let threshold = found.unwrap_or(1.0);
    let (fpir, fpir_upper) = curve.fpir(threshold, residents);
    ThresholdChoice {
        residents,
        target_fpir: target,
        threshold,
        reachable: found.is_some(),
        fpir,
        fpir_upper,
        supported: curve.supports(target, residents),
        max_supported: curve.max_supported(target),
        curve,
    }
}

/// The embedder's prior tail from the manifest, if it ships one.
pub fn prior_curve(spec: &ModelSpec) -> Option<super::tail::TailCurve> {
    spec.impostor_prior.clone()
}

/// The impostor tail a gateway uses: `[face] impostor_mean`/`impostor_sd`
/// (written by `face calibrate`), else the embedder's manifest entry.
pub fn configured_tail(config: &Config, spec: &ModelSpec) -> Option<(ImpostorTail, &'static str)> {
    if let (Some(mean), Some(sd)) = (config.face.impostor_mean, config.face.impostor_sd) {
        return Some((ImpostorTail { mean, sd }, "config"));
    }
    match (spec.impostor_mean, spec.impostor_sd) {
        (Some(mean), Some(sd)) => Some((ImpostorTail { mean, sd }, "model manifest")),
        _ => None,
    }
}

/// The expected stranger false-accept rate at today's register size, what
/// it rests on, and whether the register has outgrown the target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StrangerRisk {
    /// Residents with an enrolled face (the N of the 1:N search).
    pub residents: usize,
    /// The threshold in force.
    pub threshold: f32,
    pub target_fpir: f64,
    /// Probability that one stranger–resident comparison passes the threshold.
    pub per_comparison: f64,
    /// Probability that a stranger is admitted by one confirmed face.
    pub expected_fpir: f64,
    /// Its 95 % upper bound (equal to `expected_fpir` for a Gaussian fit, which has none).
    pub fpir_upper: f64,
    /// The largest register within the target at this threshold, never
    /// beyond what the data vouches for.
    pub max_residents: u64,
    /// Where the impostor tail came from: `own register`, `model prior`,
    /// `config` or `model manifest` (the last two: a Gaussian fit).
    pub tail_source: &'static str,
    /// What the tail rests on, in words.
    pub basis: String,
    pub comparisons: usize,
    /// Independent pairs of people (households) behind the comparisons.
    pub clusters: usize,
    /// The data vouches for today's register size at the target.
    pub supported: bool,
    /// The threshold whose bound meets the target at today's size (`None`: none does).
    pub threshold_for_target: Option<f32>,
    /// Where the threshold in force comes from: `configured`, or
    /// `self-calibrated on the own register` / `… on the model prior`.
    pub threshold_source: String,
}

impl StrangerRisk {
    pub fn over_target(&self) -> bool {
        self.fpir_upper > self.target_fpir
    }

    /// One paragraph for `gatehouse doctor`, `gate status` and the console.
    pub fn describe(&self) -> String {
        let supports = if self.max_residents == u64::MAX {
            "any size".to_string()
        } else {
            format!("{}", self.max_residents)
        };
        let bound = if self.fpir_upper > self.expected_fpir {
            format!(", at most {} at 95 % confidence", percent(self.fpir_upper))
        } else {
            String::new()
        };
        let mut s = format!(
            "{} residents with a face; threshold {:.3} in force ({}): a stranger is falsely accepted with probability {}{bound} per confirmed face (target {}); threshold {:.3} supports up to {supports} residents at the target; tail from {}: {}",
            self.residents,
            self.threshold,
            self.threshold_source,
            percent(self.expected_fpir),
            percent(self.target_fpir),
            self.threshold,
            self.tail_source,
            self.basis
        );
        if !self.supported {
            s.push_str(
                "; today's register is larger than these data can vouch for at the target, so the rate is an extrapolation",
            );
        }
        if self.over_target() {
            match self.threshold_for_target {
                Some(t) => s.push_str(&format!(
                    ": the register has outgrown the face model at this threshold; threshold {t:.3} would meet the target (at some cost to residents)"
                )),
                None => s.push_str(
                    ": the register has outgrown the face model; no threshold meets the target at this size",
                ),
            }
            s.push_str(
                "; use card + face at the busy gates ([[gates]] face_mode = \"card+face\") or household + face \
                 ([[gates]] face_mode = \"household\"), or a stronger embedder",
            );
        }
        s
    }
}

/// A rate as a percentage with enough digits to be read.
pub fn percent(rate: f64) -> String {
    let p = rate * 100.0;
    if p == 0.0 {
        "0 %".into()
    } else if p >= 1.0 {
        format!("{p:.1} %")
    } else if p >= 0.01 {
        format!("{p:.2} %")
    } else {
        format!("{p:.1e} %")
    }
}

/// The stranger risk for `residents` enrolled people under this config, or
/// `None` when no impostor tail is known for the embedder. Without the
/// register's own tail: see [`stranger_risk_with`].
pub fn stranger_risk(
    config: &Config,
    spec: &ModelSpec,
    residents: usize,
) -> Result<Option<StrangerRisk>> {
    stranger_risk_with(config, spec, residents, None)
}

/// The stranger risk, resting on (in order) the register's own tail when its
/// data vouches for today's size, a Gaussian tail `face calibrate` wrote into
/// the config, the model's prior from the manifest, or the manifest's Gaussian.
pub fn stranger_risk_with(
    config: &Config,
    spec: &ModelSpec,
    residents: usize,
    own: Option<super::tail::TailCurve>,
) -> Result<Option<StrangerRisk>> {
    stranger_risk_at(config, spec, residents, own, None)
}

/// The stranger risk at the threshold in force: with `[face] threshold =
/// "calibrated"`, the one self-calibration chooses for today's register (as
/// the daemon would), else the configured one.
pub fn stranger_risk_in_force(
    config: &Config,
    spec: &ModelSpec,
    residents: usize,
    own: Option<super::tail::TailCurve>,
) -> Result<Option<StrangerRisk>> {
    let calibrated =
        Calibration::from_config(config, spec).and_then(|c| c.choose_with(own.clone(), residents));
    stranger_risk_at(config, spec, residents, own, calibrated.as_ref())
}

/// [`stranger_risk_with`] at a self-calibrated threshold (`None`: the
/// configured one).
pub fn stranger_risk_at(
    config: &Config,
    spec: &ModelSpec,
    residents: usize,
    own: Option<super::tail::TailCurve>,
    calibrated: Option<&super::gallery::CalibratedThreshold>,
) -> Result<Option<StrangerRisk>> {
    let policy = super::MatchPolicy::from_config(&config.face, spec)?;
    let target = config.face.target_fpir;
    let (threshold, threshold_source) = match calibrated {
        Some(c) => (
            c.threshold,
            format!(
                "self-calibrated on the {} for target {}{}",
                c.source,
                percent(c.target_fpir),
                if c.reachable {
                    ""
                } else {
                    ", which no threshold meets at this size"
                }
            ),
        ),
        None if config.face.threshold == Some(crate::config::FaceThreshold::Calibrated) => (
            policy.threshold,
            "configured: self-calibration has no impostor tail to rest on yet".to_string(),
        ),
        None => (policy.threshold, "configured".to_string()),
    };
    let gaussian = |tail: ImpostorTail, source: &'static str, basis: String| {
        let expected = tail.fpir(threshold, residents);
        let t = tail.threshold_for(target, residents);
        StrangerRisk {
            residents,
            threshold,
            target_fpir: target,
            per_comparison: tail.per_comparison(threshold),
            expected_fpir: expected,
            fpir_upper: expected,
            max_residents: tail.max_residents(threshold, target),
            tail_source: source,
            basis,
            comparisons: 0,
            clusters: 0,
            supported: true,
            threshold_for_target: (t < 1.0).then_some(t),
            threshold_source: threshold_source.clone(),
        }
    };
    let own = own.filter(|c| c.supports(target, residents));
    let curve = match (own, config.face.impostor_mean, config.face.impostor_sd) {
        (Some(c), _, _) => Some((c, "own register")),
        (None, Some(mean), Some(sd)) => {
            return Ok(Some(gaussian(
                ImpostorTail { mean, sd },
                "config",
                format!("a Gaussian tail written by `gatehouse face calibrate` (median {mean:.3}, sd {sd:.3}), an extrapolation with no bound on the tail's shape"),
            )))
        }
        (None, _, _) => prior_curve(spec).map(|c| (c, "model prior")),
    };
    let Some((curve, source)) = curve else {
        return Ok(configured_tail(config, spec).map(|(tail, source)| {
            gaussian(
                tail,
                source,
                format!("a Gaussian tail in the {source} (median {:.3}, sd {:.3}) fitted to a few photos, an extrapolation with no bound on the tail's shape", tail.mean, tail.sd),
            )
        }));
    };
    let (p, p_upper) = curve.at(threshold);
    let (expected, upper) = curve.fpir(threshold, residents);
    let within = if p_upper <= 0.0 {
        u64::MAX
    } else {
        let n = (-target).ln_1p() / (-p_upper.min(1.0 - 1e-12)).ln_1p();
        n.floor().clamp(0.0, u64::MAX as f64) as u64
    };
    let basis = match &curve.basis {
        super::tail::TailBasis::OwnRegister { residents } => format!(
            "this site's own register: {} comparisons between the enrolled faces of {residents} residents ({} pairs of households), generalised-Pareto tail with a 95 % cluster-bootstrap bound",
            curve.comparisons, curve.clusters
        ),
        super::tail::TailBasis::Prior { source, identities } => format!(
            "the model's prior, measured on other people's faces ({source}; {} comparisons among {identities} people), generalised-Pareto tail with a 95 % bound; the site's own register replaces it once it vouches for its size",
            curve.comparisons
        ),
    };
    Ok(Some(StrangerRisk {
        residents,
        threshold,
        target_fpir: target,
        per_comparison: p,
        expected_fpir: expected,
        fpir_upper: upper,
        max_residents: within.min(curve.max_supported(target)),
        tail_source: source,
        basis,
        comparisons: curve.comparisons,
        clusters: curve.clusters,
        supported: curve.supports(target, residents),
        threshold_for_target: curve.threshold_for(target, residents),
        threshold_source,
    }))
}

/// The register's own impostor tail, read from the database (faces of the
/// embedder `model`, households from the person table); `None` while the
/// register is too small for a tail.
pub fn own_curve_from_db(
    conn: &rusqlite::Connection,
    model: &str,
    dim: usize,
    combine: Combine,
) -> Result<Option<super::tail::TailCurve>> {
    let mut rows = Vec::new();
    crate::store::faces::for_each_gallery_row(conn, model, |resident, v| {
        rows.push((resident, v.to_vec()));
        Ok(())
    })?;
    let households: std::collections::HashMap<ResidentId, i64> =
        crate::store::people::households_by_person(conn)?
            .into_iter()
            .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(own_curve(&rows, &households, model, dim, combine).ok())
}

/// Self-calibration of the 1:N threshold in force (`[face] threshold =
/// "calibrated"`): for each new gallery, the threshold whose stranger rate
/// meets `target_fpir` at the gallery's size, on the register's own impostor
/// tail when it vouches for that size, else the model's prior. Computed when
/// the gallery is reloaded, before it is swapped in, never per frame.
#[derive(Clone, Debug)]
pub struct Calibration {
    pub target_fpir: f64,
    pub prior: Option<super::tail::TailCurve>,
}

impl Calibration {
    /// `Some` when the config asks for a self-calibrated threshold.
    pub fn from_config(config: &Config, spec: &ModelSpec) -> Option<Calibration> {
        (config.face.threshold == Some(crate::config::FaceThreshold::Calibrated)).then(|| {
            Calibration {
                target_fpir: config.face.target_fpir,
                prior: prior_curve(spec),
            }
        })
    }

    /// The threshold for `gallery`, with the register's faces read from `conn`.
    pub fn choose(
        &self,
        conn: &rusqlite::Connection,
        gallery: &Gallery,
    ) -> Result<super::gallery::CalibratedThreshold> {
        let own = own_curve_from_db(conn, gallery.model(), gallery.dim(), gallery.combine())?;
        self.choose_with(own, gallery.identities()).with_context(|| {
            format!(
                "no impostor tail to calibrate on: {} residents are too few for the register's own and embedder {:?} ships no prior",
                gallery.identities(),
                gallery.model()
            )
        })
    }

    /// The threshold at `residents` people given the register's own tail, if any.
    pub fn choose_with(
        &self,
        own: Option<super::tail::TailCurve>,
        residents: usize,
    ) -> Option<super::gallery::CalibratedThreshold> {
        // No tail at all (a model without a prior, a register too small for
        // its own): nothing to calibrate on.
        let curve = choose_curve(own, self.prior.as_ref(), self.target_fpir, residents)?;
        let source = match curve.basis {
            super::tail::TailBasis::OwnRegister { .. } => "own register",
            super::tail::TailBasis::Prior { .. } => "model prior",
        };
        let choice = choose_threshold(curve, self.target_fpir, residents.max(1));
        Some(super::gallery::CalibratedThreshold {
            threshold: choice.threshold,
            target_fpir: self.target_fpir,
            residents,
            source: source.into(),
            reachable: choice.reachable,
        })
    }
}

/// Residents with a current face for the configured embedder, read from the
/// database without changing it (0 when there is no database yet).
pub fn enrolled_residents(config: &Config, model: &str) -> Result<usize> {
    let path = config.database_path();
    if !path.exists() {
        return Ok(0);
    }
    let conn = crate::store::readers::open_read_only(&path)?;
    crate::store::faces::count_residents(&conn, model)
}

/// What `face calibrate --write-config` sets under `[face]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Calibrated {
    pub threshold: f32,
    pub target_fpir: f64,
    pub residents: usize,
    pub tail: ImpostorTail,
}

/// Writes the calibration into `[face]` of a config file, keeping every
/// other key, comment and layout. The new text must still be a valid config,
/// and replaces the file atomically, so a failure leaves the file as it was.
pub fn write_config(path: &Path, c: &Calibrated) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let updated = update_config_text(&text, c)
        .with_context(|| format!("cannot update {}", path.display()))?;
    Config::parse(&updated, &path.display().to_string())
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("the calibrated config would not be valid; nothing was written")?;
    let tmp = path.with_extension("toml.calibrate-tmp");
    std::fs::write(&tmp, &updated).with_context(|| format!("cannot write {}", tmp.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// Sets `key` to `v`, keeping the key's comment and the value's trailing
/// comment when the key is already there.
fn set(table: &mut dyn toml_edit::TableLike, key: &str, mut v: toml_edit::Value) {
    match table.get_mut(key).and_then(toml_edit::Item::as_value_mut) {
        Some(old) => {
            *v.decor_mut() = old.decor().clone();
            *old = v;
        }
        None => {
            table.insert(key, toml_edit::Item::Value(v));
        }
    }
}

/// The config text with the calibration set under `[face]`.
pub fn update_config_text(text: &str, c: &Calibrated) -> Result<String> {
    use toml_edit::{DocumentMut, Item};
    let mut doc: DocumentMut = text.parse().context("not valid TOML")?;
    if doc.get("face").is_none() {
        doc.insert("face", toml_edit::table());
    }
    let Some(face) = doc.get_mut("face").and_then(Item::as_table_like_mut) else {
        bail!("face is not a table");
    };
    set(
        face,
        "match_threshold",
        round(f64::from(c.threshold), 3).into(),
    );
    set(face, "target_fpir", c.target_fpir.into());
    set(
        face,
        "impostor_mean",
        round(f64::from(c.tail.mean), 4).into(),
    );
    set(face, "impostor_sd", round(f64::from(c.tail.sd), 4).into());
    if let Some(table) = doc.get_mut("face").and_then(Item::as_table_mut) {
        if let Some(mut key) = table.key_mut("match_threshold") {
            key.leaf_decor_mut().set_prefix(format!(
                "# `gatehouse face calibrate`: stranger false-accept rate {} at {} residents,\n\
                 # from the impostor tail below (median, upper-half sd at 95 % confidence).\n",
                percent(c.target_fpir),
                c.residents
            ));
        }
    }
    Ok(doc.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_tail_matches_known_values_and_inverts() {
        for (z, p) in [
            (0.0, 0.5),
            (1.644_853_6, 0.05),
            (3.090_232, 1e-3),
            (4.753_424, 1e-6),
            (5.997_807, 1e-9),
        ] {
            let got = normal_tail(z);
            assert!((got / p - 1.0).abs() < 1e-5, "Q({z}) = {got}, want {p}");
            assert!((normal_tail_inverse(p) - z).abs() < 1e-4, "Q⁻¹({p})");
        }
        assert!((normal_tail(-1.0) - (1.0 - normal_tail(1.0))).abs() < 1e-9);
    }

    #[test]
    fn threshold_for_a_target_gives_that_target_back() {
        let tail = ImpostorTail { mean: 0.0, sd: 0.1 };
        for n in [1, 100, 12_586] {
            let t = tail.threshold_for(0.01, n);
            assert!((tail.fpir(t, n) - 0.01).abs() < 1e-6, "n={n} t={t}");
            let max = tail.max_residents(t, 0.01);
            assert!(max + 1 >= n as u64 && max <= n as u64 + 1, "{max} vs {n}");
        }
        // More residents need a higher threshold; ~N·p for small rates.
        assert!(tail.threshold_for(0.01, 10_000) > tail.threshold_for(0.01, 100));
        let p = tail.per_comparison(0.45);
        assert!((tail.fpir(0.45, 1000) / (1000.0 * p) - 1.0).abs() < 1e-2);
    }

    #[test]
    fn tail_fit_uses_the_upper_half_and_errs_high() {
        // Left half tightly packed, right half spread: the fit follows the right.
        let score = |score, pair| ImpostorScore { score, pair };
        let mut scores = Vec::new();
        for i in 0..50 {
            scores.push(score(-0.01 * (i as f32 / 50.0), (0, 1)));
            scores.push(score(0.2 * ((i + 1) as f32 / 50.0), (i % 25, 30 + i % 2)));
        }
        let fit = fit_tail(&scores).unwrap();
        assert_eq!(fit.comparisons, 100);
        assert_eq!((fit.upper_half, fit.upper_pairs), (50, 50));
        assert!(fit.tail.mean.abs() < 0.01);
        let rms = ((1..=50)
            .map(|i| (0.2 * i as f64 / 50.0).powi(2))
            .sum::<f64>()
            / 50.0)
            .sqrt();
        assert!((f64::from(fit.sd_fitted) - rms).abs() < 0.01, "{fit:?}");
        assert!(
            fit.tail.sd > fit.sd_fitted,
            "upper confidence bound is above the estimate"
        );
        assert!(fit.tail.sd < fit.sd_fitted * 1.3);
        // The same scores from only 6 pairs of people: a wider bound.
        let few: Vec<ImpostorScore> = scores
            .iter()
            .map(|x| score(x.score, (x.pair.0 % 3, x.pair.1)))
            .collect();
        let wide = fit_tail(&few).unwrap();
        assert_eq!(wide.upper_pairs, 6);
        assert!(wide.tail.sd > fit.tail.sd * 1.3, "{wide:?}");
        let same_pair: Vec<ImpostorScore> = scores.iter().map(|x| score(x.score, (0, 1))).collect();
        assert!(
            fit_tail(&same_pair).is_err(),
            "one pair of people is no sample"
        );
        assert!(fit_tail(&[score(0.1, (0, 1)); 5]).is_err());
        let flat: Vec<ImpostorScore> = (0..40).map(|i| score(0.1, (i, i + 1))).collect();
        assert!(fit_tail(&flat).is_err(), "no spread");
    }

    /// A unit vector in `dim` dimensions pointing mostly along axis `i`.
    fn face(dim: usize, i: usize, wobble: f32) -> Vec<f32> {
        let mut v = vec![0.0; dim];
        v[i % dim] = 1.0;
        v[(i + 1) % dim] = wobble;
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    #[test]
    fn register_comparisons_skip_oneself_and_relatives_and_cluster_by_household() {
        use std::collections::HashMap;
        // Residents 1 and 2 are one household (near-identical faces: relatives);
        // resident 3 lives alone.
        let rows = vec![
            (ResidentId(1), face(8, 0, 0.1)),
            (ResidentId(1), face(8, 0, 0.2)),
            (ResidentId(2), face(8, 0, 0.15)),
            (ResidentId(3), face(8, 4, 0.1)),
        ];
        let households: HashMap<ResidentId, i64> = [(ResidentId(1), 7), (ResidentId(2), 7)].into();
        let scores =
            register_impostor_scores(&rows, &households, "m", 8, Combine::Centroid, 1_000_000, 1)
                .unwrap();
        // 1's two faces and 2's face against 3, and 3's face against 1 and 2:
        // never 1 against 2 (one family).
        assert_eq!(scores.len(), 5, "{scores:?}");
        assert!(scores.iter().all(|s| s.score < 0.5), "{scores:?}");
        let clusters: std::collections::HashSet<u64> = scores.iter().map(|s| s.cluster).collect();
        assert_eq!(clusters.len(), 1, "one pair of households");
        // Without the household, the relatives' high scores enter the tail.
        let all = register_impostor_scores(
            &rows,
            &HashMap::new(),
            "m",
            8,
            Combine::Centroid,
            1_000_000,
            1,
        )
        .unwrap();
        assert_eq!(all.len(), 8);
        assert!(all.iter().any(|s| s.score > 0.9));
    }

    #[test]
    fn the_own_register_replaces_the_prior_only_where_its_data_vouch_for_the_size() {
        use super::super::tail::{TailBasis, TailCurve};
        let curve = |basis, p_min| TailCurve {
            basis,
            comparisons: 1000,
            clusters: 100,
            p_min,
            points: vec![[0.1, 0.1, 0.2], [1.0, 1e-9, 1e-8]],
        };
        let own = curve(TailBasis::OwnRegister { residents: 50 }, 1e-4);
        let prior = curve(
            TailBasis::Prior {
                source: "lfw".into(),
                identities: 2000,
            },
            1e-8,
        );
        // 1 % at 50 residents needs 2e-4 per comparison: the register vouches for it.
        let chosen = choose_curve(Some(own.clone()), Some(&prior), 0.01, 50).unwrap();
        assert_eq!(chosen.basis, own.basis);
        // At 5,000 residents (2e-6) only the prior does.
        let chosen = choose_curve(Some(own.clone()), Some(&prior), 0.01, 5000).unwrap();
        assert_eq!(chosen.basis, prior.basis);
        // No prior: the own register, and the choice says it is beyond its data.
        let chosen = choose_curve(Some(own), None, 0.01, 5000).unwrap();
        let choice = choose_threshold(chosen, 0.01, 5000);
        assert!(
            !choice.supported && choice.max_supported < 5000,
            "{choice:?}"
        );
        assert!(
            choice.reachable && choice.fpir_upper <= 0.0101,
            "{choice:?}"
        );
        assert!(choose_curve(None, None, 0.01, 10).is_none());
    }

    #[test]
    fn self_calibration_picks_a_threshold_for_the_target_at_the_registers_size() {
        use super::super::tail::{TailBasis, TailCurve};
        let prior = TailCurve {
            basis: TailBasis::Prior {
                source: "lfw".into(),
                identities: 2000,
            },
            comparisons: 1_000_000,
            clusters: 10_000,
            p_min: 1e-8,
            points: vec![
                [0.2, 1e-2, 1.2e-2],
                [0.4, 1e-4, 1.2e-4],
                [0.6, 1e-7, 1.5e-7],
            ],
        };
        let c = Calibration {
            target_fpir: 0.01,
            prior: Some(prior.clone()),
        };
        let small = c.choose_with(None, 10).unwrap();
        let big = c.choose_with(None, 5000).unwrap();
        assert_eq!(small.source, "model prior");
        assert!(small.reachable && big.reachable, "{small:?} {big:?}");
        // A larger register needs a stricter threshold for the same stranger rate.
        assert!(big.threshold > small.threshold, "{small:?} {big:?}");
        let (_, upper) = prior.fpir(big.threshold, 5000);
        assert!(upper <= 0.0101, "{big:?}: {upper}");
        // What the daemon reports is the threshold it matches at, and why.
        let mut config = Config::demo();
        config.face.threshold = Some(crate::config::FaceThreshold::Calibrated);
        let spec = crate::models::Manifest::builtin()
            .get("mobilefacenet")
            .unwrap()
            .clone();
        let risk = stranger_risk_at(&config, &spec, 5000, None, Some(&big))
            .unwrap()
            .unwrap();
        assert_eq!(risk.threshold, big.threshold);
        assert!(
            risk.threshold_source
                .starts_with("self-calibrated on the model prior"),
            "{risk:?}"
        );
        assert!(
            risk.describe().contains("self-calibrated"),
            "{}",
            risk.describe()
        );
        // Nothing to rest on: no threshold is invented.
        let bare = Calibration {
            target_fpir: 0.01,
            prior: None,
        };
        assert!(bare.choose_with(None, 10).is_none());
    }

    #[test]
    fn a_register_of_sixty_residents_rests_on_its_own_faces_and_says_so() {
        use crate::store::{faces::NewFace, Store};
        let dir = std::env::temp_dir().join(format!(
            "gatehouse-owntail-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        let mut store = Store::open(&dir.join("g.db"), &dir).unwrap();
        let now = crate::store::now_rfc3339();
        let conn = store.conn();
        conn.execute(
            "INSERT INTO address (building, unit, room) VALUES ('3', '2', '501')",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO household (address_id, kind, created_at, created_by) VALUES (1, 'rented', ?1, 't')",
            [&now],
        )
        .unwrap();
        // 60 people with three noisy photos each of their own random face; the
        // first two share household 1.
        let mut rng = super::super::openset::SplitMix(5);
        let unit = |v: Vec<f32>| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        for i in 0..60 {
            let household = if i < 2 { Some(1) } else { None };
            store
                .conn()
                .execute(
                    "INSERT INTO person (name, role, household_id, created_at, created_by, updated_at, updated_by)
                     VALUES ('x', 'owner', ?1, ?2, 't', ?2, 't')",
                    rusqlite::params![household, now],
                )
                .unwrap();
            let id = ResidentId(store.conn().last_insert_rowid());
            let own: Vec<f32> = (0..64).map(|_| rng.normal() as f32).collect();
            let photos: Vec<Vec<f32>> = (0..3)
                .map(|_| unit(own.iter().map(|x| x + 0.5 * rng.normal() as f32).collect()))
                .collect();
            let faces: Vec<NewFace<'_>> = photos
                .iter()
                .map(|e| NewFace {
                    model: "m",
                    embedding: e,
                    crop: &[0u8; 12],
                    eye_px: 40.0,
                    sharpness: 100.0,
                })
                .collect();
            let secret = store.secret().clone();
            crate::store::faces::enroll(store.conn_mut(), &secret, id, &faces, "test").unwrap();
        }
        let curve = own_curve_from_db(store.conn(), "m", 64, Combine::Centroid)
            .unwrap()
            .expect("60 residents make a tail");
        assert_eq!(
            curve.basis,
            super::super::tail::TailBasis::OwnRegister { residents: 60 }
        );
        // 59 families (one of two, 58 alone): 59·58/2 pairs of families.
        assert_eq!(curve.clusters, 59 * 58 / 2);
        assert_eq!(curve.comparisons, 3 * 60 * 59 - 6);
        let mut config = Config::demo();
        config.face.target_fpir = 0.01;
        let spec = crate::models::Manifest::builtin()
            .get("mobilefacenet")
            .unwrap()
            .clone();
        let risk = stranger_risk_with(&config, &spec, 60, Some(curve))
            .unwrap()
            .unwrap();
        assert_eq!(risk.tail_source, "own register", "{risk:?}");
        assert!(risk.supported && risk.expected_fpir <= risk.fpir_upper);
        let text = risk.describe();
        assert!(
            text.starts_with("60 residents with a face; threshold 0.450 in force")
                && text.contains("this site's own register")
                && text.contains("comparisons"),
            "{text}"
        );
        // Never a register size beyond what 1,711 pairs vouch for (0.1 / 1711 per comparison).
        assert!(risk.max_residents <= 171, "{risk:?}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn risk_grows_with_the_register_and_warns_past_the_target() {
        let risk = |residents| {
            let tail = ImpostorTail { mean: 0.0, sd: 0.1 };
            StrangerRisk {
                residents,
                threshold: 0.45,
                target_fpir: 0.01,
                per_comparison: tail.per_comparison(0.45),
                expected_fpir: tail.fpir(0.45, residents),
                fpir_upper: tail.fpir(0.45, residents),
                max_residents: tail.max_residents(0.45, 0.01),
                tail_source: "config",
                basis: "a Gaussian tail".into(),
                comparisons: 0,
                clusters: 0,
                supported: true,
                threshold_for_target: None,
                threshold_source: "configured".into(),
            }
        };
        let small = risk(100);
        assert!(!small.over_target(), "{small:?}");
        assert!(!small.describe().contains("outgrown"));
        let big = risk(small.max_residents as usize + 100);
        assert!(big.over_target());
        let text = big.describe();
        assert!(
            text.contains("outgrown") && text.contains("card + face"),
            "{text}"
        );
    }

    #[test]
    fn config_refuses_half_a_tail_and_rates_outside_zero_to_one() {
        use crate::config::DEMO_CONFIG;
        let with = |extra: &str| {
            let text = DEMO_CONFIG.replacen("[face]\n", &format!("[face]\n{extra}\n"), 1);
            Config::parse(&text, "g.toml").map_err(|e| e.to_string())
        };
        let ok = with("impostor_mean = -0.01\nimpostor_sd = 0.09\ntarget_fpir = 0.001").unwrap();
        let spec = crate::models::Manifest::builtin()
            .get("mobilefacenet")
            .unwrap()
            .clone();
        let (tail, source) = configured_tail(&ok, &spec).unwrap();
        assert_eq!((tail.mean, tail.sd, source), (-0.01, 0.09, "config"));
        // MobileFaceNet ships a measured prior now, not a Gaussian.
        assert!(configured_tail(&Config::demo(), &spec).is_none());
        assert!(prior_curve(&spec).is_some_and(|c| c.p_min > 0.0 && c.points.len() > 50));
        for (bad, key) in [
            ("impostor_mean = 0.0", "face.impostor_sd"),
            ("impostor_mean = 0.0\nimpostor_sd = 0.0", "face.impostor_sd"),
            ("target_fpir = 1.5", "face.target_fpir"),
            ("target_fpir = 0.0", "face.target_fpir"),
            ("verify_threshold = 2.0", "face.verify_threshold"),
            ("combine = \"mean\"", "face.combine"),
        ] {
            let err = with(bad).unwrap_err();
            assert!(err.contains(key), "{bad}: {err}");
        }
    }

    #[test]
    fn calibration_is_written_into_face_keeping_the_rest() {
        let text = "# my gateway\n[site]\nid = \"x\" # keep me\n\n[face]\nmargin = 0.07\n# the target\ntarget_fpir = 0.05 # was 5 %\nmatch_threshold = 0.5\n\n[access]\nlockout_s = 30\n";
        let c = Calibrated {
            threshold: 0.41234,
            target_fpir: 0.01,
            residents: 12586,
            tail: ImpostorTail {
                mean: -0.0123,
                sd: 0.1,
            },
        };
        let out = update_config_text(text, &c).unwrap();
        assert!(
            out.starts_with("# my gateway\n[site]\nid = \"x\" # keep me\n"),
            "{out}"
        );
        assert!(out.contains("margin = 0.07"));
        assert!(out.contains("match_threshold = 0.412"), "{out}");
        assert!(!out.contains("match_threshold = 0.5"));
        assert!(out.contains("impostor_mean = -0.0123"));
        assert!(
            out.contains("# the target\ntarget_fpir = 0.01 # was 5 %"),
            "{out}"
        );
        assert!(out.contains("12586 residents"));
        assert!(out.contains("[access]\nlockout_s = 30"));
        // No [face] yet: it is added.
        let out = update_config_text("[site]\nid = \"x\"\n", &c).unwrap();
        assert!(
            out.contains("[face]") && out.contains("target_fpir = 0.01"),
            "{out}"
        );
        assert!(update_config_text("face = 3\n", &c).is_err());
    }
}
