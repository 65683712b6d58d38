//! An int8 copy of the gallery for the first pass of a 1:N search.
//!
//! Scanning 100,000 f32 embeddings moves 51 MB through memory per probe; the
//! int8 copy is a quarter of that. Each row is scaled so its largest value is
//! ±127, and we keep a bound on how far an int8 score can be from the stored
//! one. The gallery then rescores (from its int16 rows) only the residents
//! whose int8 score could still make them the best or second-best identity,
//! so the result is the same as a full scan, never an approximation.

use crate::domain::ResidentId;

/// A resident and the rows that are theirs.
pub type Span = (ResidentId, std::ops::Range<usize>);

/// Rows of int8 codes with their scales and error bounds.
#[derive(Clone, Debug, Default)]
pub struct Int8Rows {
    dim: usize,
    codes: Vec<i8>,
    /// Per row: 1 / scale, turning an integer dot product back into a cosine.
    inv_scale: Vec<f32>,
    /// Largest ‖x − x̂‖ over rows (x̂ the dequantised row).
    max_err: f32,
    /// Largest ‖x̂‖ over rows.
    max_norm: f32,
}

/// A vector quantised to int8: codes, 1/scale, ‖x − x̂‖, ‖x̂‖ and ‖x‖.
pub struct Quantized {
    pub codes: Vec<i8>,
    pub inv_scale: f32,
    pub err: f32,
    pub norm: f32,
    pub original_norm: f32,
}

pub fn quantize(v: &[f32]) -> Quantized {
    let max = v.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 { 127.0 / max } else { 1.0 };
    let inv_scale = 1.0 / scale;
    let codes: Vec<i8> = v
        .iter()
        .map(|x| (x * scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    let (mut err2, mut norm2, mut orig2) = (0.0f32, 0.0f32, 0.0f32);
    for (x, c) in v.iter().zip(&codes) {
        let back = *c as f32 * inv_scale;
        err2 += (x - back) * (x - back);
        norm2 += back * back;
        orig2 += x * x;
    }
    Quantized {
        codes,
        inv_scale,
        err: err2.sqrt(),
        norm: norm2.sqrt(),
        original_norm: orig2.sqrt(),
    }
}

impl Int8Rows {
    pub fn new(dim: usize, capacity: usize) -> Int8Rows {
        Int8Rows {
            dim,
            codes: Vec::with_capacity(capacity * dim),
            inv_scale: Vec::with_capacity(capacity),
            max_err: 0.0,
            max_norm: 0.0,
        }
    }

    pub fn push(&mut self, v: &[f32]) {
        let q = quantize(v);
        self.codes.extend_from_slice(&q.codes);
        self.inv_scale.push(q.inv_scale);
        self.max_err = self.max_err.max(q.err);
        self.max_norm = self.max_norm.max(q.norm);
    }

    /// How far any int8 score against this probe can be from the exact
    /// cosine: |x·q − x̂·q̂| ≤ ‖x − x̂‖·‖q‖ + ‖x̂‖·‖q − q̂‖ (Cauchy–Schwarz),
    /// plus slack for rounding and the int16 storage.
    pub fn bound(&self, probe: &Quantized) -> f32 {
        self.max_err * probe.original_norm + self.max_norm * probe.err + 1e-4
    }

    /// For each identity (a row range), the largest int8 score of its rows.
    pub fn identity_maxima(&self, probe: &Quantized, spans: &[Span], out: &mut Vec<f32>) {
        out.clear();
        out.resize(spans.len(), f32::NEG_INFINITY);
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports AVX2, checked just above.
                unsafe { scan_avx2(self, probe, spans, out) };
                return;
            }
        }
        scan(self, probe, spans, out);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scan_avx2(rows: &Int8Rows, probe: &Quantized, spans: &[Span], out: &mut [f32]) {
    // The same loop, compiled for AVX2 (the default x86-64 target has only SSE2).
    scan(rows, probe, spans, out)
}

#[inline(always)]
fn scan(rows: &Int8Rows, probe: &Quantized, spans: &[Span], out: &mut [f32]) {
    let dim = rows.dim;
    let q = &probe.codes[..dim];
    for (slot, (_, range)) in out.iter_mut().zip(spans) {
        let mut best = f32::NEG_INFINITY;
        for row in range.clone() {
            let codes = &rows.codes[row * dim..(row + 1) * dim];
            let score = dot_i8(q, codes) as f32 * rows.inv_scale[row];
            best = best.max(score);
        }
        *slot = best * probe.inv_scale;
    }
}

#[inline(always)]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let mut ca = a.chunks_exact(16);
    let mut cb = b.chunks_exact(16);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for j in 0..16 {
            acc[j] += (x[j] as i16 * y[j] as i16) as i32;
        }
    }
    let mut sum: i32 = acc.iter().sum();
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        sum += *x as i32 * *y as i32;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int8_scores_stay_within_the_stated_bound() {
        let mut seed = 12345u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
        };
        let unit = |v: Vec<f32>| {
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let dim = 131; // not a multiple of 16: the remainder path counts too
        let vectors: Vec<Vec<f32>> = (0..200)
            .map(|_| unit((0..dim).map(|_| next()).collect()))
            .collect();
        let mut rows = Int8Rows::new(dim, vectors.len());
        for v in &vectors {
            rows.push(v);
        }
        let probe_f = unit((0..dim).map(|_| next()).collect());
        let probe = quantize(&probe_f);
        let bound = rows.bound(&probe);
        assert!(bound < 0.05, "bound {bound}");
        let spans: Vec<Span> = (0..vectors.len())
            .map(|i| (ResidentId(i as i64 + 1), i..i + 1))
            .collect();
        let mut approx = Vec::new();
        rows.identity_maxima(&probe, &spans, &mut approx);
        for (v, a) in vectors.iter().zip(&approx) {
            let exact: f32 = v.iter().zip(&probe_f).map(|(x, y)| x * y).sum();
            assert!((exact - a).abs() <= bound, "{exact} vs {a}, bound {bound}");
        }
    }
}
