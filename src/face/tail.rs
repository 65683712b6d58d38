//! The far tail of impostor scores, where a stranger's face meets thousands
//! of residents. The rates that matter (1e-5 per comparison and below) lie
//! beyond most of the data, so the tail above a high quantile `u` is fitted
//! with a generalised Pareto distribution (the extreme-value law for
//! exceedances), and the rate at a threshold `t` is
//! `P(score ≥ t) = rate_u · (1 + ξ (t − u) / σ)^(−1/ξ)`.
//!
//! - ξ and σ come from probability-weighted moments (Hosking & Wallis 1987):
//!   closed form, stable on a few dozen exceedances.
//! - Comparisons are not independent: every photo of the same two people (or
//!   two households: relatives look alike) says much the same thing. Each
//!   score carries a *cluster* (the pair it compares), and the confidence
//!   bound is a cluster bootstrap: whole clusters are redrawn, their number
//!   varied as a Poisson count, and the GPD refitted; the bound at `t` is the
//!   95th percentile of the redrawn rates.
//! - The fit is trusted down to a tenth of its resolution, `0.1 / clusters`
//!   per comparison, and never further: below that, no register size is
//!   claimed ([`TailCurve::p_min`]).
//!
//! [`TailCurve`] is what the rest of the product uses: the rate and its bound
//! on a grid of thresholds, from the site's own register or from a model's
//! prior in the manifest, with what it rests on.

use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

use super::openset::SplitMix;

/// One impostor comparison and the pair of identities (or households) it compares.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Clustered {
    pub score: f32,
    pub cluster: u64,
}

/// The cluster of an unordered pair `(a, b)`.
pub fn pair_cluster(a: u64, b: u64) -> u64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    lo.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ hi.rotate_left(29)
}

/// A generalised Pareto law for the exceedances over `u`, with the share of comparisons above `u`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gpd {
    pub rate: f64,
    pub xi: f64,
    pub sigma: f64,
}

impl Gpd {
    /// P(score ≥ u + excess).
    pub fn survival(&self, excess: f64) -> f64 {
        if excess <= 0.0 {
            return self.rate;
        }
        let z = excess / self.sigma;
        let s = if self.xi.abs() < 1e-9 {
            (-z).exp()
        } else {
            let base = 1.0 + self.xi * z;
            if base <= 0.0 {
                0.0
            } else {
                base.powf(-1.0 / self.xi)
            }
        };
        self.rate * s
    }

    /// Fits ξ and σ to excesses (all > 0) by probability-weighted moments.
    pub fn fit(excesses: &mut [f64], rate: f64) -> Option<Gpd> {
        let m = excesses.len();
        if m < 3 {
            return None;
        }
        excesses.sort_by(f64::total_cmp);
        let a0 = excesses.iter().sum::<f64>() / m as f64;
        let a1 = excesses
            .iter()
            .enumerate()
            .map(|(i, y)| (1.0 - (i as f64 + 0.65) / m as f64) * y)
            .sum::<f64>()
            / m as f64;
        let d = a0 - 2.0 * a1;
        if a0 <= 0.0 || d <= 0.0 {
            return None;
        }
        // Hosking's k = a0/d − 2 is −ξ.
        let xi = 2.0 - a0 / d;
        let sigma = 2.0 * a0 * a1 / d;
        (sigma > 0.0 && xi.is_finite()).then_some(Gpd { rate, xi, sigma })
    }
}

/// A fitted tail: the GPD above `u`, its bootstrap replicates, and the data.
#[derive(Clone, Debug)]
pub struct TailFit {
    pub comparisons: usize,
    /// Distinct clusters (pairs of identities or households) among all comparisons.
    pub clusters: usize,
    pub u: f32,
    pub exceedances: usize,
    pub exceedance_clusters: usize,
    pub gpd: Gpd,
    pub max: f32,
    replicates: Vec<Gpd>,
    /// The highest scores, descending, for the empirical rate below `u`.
    top: Vec<f32>,
}

/// Fewest comparisons and exceeding clusters a tail is fitted from.
pub const MIN_COMPARISONS: usize = 500;
pub const MIN_EXCEEDANCE_CLUSTERS: usize = 25;
/// Bootstrap replicates for the confidence bound.
const REPLICATES: usize = 200;
/// One-sided confidence of the bound.
pub const CONFIDENCE: f64 = 0.95;

impl TailFit {
    /// Fits the tail of `scores` (see the module docs); `seed` fixes the bootstrap.
    pub fn fit(scores: &[Clustered], seed: u64) -> Result<TailFit> {
        TailFit::fit_with(scores, seed, MIN_EXCEEDANCE_CLUSTERS)
    }

