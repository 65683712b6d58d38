//! Face embeddings as vectors: the dot product that scores a probe against a
//! gallery row or a stranger's centroid, and how one resident's several
//! enrolled faces combine into gallery rows. Here, below `config`, `store` and
//! `face`, because all three use them (the config names a `Combine`, the
//! stranger register in `store` scores with `dot`).

use serde::{Deserialize, Serialize};

/// How the several enrolled faces of one resident make that resident's score
/// (measured with `gatehouse face eval-1n`; BENCHMARKS.md "Matching policy").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// The best cosine over the resident's enrolled faces.
    Best,
    /// The cosine with the normalised mean of the resident's faces (one row
    /// per resident). The default: the best of K faces widens the stranger
    /// score tail, the mean narrows it (BENCHMARKS.md).
    #[default]
    Centroid,
    /// The best over the enrolled faces and their centroid.
    Both,
}

impl Combine {
    /// Gallery rows for `faces` enrolled faces of `residents` people.
    pub fn rows(self, faces: usize, residents: usize) -> usize {
        match self {
            Combine::Best => faces,
            Combine::Centroid => residents,
            Combine::Both => faces + residents,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Combine::Best => "best",
            Combine::Centroid => "centroid",
            Combine::Both => "both",
        }
    }
}

impl std::str::FromStr for Combine {
    type Err = String;
    fn from_str(s: &str) -> Result<Combine, String> {
        match s {
            "best" => Ok(Combine::Best),
            "centroid" => Ok(Combine::Centroid),
            "both" => Ok(Combine::Both),
            other => Err(format!("expected best, centroid or both, got {other:?}")),
        }
    }
}

/// Dot product with eight independent accumulators, so the compiler can keep
/// it in SIMD registers (a single running sum cannot be reordered).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let chunks = n / 8;
    for i in 0..chunks {
        let (x, y) = (&a[i * 8..i * 8 + 8], &b[i * 8..i * 8 + 8]);
        for j in 0..8 {
            acc[j] += x[j] * y[j];
        }
    }
    let mut sum = (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]);
    for i in chunks * 8..n {
        sum += a[i] * b[i];
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_the_naive_sum_for_odd_lengths() {
        let a: Vec<f32> = (0..13).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..13).map(|i| 1.0 - i as f32 * 0.05).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-5);
    }
}
