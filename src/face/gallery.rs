//! The gallery: every enrolled embedding in one contiguous row-major matrix,
//! rows grouped by resident, searched 1:N by cosine similarity. A search
//! returns the best and the second-best *identity* (not the second photo of
//! the same person): the policy needs the gap between two different people.
//!
//! Rows are stored as int16 with a per-row scale (scores within 1e-4 of f32,
//! half the memory), plus an int8 copy for a first pass that bounds which
//! residents can still be best or second ([`super::quantized`]): 100,000
//! faces take about 38 MB and a search about 1.6 ms on one core.
//!
//! [`GalleryHandle`] lets the gates keep searching while a new gallery is built
//! from the register; the swap is one pointer under a lock.

use std::sync::{Arc, RwLock};

use anyhow::{bail, Result};
use serde::Serialize;

use super::quantized::{self, Int8Rows, Span};
use crate::domain::embedding::Combine;
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
    combine: Combine,
    /// `rows × dim` unit vectors in int16 (each row scaled so its largest
    /// value is ±32767; scores within 1e-4 of f32); rows of one resident are adjacent.
    data: Vec<i16>,
    /// Per row: 1 / scale.
    inv_scale: Vec<f32>,
    /// Per identity: the resident and its row range.
    spans: Vec<Span>,
    /// The same rows in int8, for the first pass of a search.
    int8: Int8Rows,
    /// The 1:N threshold self-calibrated for this gallery (`[face] threshold
    /// = "calibrated"`), swapped in with it.
    calibrated: Option<CalibratedThreshold>,
}

/// The 1:N threshold chosen for one gallery from the site's own register (or
/// the model's prior) for the target stranger rate at the gallery's size.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CalibratedThreshold {
    pub threshold: f32,
    pub target_fpir: f64,
    /// Residents with a face when it was chosen.
    pub residents: usize,
    /// `own register` or `model prior`.
    pub source: String,
    /// Whether any threshold meets the target at this size (if not, 1.0:
    /// a face alone no longer opens).
    pub reachable: bool,
}

impl Gallery {
    pub fn empty(model: &str, dim: usize) -> Gallery {
        Gallery {
            model: model.to_string(),
            dim,
            combine: Combine::Best,
            data: Vec::new(),
            inv_scale: Vec::new(),
            spans: Vec::new(),
            int8: Int8Rows::new(dim, 0),
            calibrated: None,
        }
    }

    /// The self-calibrated 1:N threshold for this gallery, if one was chosen.
    pub fn calibrated(&self) -> Option<&CalibratedThreshold> {
        self.calibrated.as_ref()
    }

    /// This gallery with its self-calibrated threshold.
    pub fn with_calibrated(mut self, calibrated: Option<CalibratedThreshold>) -> Gallery {
        self.calibrated = calibrated;
        self
    }

    /// Builds a gallery from (resident, embedding) rows in any order. Every
    /// vector must have `dim` values; each is normalised to unit length.
    pub fn from_rows(
        model: &str,
        dim: usize,
        rows: impl IntoIterator<Item = (ResidentId, Vec<f32>)>,
    ) -> Result<Gallery> {
        Gallery::from_rows_combined(model, dim, rows, Combine::Best)
    }

    /// [`Gallery::from_rows`] with the enrolled faces of each resident combined by `combine`.
    pub fn from_rows_combined(
        model: &str,
        dim: usize,
        rows: impl IntoIterator<Item = (ResidentId, Vec<f32>)>,
        combine: Combine,
    ) -> Result<Gallery> {
        let mut rows: Vec<(ResidentId, Vec<f32>)> = rows.into_iter().collect();
        rows.sort_by_key(|(r, _)| *r);
        let residents = 1 + rows.windows(2).filter(|w| w[0].0 != w[1].0).count();
        let mut builder =
            GalleryBuilder::combining(model, dim, combine.rows(rows.len(), residents), combine);
        for (resident, v) in &rows {
            builder.push(*resident, v)?;
        }
        Ok(builder.finish())
    }