    /// [`TailFit::fit`] from as few as `min_clusters` pairs of people among the
    /// top scores (a small set measured for a prior: its bound is wide, and
    /// [`TailFit::p_min`] keeps it from vouching for much).
    pub fn fit_with(scores: &[Clustered], seed: u64, min_clusters: usize) -> Result<TailFit> {
        let mut s: Vec<Clustered> = scores
            .iter()
            .copied()
            .filter(|x| x.score.is_finite())
            .collect();
        let n = s.len();
        if n < MIN_COMPARISONS {
            bail!("{n} impostor comparisons; at least {MIN_COMPARISONS} are needed for a tail");
        }
        let mut all_clusters: Vec<u64> = s.iter().map(|x| x.cluster).collect();
        all_clusters.sort_unstable();
        all_clusters.dedup();
        s.sort_by(|a, b| b.score.total_cmp(&a.score));
        let k = (n / 100).clamp(50, 2000).min(n - 1);
        let u = s[k].score;
        let above: Vec<&Clustered> = s.iter().take_while(|x| x.score > u).collect();
        let mut groups: std::collections::HashMap<u64, Vec<f64>> = Default::default();
        for x in &above {
            groups
                .entry(x.cluster)
                .or_default()
                .push(f64::from(x.score - u));
        }
        if groups.len() < min_clusters.max(5) {
            bail!(
                "the top {} scores come from {} pairs of people; at least {} are needed (more residents)",
                above.len(),
                groups.len(),
                min_clusters.max(5)
            );
        }
        let mut excesses: Vec<f64> = above.iter().map(|x| f64::from(x.score - u)).collect();
        let rate = above.len() as f64 / n as f64;
        let Some(gpd) = Gpd::fit(&mut excesses, rate) else {
            bail!("the top impostor scores do not spread; cannot fit a tail");
        };
        // Cluster bootstrap: the number of exceeding clusters varies like a
        // Poisson count, and whole clusters are redrawn with replacement.
        let groups: Vec<Vec<f64>> = groups.into_values().collect();
        let mut rng = SplitMix(seed);
        let mut replicates = Vec::with_capacity(REPLICATES);
        let c = groups.len() as f64;
        for _ in 0..REPLICATES {
            let drawn = (c + c.sqrt() * rng.normal()).round().max(3.0) as usize;
            let mut ex = Vec::with_capacity(above.len());
            for _ in 0..drawn {
                let g = &groups[rng.below(groups.len())];
                ex.extend_from_slice(g);
            }
            let rate_b = ex.len() as f64 / n as f64;
            if let Some(g) = Gpd::fit(&mut ex, rate_b) {
                replicates.push(g);
            }
        }
        let top_len = (k * 20).min(n);
        Ok(TailFit {
            comparisons: n,
            clusters: all_clusters.len(),
            u,
            exceedances: above.len(),
            exceedance_clusters: c as usize,
            gpd,
            max: s[0].score,
            replicates,
            top: s[..top_len].iter().map(|x| x.score).collect(),
        })
    }

    /// The fitted per-comparison rate at `t`.
    pub fn rate(&self, t: f32) -> f64 {
        if t <= self.u {
            return self.empirical(t);
        }
        self.gpd.survival(f64::from(t - self.u))
    }

    /// The upper confidence bound of the per-comparison rate at `t`.
    pub fn rate_upper(&self, t: f32) -> f64 {
        if t <= self.u {
            let p = self.empirical(t);
            return (p * (1.0 + 1.645 / (self.exceedance_clusters as f64).sqrt())).min(1.0);
        }
        let excess = f64::from(t - self.u);
        let mut all: Vec<f64> = self.replicates.iter().map(|g| g.survival(excess)).collect();
        if all.is_empty() {
            return self.rate(t);
        }
        all.sort_by(f64::total_cmp);
        let at = ((all.len() as f64 * CONFIDENCE).ceil() as usize).clamp(1, all.len()) - 1;
        all[at].max(self.rate(t))
    }

    fn empirical(&self, t: f32) -> f64 {
        let count = self.top.partition_point(|s| *s >= t);
        count as f64 / self.comparisons as f64
    }

    /// The smallest per-comparison rate the fit vouches for.
    pub fn p_min(&self) -> f64 {
        0.1 / self.clusters.max(1) as f64
    }

    /// The rate and its bound on the grid of thresholds 0.10..=1.00 (steps of 0.01).
    pub fn curve(&self, basis: TailBasis) -> TailCurve {
        let points = grid()
            .map(|t| [f64::from(t), self.rate(t), self.rate_upper(t)])
            .collect();
        TailCurve {
            basis,
            comparisons: self.comparisons,
            clusters: self.clusters,
            p_min: self.p_min(),
            points,
        }
    }
}

/// Thresholds the curves are tabulated on: 0.10 to 1.00 in steps of 0.01.
fn grid() -> impl Iterator<Item = f32> {
    (10..=100).map(|i| i as f32 / 100.0)
}

