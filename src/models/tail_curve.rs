//! A model's impostor tail: per-comparison false-accept rates against the
//! threshold, with their confidence bound and what they rest on.
//!
//! A model's manifest entry ships one as its prior; `face::tail` fits the
//! site's own from the register. Kept here, below `face`, so the manifest
//! does not depend on the face pipeline.

use serde::{Deserialize, Serialize};

/// What a tail curve rests on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum TailBasis {
    /// The site's own register: scores between different residents' faces.
    OwnRegister { residents: usize },
    /// A prior shipped with the model, measured on other people's faces.
    Prior { source: String, identities: usize },
}

/// Per-comparison false-accept rates against the threshold, with their
/// upper confidence bound and what they rest on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TailCurve {
    pub basis: TailBasis,
    pub comparisons: usize,
    /// Independent pairs of identities (or households) behind the comparisons.
    pub clusters: usize,
    /// Below this per-comparison rate the data says nothing.
    pub p_min: f64,
    /// `[threshold, rate, upper bound]`, thresholds ascending.
    pub points: Vec<[f64; 3]>,
}

/// The per-comparison rate that gives stranger FPIR `target` with `residents` people.
pub fn per_comparison_for(target: f64, residents: usize) -> f64 {
    let n = residents.max(1) as f64;
    -((-target).ln_1p() / n).exp_m1()
}

/// The stranger FPIR from a per-comparison rate `p` and `residents` people.
pub fn fpir_from(p: f64, residents: usize) -> f64 {
    -(residents as f64 * (-p.min(1.0)).ln_1p()).exp_m1()
}

impl TailCurve {
    /// (rate, upper bound) at `t`, interpolating log-rates between grid points.
    pub fn at(&self, t: f32) -> (f64, f64) {
        let t = f64::from(t);
        let pts = &self.points;
        let Some(first) = pts.first() else {
            return (1.0, 1.0);
        };
        if t <= first[0] {
            return (first[1], first[2]);
        }
        for w in pts.windows(2) {
            let (a, b) = (w[0], w[1]);
            if t <= b[0] {
                let f = (t - a[0]) / (b[0] - a[0]);
                let lerp = |x: f64, y: f64| {
                    if x <= 0.0 || y <= 0.0 {
                        x + f * (y - x)
                    } else {
                        (x.ln() + f * (y.ln() - x.ln())).exp()
                    }
                };
                return (lerp(a[1], b[1]), lerp(a[2], b[2]));
            }
        }
        let last = pts[pts.len() - 1];
        (last[1], last[2])
    }

    /// The lowest threshold whose *bound* gives at most `target` FPIR with
    /// `residents` people; `None` when even the highest does not.
    pub fn threshold_for(&self, target: f64, residents: usize) -> Option<f32> {
        let p = per_comparison_for(target, residents);
        let (mut lo, mut hi) = (self.points.first()?[0] as f32, 1.0f32);
        if self.at(hi).1 > p {
            return None;
        }
        if self.at(lo).1 <= p {
            return Some(lo);
        }
        for _ in 0..40 {
            let mid = (lo + hi) / 2.0;
            if self.at(mid).1 > p {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Some(hi)
    }

    /// The upper envelope of two priors: at every threshold the higher rate
    /// and bound; the data vouch no further than the weaker of the two.
    pub fn envelope(&self, other: &TailCurve) -> TailCurve {
        let (source, identities) = match (&self.basis, &other.basis) {
            (
                TailBasis::Prior {
                    source: a,
                    identities: n,
                },
                TailBasis::Prior {
                    source: b,
                    identities: m,
                },
            ) => (
                format!("{b}; {a}; the heavier tail at each threshold"),
                n + m,
            ),
            _ => ("an envelope of two tails".to_string(), 0),
        };
        let points = self
            .points
            .iter()
            .map(|p| {
                let (rate, upper) = other.at(p[0] as f32);
                [p[0], p[1].max(rate), p[2].max(upper)]
            })
            .collect();
        TailCurve {
            basis: TailBasis::Prior { source, identities },
            comparisons: self.comparisons + other.comparisons,
            clusters: self.clusters + other.clusters,
            p_min: self.p_min.max(other.p_min),
            points,
        }
    }

    /// Whether the data vouches for a rate of `target` at `residents` people.
    pub fn supports(&self, target: f64, residents: usize) -> bool {
        per_comparison_for(target, residents) >= self.p_min
    }

    /// The largest register the data vouches for at `target`.
    pub fn max_supported(&self, target: f64) -> u64 {
        // per_comparison_for(target, N) ≈ target / N ≥ p_min
        let n = (-target).ln_1p() / (-self.p_min).ln_1p();
        n.floor().max(0.0) as u64
    }

    /// Expected stranger FPIR and its bound at threshold `t` with `residents` people.
    pub fn fpir(&self, t: f32, residents: usize) -> (f64, f64) {
        let (p, hi) = self.at(t);
        (fpir_from(p, residents), fpir_from(hi, residents))
    }
}