    /// How this gallery combines a resident's faces (a reload keeps it).
    pub fn combine(&self) -> Combine {
        self.combine
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
        self.inv_scale.len()
    }

    /// Cosine of a probe with one stored row.
    fn row_dot(&self, probe: &[f32], row: usize) -> f32 {
        let codes = &self.data[row * self.dim..(row + 1) * self.dim];
        dot_i16(probe, codes) * self.inv_scale[row]
    }

    /// A stored row back as f32.
    fn row_f32(&self, row: usize) -> Vec<f32> {
        let codes = &self.data[row * self.dim..(row + 1) * self.dim];
        codes
            .iter()
            .map(|c| *c as f32 * self.inv_scale[row])
            .collect()
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
                best = best.max(self.row_dot(&probe, row));
            }
            IdentityScore {
                resident: *resident,
                score: best,
            }
        })
    }

    /// The best and second-best identity for a unit-length probe, or `None`
    /// for an empty gallery or a probe of the wrong dimension.
    ///
    /// Two passes: int8 scores of every row (a quarter of the memory traffic),
    /// then exact f32 scores of only those residents whose int8 score is
    /// within twice the int8 error bound of the second best. Nobody outside
    /// that set can be the best or the second best, so the result equals
    /// [`Gallery::search_exact`].
    pub fn search(&self, probe: &[f32]) -> Option<Ranked> {
        if probe.len() != self.dim || self.spans.is_empty() {
            return None;
        }
        if self.spans.len() <= 2 {
            return self.search_exact(probe);
        }
        let q = quantized::quantize(probe);
        let bound = self.int8.bound(&q);
        let mut approx = Vec::new();
        self.int8.identity_maxima(&q, &self.spans, &mut approx);
        let (mut a1, mut a2) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
        for &a in &approx {
            if a > a1 {
                a2 = a1;
                a1 = a;
            } else if a > a2 {
                a2 = a;
            }
        }
        if !a2.is_finite() {
            return self.search_exact(probe);
        }
        let floor = a2 - 2.0 * bound;
        let candidates = self
            .spans
            .iter()
            .zip(&approx)
            .filter(|(_, a)| **a >= floor)
            .map(|(span, _)| span);
        self.rank_exact(probe, candidates)
    }

    /// The same result by an exact f32 scan of every row (tests, small galleries).
    pub fn search_exact(&self, probe: &[f32]) -> Option<Ranked> {
        if probe.len() != self.dim {
            return None;
        }
        self.rank_exact(probe, self.spans.iter())
    }

    fn rank_exact<'a>(
        &'a self,
        probe: &[f32],
        spans: impl Iterator<Item = &'a Span>,
    ) -> Option<Ranked> {
        let mut best: Option<IdentityScore> = None;
        let mut second: Option<IdentityScore> = None;
        for (resident, range) in spans {
            let mut score = f32::NEG_INFINITY;
            for row in range.clone() {
                score = score.max(self.row_dot(probe, row));
            }
            let candidate = IdentityScore {
                resident: *resident,
                score,
            };
            if best.is_none_or(|b| score > b.score) {
                second = best;
                best = Some(candidate);
            } else if second.is_none_or(|s| score > s.score) {
                second = Some(candidate);
            }
        }
        best.map(|best| Ranked { best, second })
    }

    /// Whether `resident` has an enrolled face here.
    pub fn has(&self, resident: ResidentId) -> bool {
        self.spans.iter().any(|(r, _)| *r == resident)
    }

    /// One resident's score for a probe (a 1:1 check, e.g. face + card), or
    /// `None` if the resident has no face here or the dimension differs.
    pub fn score_for(&self, resident: ResidentId, probe: &[f32]) -> Option<f32> {
        if probe.len() != self.dim {
            return None;
        }
        let (_, range) = self.spans.iter().find(|(r, _)| *r == resident)?;
        range
            .clone()
            .map(|row| self.row_dot(probe, row))
            .max_by(f32::total_cmp)
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
                    rows.push((*r, self.row_f32(row)));
                }
            }
        }
        let mut g = Gallery::from_rows(&self.model, self.dim, rows)
            .unwrap_or_else(|_| Gallery::empty(&self.model, self.dim));
        // The rows are already combined; keep the label.
        g.combine = self.combine;
        g
    }
}