// The curve is part of a model's manifest entry (its prior), so it lives
// with the models; the fitting above produces it.
pub use crate::models::tail_curve::{fpir_from, per_comparison_for, TailBasis, TailCurve};

impl SplitMix {
    /// A standard normal deviate (Box–Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let u2 = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores whose tail is exactly exponential above 0.3 (ξ = 0, σ = 0.05):
    /// quantiles of P(S ≥ s) = 0.1·exp(−(s − 0.3)/0.05) above 0.3, uniform below.
    /// Runs of `run` neighbouring scores share a cluster, as photos of the
    /// same two people score alike.
    fn exponential_tail(n: usize, run: u64) -> Vec<Clustered> {
        (0..n)
            .map(|i| {
                let q = (i as f64 + 0.5) / n as f64; // survival probability
                let score = if q < 0.1 {
                    0.3 + 0.05 * (0.1 / q).ln()
                } else {
                    0.3 * (1.0 - q) / 0.9
                };
                Clustered {
                    score: score as f32,
                    cluster: i as u64 / run,
                }
            })
            .collect()
    }

    #[test]
    fn gpd_recovers_an_exponential_tail_and_the_bound_lies_above_it() {
        let scores = exponential_tail(100_000, 1);
        let fit = TailFit::fit(&scores, 7).unwrap();
        assert!(fit.gpd.xi.abs() < 0.1, "{:?}", fit.gpd);
        // True rate at 0.6: 0.1·exp(−6) = 2.5e-4, far above u.
        let truth = 0.1 * (-6.0f64).exp();
        let got = fit.rate(0.6);
        assert!((got / truth - 1.0).abs() < 0.5, "{got} vs {truth}");
        assert!(fit.rate_upper(0.6) >= got);
        assert!(fit.rate(0.7) < fit.rate(0.6), "falls with the threshold");
    }

    #[test]
    fn few_clusters_widen_the_bound_and_too_few_are_refused() {
        let many = TailFit::fit(&exponential_tail(20_000, 1), 1).unwrap();
        let few = TailFit::fit(&exponential_tail(20_000, 5), 1).unwrap();
        assert_eq!(
            (many.exceedance_clusters, few.exceedance_clusters),
            (200, 40)
        );
        let t = 0.65;
        let width = |f: &TailFit| f.rate_upper(t) / f.rate(t);
        assert!(
            width(&few) > width(&many),
            "{} vs {}",
            width(&few),
            width(&many)
        );
        assert!(few.p_min() > many.p_min());
        assert!(TailFit::fit(&exponential_tail(20_000, 20), 1).is_err());
        assert!(TailFit::fit(&exponential_tail(100, 1), 1).is_err());
    }

    #[test]
    fn curve_gives_a_threshold_that_meets_the_target_by_its_bound_and_knows_its_limit() {
        let fit = TailFit::fit(&exponential_tail(100_000, 4), 3).unwrap();
        assert_eq!(fit.clusters, 25_000);
        let curve = fit.curve(TailBasis::OwnRegister { residents: 100 });
        let t = curve.threshold_for(0.01, 1000).unwrap();
        let (fpir, bound) = curve.fpir(t, 1000);
        assert!(bound <= 0.0101 && fpir <= bound, "{t}: {fpir} {bound}");
        // More residents need a higher threshold.
        assert!(curve.threshold_for(0.01, 100).unwrap() < t);
        // Nothing reaches 1e-12 per comparison with this tail's bound.
        assert_eq!(curve.threshold_for(1e-9, 1000), None);
        // 25,000 clusters vouch for 4e-6 per comparison: 1 % at up to ~2,500 residents.
        assert!(curve.supports(0.01, 2000));
        assert!(!curve.supports(0.01, 3000));
        assert_eq!(curve.max_supported(0.01), 2512);
        // The envelope with a heavier tail takes the heavier rate and the weaker data.
        let heavy = TailCurve {
            basis: TailBasis::Prior {
                source: "heavy".into(),
                identities: 12,
            },
            comparisons: 3000,
            clusters: 66,
            p_min: 0.1 / 66.0,
            points: vec![[0.1, 0.5, 0.6], [1.0, 1e-3, 1e-2]],
        };
        let both = TailCurve {
            basis: TailBasis::Prior {
                source: "light".into(),
                identities: 100,
            },
            ..curve.clone()
        }
        .envelope(&heavy);
        assert!(both.at(0.9).1 >= heavy.at(0.9).1 && both.at(0.9).1 >= curve.at(0.9).1);
        assert_eq!(both.p_min, heavy.p_min);
        assert!(matches!(
            both.basis,
            TailBasis::Prior {
                identities: 112,
                ..
            }
        ));
    }
}
