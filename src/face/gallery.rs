//! The gallery: every enrolled embedding in one contiguous row-major matrix,
//! rows grouped by resident, searched 1:N by cosine similarity. A search
//! returns the best and the second-best *identity* (not the second photo of
//! the same person): the policy needs the gap between two different people.
//!
//! [`GalleryHandle`] lets the gates keep searching while a new gallery is built
//! from the register; the swap is one pointer under a lock.

use std::sync::{Arc, RwLock};

use anyhow::{bail, Result};
use serde::Serialize;

use crate::domain::ResidentId;

/// One resident's score against a probe.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct IdentityScore {
    pub resident: ResidentId,
    pub score: f32,
}

/// The result of a 1:N search.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Ranked {
    pub best: IdentityScore,
    /// The best-scoring *other* resident, if the gallery holds one.
    pub second: Option<IdentityScore>,
}

impl Ranked {
    /// How far the best beats the second identity (the full score if there is none).
    pub fn margin(&self) -> f32 {
        self.best.score - self.second.map_or(-1.0, |s| s.score)
    }
}

#[derive(Clone, Debug)]
pub struct Gallery {
    model: String,
    dim: usize,
    /// `rows × dim` unit vectors; rows of one resident are adjacent.
    data: Vec<f32>,
    /// Per identity: the resident and its row range.
    spans: Vec<(ResidentId, std::ops::Range<usize>)>,
}

impl Gallery {
    pub fn empty(model: &str, dim: usize) -> Gallery {
        Gallery {
            model: model.to_string(),
            dim,
            data: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// Builds a gallery from (resident, embedding) rows in any order. Every
    /// vector must have `dim` values; each is normalised to unit length.
    pub fn from_rows(
        model: &str,
        dim: usize,
        rows: impl IntoIterator<Item = (ResidentId, Vec<f32>)>,
    ) -> Result<Gallery> {
        let mut rows: Vec<(ResidentId, Vec<f32>)> = rows.into_iter().collect();
        rows.sort_by_key(|(r, _)| *r);
        let mut builder = GalleryBuilder::new(model, dim, rows.len());
        for (resident, v) in &rows {
            builder.push(*resident, v)?;
        }
        Ok(builder.finish())
    }

    /// The embedder these vectors came from; probes from another model are refused.
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of stored embeddings.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Number of distinct residents.
    pub fn identities(&self) -> usize {
        self.spans.len()
    }

    pub fn contains(&self, resident: ResidentId) -> bool {
        self.spans.iter().any(|(r, _)| *r == resident)
    }

    /// Each resident's score: the best cosine over that resident's embeddings.
    pub fn identity_scores(&self, probe: &[f32]) -> impl Iterator<Item = IdentityScore> + '_ {
        let probe = probe.to_vec();
        self.spans.iter().map(move |(resident, range)| {
            let mut best = f32::NEG_INFINITY;
            for row in range.clone() {
                let v = &self.data[row * self.dim..(row + 1) * self.dim];
                best = best.max(dot(&probe, v));
            }
            IdentityScore {
                resident: *resident,
                score: best,
            }
        })
    }

    /// The best and second-best identity for a unit-length probe, or `None`
    /// for an empty gallery or a probe of the wrong dimension.
    pub fn search(&self, probe: &[f32]) -> Option<Ranked> {
        if probe.len() != self.dim {
            return None;
        }
        let mut best: Option<IdentityScore> = None;
        let mut second: Option<IdentityScore> = None;
        for (resident, range) in &self.spans {
            let rows = &self.data[range.start * self.dim..range.end * self.dim];
            let mut score = f32::NEG_INFINITY;
            for v in rows.chunks_exact(self.dim) {
                score = score.max(dot(probe, v));
            }
            let candidate = IdentityScore {
                resident: *resident,
                score,
            };
            if best.map_or(true, |b| score > b.score) {
                second = best;
                best = Some(candidate);
            } else if second.map_or(true, |s| score > s.score) {
                second = Some(candidate);
            }
        }
        best.map(|best| Ranked { best, second })
    }

    /// The `k` best identities, best first (for `face identify`).
    pub fn top(&self, probe: &[f32], k: usize) -> Vec<IdentityScore> {
        if probe.len() != self.dim {
            return Vec::new();
        }
        let mut all: Vec<IdentityScore> = self.identity_scores(probe).collect();
        all.sort_by(|a, b| b.score.total_cmp(&a.score));
        all.truncate(k);
        all
    }

    /// A copy without one resident (enrolment checks a new face against everyone else).
    pub fn without(&self, resident: ResidentId) -> Gallery {
        let mut rows = Vec::new();
        for (r, range) in &self.spans {
            if *r != resident {
                for row in range.clone() {
                    rows.push((*r, self.data[row * self.dim..(row + 1) * self.dim].to_vec()));
                }
            }
        }
        Gallery::from_rows(&self.model, self.dim, rows)
            .unwrap_or_else(|_| Gallery::empty(&self.model, self.dim))
    }
}

/// Builds a gallery row by row without holding a second copy of the
/// embeddings (100,000 faces load in one pass over the database).
pub struct GalleryBuilder {
    gallery: Gallery,
    /// Set when a resident's rows were not adjacent; `finish` regroups them.
    scattered: bool,
}

impl GalleryBuilder {
    pub fn new(model: &str, dim: usize, capacity: usize) -> GalleryBuilder {
        let mut gallery = Gallery::empty(model, dim);
        gallery.data.reserve_exact(capacity * dim);
        GalleryBuilder {
            gallery,
            scattered: false,
        }
    }