/// Builds a gallery row by row without holding a second copy of the
/// embeddings (100,000 faces load in one pass over the database).
pub struct GalleryBuilder {
    gallery: Gallery,
    /// Set when a resident's rows were not adjacent; `finish` regroups them.
    scattered: bool,
    unit: Vec<f32>,
    /// The resident whose faces are arriving and the sum of their unit
    /// vectors, for the centroid (combine = centroid or both).
    pending: Option<(ResidentId, Vec<f32>)>,
}

impl GalleryBuilder {
    pub fn new(model: &str, dim: usize, capacity: usize) -> GalleryBuilder {
        GalleryBuilder::combining(model, dim, capacity, Combine::Best)
    }

    /// A builder that combines each resident's faces by `combine`, with room
    /// for `rows` gallery rows ([`Combine::rows`]). The centroid is taken over
    /// adjacent rows of one resident (the register loads them ordered by
    /// resident; [`Gallery::from_rows_combined`] sorts).
    pub fn combining(model: &str, dim: usize, rows: usize, combine: Combine) -> GalleryBuilder {
        let mut gallery = Gallery::empty(model, dim);
        gallery.combine = combine;
        gallery.data.reserve_exact(rows * dim);
        gallery.inv_scale.reserve_exact(rows);
        gallery.int8 = Int8Rows::new(dim, rows);
        GalleryBuilder {
            gallery,
            scattered: false,
            unit: Vec::with_capacity(dim),
            pending: None,
        }
    }

    /// Appends one embedding (normalised here). Rows of one resident should
    /// come together; if they do not, `finish` sorts them.
    pub fn push(&mut self, resident: ResidentId, v: &[f32]) -> Result<()> {
        let combine = self.gallery.combine;
        if combine == Combine::Best {
            return self.push_row(resident, v);
        }
        self.check(resident, v)?;
        if self.pending.as_ref().is_some_and(|(r, _)| *r != resident) {
            self.flush_centroid()?;
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        let (_, sum) = self
            .pending
            .get_or_insert_with(|| (resident, vec![0.0; v.len()]));
        for (s, x) in sum.iter_mut().zip(v) {
            *s += x / norm;
        }
        if combine == Combine::Both {
            self.push_row(resident, v)?;
        }
        Ok(())
    }

    /// Appends the centroid row of the resident whose faces were arriving.
    fn flush_centroid(&mut self) -> Result<()> {
        let Some((resident, sum)) = self.pending.take() else {
            return Ok(());
        };
        // Faces pointing opposite ways cancel out: no direction is left to
        // match, so such a resident gets no row rather than a zero one.
        if sum.iter().map(|x| x * x).sum::<f32>().sqrt() < 1e-6 {
            return Ok(());
        }
        self.push_row(resident, &sum)
    }

    fn check(&self, resident: ResidentId, v: &[f32]) -> Result<()> {
        let g = &self.gallery;
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
        Ok(())
    }

    fn push_row(&mut self, resident: ResidentId, v: &[f32]) -> Result<()> {
        self.check(resident, v)?;
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
        let row = g.inv_scale.len();
        self.unit.clear();
        self.unit.extend(v.iter().map(|x| x / norm));
        let max = self.unit.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        let scale = i16::MAX as f32 / max;
        g.data
            .extend(self.unit.iter().map(|x| (x * scale).round() as i16));
        g.inv_scale.push(1.0 / scale);
        g.int8.push(&self.unit);
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

    pub fn finish(mut self) -> Gallery {
        // A centroid of an all-cancelling resident is skipped, never an error.
        let _ = self.flush_centroid();
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
        // Rows (and any centroids) are already combined: regroup them as they are.
        let mut regrouped = GalleryBuilder::new(&g.model, dim, rows.len());
        for (r, i) in rows {
            // Rows were validated and normalised on the first push.
            let _ = regrouped.push_row(r, &g.row_f32(i));
        }
        regrouped.gallery.combine = g.combine;
        regrouped.gallery
    }
}

/// `probe · codes` for an int16 row (before its scale), eight accumulators.
#[inline]
fn dot_i16(probe: &[f32], codes: &[i16]) -> f32 {
    let mut acc = [0.0f32; 8];
    let mut cp = probe.chunks_exact(8);
    let mut cc = codes.chunks_exact(8);
    for (x, y) in (&mut cp).zip(&mut cc) {
        for j in 0..8 {
            acc[j] += x[j] * y[j] as f32;
        }
    }
    let mut sum = (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]);
    for (x, y) in cp.remainder().iter().zip(cc.remainder()) {
        sum += x * *y as f32;
    }
    sum
}

/// The gallery the gates search, replaceable while they run; with
/// self-calibration on, each new gallery comes with its own threshold,
/// chosen before it is swapped in (never on the frame path).
#[derive(Clone, Debug)]
pub struct GalleryHandle {
    current: Arc<RwLock<Arc<Gallery>>>,
    calibration: Option<Arc<super::calibrate::Calibration>>,
}

impl GalleryHandle {
    pub fn new(gallery: Gallery) -> GalleryHandle {
        GalleryHandle {
            current: Arc::new(RwLock::new(Arc::new(gallery))),
            calibration: None,
        }
    }

    /// Chooses the 1:N threshold of every gallery swapped in from now on
    /// by self-calibration (`[face] threshold = "calibrated"`).
    pub fn with_calibration(mut self, calibration: super::calibrate::Calibration) -> GalleryHandle {
        self.calibration = Some(Arc::new(calibration));
        self
    }

    /// Chooses the current gallery's threshold (at start) and swaps it in.
    pub fn calibrate(&self, conn: &rusqlite::Connection) {
        if self.calibration.is_none() {
            return;
        }
        let copy = Gallery::clone(&self.current());
        self.replace(self.calibrated(conn, copy));
    }

    /// `gallery` with its self-calibrated threshold (when calibration is
    /// on); a failure is logged and leaves the configured threshold in force.
    fn calibrated(&self, conn: &rusqlite::Connection, gallery: Gallery) -> Gallery {
        let Some(calibration) = &self.calibration else {
            return gallery;
        };
        match calibration.choose(conn, &gallery) {
            Ok(t) => {
                tracing::info!(
                    threshold = t.threshold,
                    residents = t.residents,
                    source = %t.source,
                    reachable = t.reachable,
                    "self-calibrated match threshold in force"
                );
                gallery.with_calibrated(Some(t))
            }
            Err(e) => {
                tracing::warn!(
                    "self-calibration failed; the configured match threshold stays in force: {e:#}"
                );
                gallery.with_calibrated(None)
            }
        }
    }

    /// The current gallery; searches run on this snapshot without holding the lock.
    pub fn current(&self) -> Arc<Gallery> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds the gallery from the register (same model and dimension) and
    /// swaps it in; the gates keep searching the old one meanwhile. Returns
    /// the number of faces now in the gallery.
    pub fn reload(&self, conn: &rusqlite::Connection) -> Result<usize> {
        let current = self.current();
        let fresh = super::load_gallery(conn, current.model(), current.dim(), current.combine())?;
        let n = fresh.len();
        let fresh = self.calibrated(conn, fresh);
        self.replace(fresh);
        tracing::info!(faces = n, "face gallery reloaded");
        Ok(n)
    }