    /// Appends one embedding (normalised here). Rows of one resident should
    /// come together; if they do not, `finish` sorts them.
    pub fn push(&mut self, resident: ResidentId, v: &[f32]) -> Result<()> {
        let g = &mut self.gallery;
        if v.len() != g.dim {
            bail!(
                "embedding of {resident} has {} values, the gallery ({}) expects {}",
                v.len(),
                g.model,
                g.dim
            );
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if !(norm.is_finite() && norm > 1e-12) {
            bail!("embedding of {resident} is zero or not finite");
        }
        let row = g.data.len() / g.dim.max(1);
        g.data.extend(v.iter().map(|x| x / norm));
        match g.spans.last_mut() {
            Some((last, range)) if *last == resident => range.end = row + 1,
            _ => {
                if !self.scattered && g.spans.iter().any(|(r, _)| *r == resident) {
                    self.scattered = true;
                }
                g.spans.push((resident, row..row + 1));
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Gallery {
        let g = self.gallery;
        if !self.scattered {
            return g;
        }
        let dim = g.dim;
        let mut rows: Vec<(ResidentId, usize)> = g
            .spans
            .iter()
            .flat_map(|(r, range)| range.clone().map(move |i| (*r, i)))
            .collect();
        rows.sort_by_key(|(r, i)| (*r, *i));
        let mut out = Gallery::empty(&g.model, dim);
        out.data.reserve_exact(g.data.len());
        for (r, i) in rows {
            let row = out.data.len() / dim.max(1);
            out.data.extend_from_slice(&g.data[i * dim..(i + 1) * dim]);
            match out.spans.last_mut() {
                Some((last, range)) if *last == r => range.end = row + 1,
                _ => out.spans.push((r, row..row + 1)),
            }
        }
        out
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

/// The gallery the gates search, replaceable while they run.
#[derive(Clone, Debug)]
pub struct GalleryHandle(Arc<RwLock<Arc<Gallery>>>);

impl GalleryHandle {
    pub fn new(gallery: Gallery) -> GalleryHandle {
        GalleryHandle(Arc::new(RwLock::new(Arc::new(gallery))))
    }

    /// The current gallery; searches run on this snapshot without holding the lock.
    pub fn current(&self) -> Arc<Gallery> {
        match self.0.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds the gallery from the register (same model and dimension) and
    /// swaps it in; the gates keep searching the old one meanwhile. Returns
    /// the number of faces now in the gallery.
    pub fn reload(&self, conn: &rusqlite::Connection) -> Result<usize> {
        let current = self.current();
        let fresh = super::load_gallery(conn, current.model(), current.dim())?;
        let n = fresh.len();
        self.replace(fresh);
        tracing::info!(faces = n, "face gallery reloaded");
        Ok(n)
    }

    /// Swaps in a new gallery; searches already running finish on the old one.
    pub fn replace(&self, gallery: Gallery) {
        let new = Arc::new(gallery);
        match self.0.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(n: i64) -> ResidentId {
        ResidentId(n)
    }

    #[test]
    fn second_best_is_another_identity_not_another_photo() {
        let g = Gallery::from_rows(
            "m",
            2,
            vec![
                (r(1), vec![1.0, 0.0]),
                (r(2), vec![0.0, 1.0]),
                (r(1), vec![0.9, 0.1]),
            ],
        )
        .unwrap();
        assert_eq!(g.len(), 3);
        assert_eq!(g.identities(), 2);
        let ranked = g.search(&[1.0, 0.0]).unwrap();
        assert_eq!(ranked.best.resident, r(1));
        assert!((ranked.best.score - 1.0).abs() < 1e-6);
        let second = ranked.second.unwrap();
        assert_eq!(second.resident, r(2));
        assert!(second.score.abs() < 1e-6);
        assert!((ranked.margin() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn empty_gallery_and_wrong_dimension_find_nobody() {
        assert!(Gallery::empty("m", 4)
            .search(&[1.0, 0.0, 0.0, 0.0])
            .is_none());
        let g = Gallery::from_rows("m", 2, vec![(r(1), vec![1.0, 0.0])]).unwrap();
        assert!(g.search(&[1.0, 0.0, 0.0]).is_none());
        assert!(g.search(&[1.0, 0.0]).unwrap().second.is_none());
        assert!(Gallery::from_rows("m", 2, vec![(r(1), vec![1.0])]).is_err());
    }

    #[test]
    fn dot_matches_the_naive_sum_for_odd_lengths() {
        let a: Vec<f32> = (0..13).map(|i| i as f32 * 0.1).collect();
        let b: Vec<f32> = (0..13).map(|i| 1.0 - i as f32 * 0.05).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - naive).abs() < 1e-5);
    }

    #[test]
    fn builder_regroups_rows_of_one_resident_that_arrive_apart() {
        let mut b = GalleryBuilder::new("m", 2, 3);
        b.push(r(1), &[1.0, 0.0]).unwrap();
        b.push(r(2), &[0.0, 1.0]).unwrap();
        b.push(r(1), &[0.0, 1.0]).unwrap();
        let g = b.finish();
        assert_eq!(g.identities(), 2);
        let ranked = g.search(&[0.0, 1.0]).unwrap();
        // Resident 1 (second row) and 2 tie at 1.0: the second identity is the other one.
        assert_ne!(ranked.best.resident, ranked.second.unwrap().resident);
        assert!(GalleryBuilder::new("m", 2, 0).push(r(1), &[0.0, 0.0]).is_err());
    }

    #[test]
    fn handle_swaps_while_old_snapshot_stays_usable() {
        let h = GalleryHandle::new(Gallery::empty("m", 2));
        let old = h.current();
        h.replace(Gallery::from_rows("m", 2, vec![(r(7), vec![0.0, 1.0])]).unwrap());
        assert!(old.is_empty());
        assert_eq!(h.current().search(&[0.0, 1.0]).unwrap().best.resident, r(7));
        let without = h.current().without(r(7));
        assert!(without.is_empty());
    }
}