    /// Swaps in a new gallery; searches already running finish on the old one.
    pub fn replace(&self, gallery: Gallery) {
        let new = Arc::new(gallery);
        match self.current.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::embedding::dot;

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
        assert!((g.score_for(r(1), &[0.0, 1.0]).unwrap() - 0.1f32 / 0.82f32.sqrt()).abs() < 1e-3);
        assert_eq!(g.score_for(r(3), &[0.0, 1.0]), None);
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
    fn centroid_keeps_one_row_per_resident_and_both_adds_it_to_the_faces() {
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let rows = vec![
            (r(1), vec![1.0, 0.0, 0.0]),
            (r(2), vec![0.0, 0.0, 1.0]),
            (r(1), vec![0.0, 1.0, 0.0]),
        ];
        let best = Gallery::from_rows_combined("m", 3, rows.clone(), Combine::Best).unwrap();
        let centroid =
            Gallery::from_rows_combined("m", 3, rows.clone(), Combine::Centroid).unwrap();
        let both = Gallery::from_rows_combined("m", 3, rows, Combine::Both).unwrap();
        assert_eq!((best.len(), centroid.len(), both.len()), (3, 2, 5));
        assert_eq!(centroid.identities(), 2);
        assert_eq!(centroid.combine(), Combine::Centroid);
        // R1's faces are e1 and e2: its centroid is (e1 + e2)/√2.
        let probe = [1.0, 0.0, 0.0];
        assert!((best.score_for(r(1), &probe).unwrap() - 1.0).abs() < 1e-4);
        assert!((centroid.score_for(r(1), &probe).unwrap() - s).abs() < 1e-4);
        assert!((both.score_for(r(1), &probe).unwrap() - 1.0).abs() < 1e-4);
        let mid = [s, s, 0.0];
        assert!((centroid.score_for(r(1), &mid).unwrap() - 1.0).abs() < 1e-4);
        assert!((best.score_for(r(1), &mid).unwrap() - s).abs() < 1e-4);
        // A resident whose faces cancel out keeps no centroid row.
        let opposite = vec![
            (r(1), vec![1.0, 0.0]),
            (r(1), vec![-1.0, 0.0]),
            (r(2), vec![0.0, 1.0]),
        ];
        let g = Gallery::from_rows_combined("m", 2, opposite, Combine::Centroid).unwrap();
        assert_eq!((g.identities(), g.len()), (1, 1));
        assert_eq!("both".parse::<Combine>(), Ok(Combine::Both));
        assert!("mean".parse::<Combine>().is_err());
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
        assert!(GalleryBuilder::new("m", 2, 0)
            .push(r(1), &[0.0, 0.0])
            .is_err());
    }

    #[test]
    fn int8_prefiltered_search_equals_the_exact_scan() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let mut unit = |dim: usize| {
            let v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let dim = 128;
        // 300 residents with 1–3 faces each, plus near-duplicates of the probes
        // so that the best and second best are close (the hard case).
        let probes: Vec<Vec<f32>> = (0..40).map(|_| unit(dim)).collect();
        let mut rows = Vec::new();
        for i in 0..300i64 {
            for _ in 0..(1 + i % 3) {
                rows.push((r(i + 1), unit(dim)));
            }
        }
        for (k, p) in probes.iter().enumerate() {
            for j in 0..2i64 {
                let noise = unit(dim);
                let v: Vec<f32> = p.iter().zip(&noise).map(|(a, b)| a + 0.6 * b).collect();
                rows.push((r(1000 + 2 * k as i64 + j), v));
            }
        }
        let g = Gallery::from_rows("m", dim, rows).unwrap();
        for p in &probes {
            let fast = g.search(p).unwrap();
            let exact = g.search_exact(p).unwrap();
            assert_eq!(fast.best.resident, exact.best.resident);
            assert_eq!(
                fast.second.unwrap().resident,
                exact.second.unwrap().resident
            );
            assert_eq!(fast.best.score, exact.best.score);
        }
    }

    #[test]
    fn int16_storage_scores_within_1e4_of_f32() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let mut unit = |dim: usize| {
            let v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
            let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.into_iter().map(|x| x / n).collect::<Vec<f32>>()
        };
        let stored: Vec<Vec<f32>> = (0..50).map(|_| unit(512)).collect();
        let g = Gallery::from_rows(
            "m",
            512,
            stored
                .iter()
                .enumerate()
                .map(|(i, v)| (r(i as i64 + 1), v.clone())),
        )
        .unwrap();
        let probe = unit(512);
        for (i, v) in stored.iter().enumerate() {
            let exact = dot(&probe, v);
            assert!((g.row_dot(&probe, i) - exact).abs() < 1e-4);
        }
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
