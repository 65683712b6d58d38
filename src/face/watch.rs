//! The station's face watchlist at the cameras: every good face a camera
//! embeds is also compared with the faces the police station listed
//! (`watchlist_set` with `kind = "face"`). A match confirmed on
//! `confirm_k` frames of the same tracked face raises one `watchlist_match`
//! alarm with a snapshot, at most once per entry and gate every
//! [`REPEAT`]; an entry with `action = "deny"` also keeps that face from
//! opening the gate (its 1:N credential is dropped).
//!
//! The station must compute the embeddings with this gateway's embedder
//! (the same model name the status message gives); entries of another
//! length are skipped with a warning, never compared.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::policy::KOfM;
use crate::domain::embedding::dot;
use crate::store::station_queries::{self, WatchAction};

/// The same entry alarms again at the same gate after this long.
pub const REPEAT: Duration = Duration::from_secs(60);

/// One listed face, unit length.
#[derive(Clone, Debug, PartialEq)]
pub struct WatchFace {
    /// The station's reference for the entry.
    pub value: String,
    pub label: Option<String>,
    pub deny: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub embedding: Vec<f32>,
}

/// The live face entries, shared by every camera and swapped on a change.
#[derive(Clone, Default)]
pub struct WatchFaces(Arc<RwLock<Arc<Vec<WatchFace>>>>);

impl WatchFaces {
    /// Reads the live face entries whose embedding has `dim` numbers.
    pub fn load(conn: &rusqlite::Connection, dim: usize) -> Result<Vec<WatchFace>> {
        let entries = station_queries::watched_faces(conn, Utc::now())?;
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let Some(embedding) = e.embedding else {
                continue;
            };
            if embedding.len() != dim {
                tracing::warn!(
                    entry = %e.value,
                    numbers = embedding.len(),
                    expected = dim,
                    "watchlist face skipped: its embedding is not from this gateway's embedder"
                );
                continue;
            }
            out.push(WatchFace {
                value: e.value,
                label: e.label,
                deny: e.action == WatchAction::Deny,
                expires_at: e.expires_at,
                embedding,
            });
        }
        Ok(out)
    }

    /// Replaces the list from the database; returns how many entries are live.
    pub fn reload(&self, conn: &rusqlite::Connection, dim: usize) -> Result<usize> {
        let faces = Self::load(conn, dim)?;
        let n = faces.len();
        self.replace(faces);
        Ok(n)
    }

    pub fn replace(&self, faces: Vec<WatchFace>) {
        let mut slot = self.0.write().unwrap_or_else(|p| p.into_inner());
        *slot = Arc::new(faces);
    }

    pub fn current(&self) -> Arc<Vec<WatchFace>> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The listed face closest to `probe` at or above `threshold`, still live at `now`.
pub fn best_match<'a>(
    faces: &'a [WatchFace],
    probe: &[f32],
    threshold: f32,
    now: DateTime<Utc>,
) -> Option<(&'a WatchFace, f32)> {
    faces
        .iter()
        .filter(|f| f.expires_at.is_none_or(|t| t > now))
        .map(|f| (f, dot(&f.embedding, probe)))
        .filter(|(_, s)| *s >= threshold)
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// One camera's confirmation and rate limit for watchlist matches.
///
/// Confirmation is the gate's own rule for residents, counted by the same
/// code ([`KOfM`]): K of the last M frames of one tracked face name the same
/// entry, so a face is confirmed on the watchlist on the same frame it would
/// be confirmed as a resident.
#[derive(Debug, Default)]
pub struct WatchMemory {
    /// Per tracked face: the entry each of its last M frames matched (value, deny).
    frames: HashMap<u64, VecDeque<Option<(String, bool)>>>,
    /// When each entry last alarmed at this gate.
    last_alarm: HashMap<String, Instant>,
}

/// What one frame's match means for a tracked face.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchOutcome {
    Nothing,
    /// Confirmed and not alarmed recently: raise the alarm.
    Alarm {
        value: String,
        score: f32,
    },
}

impl WatchMemory {
    /// Records that `track` matched `hit` (or nothing) on this frame.
    pub fn observe(
        &mut self,
        track: u64,
        hit: Option<(&WatchFace, f32)>,
        (confirm_k, confirm_m): (usize, usize),
        now: Instant,
    ) -> WatchOutcome {
        let rule = KOfM::new(confirm_k, confirm_m);
        let window = self.frames.entry(track).or_default();
        rule.push(window, hit.map(|(f, _)| (f.value.clone(), f.deny)));
        let Some((face, score)) = hit else {
            return WatchOutcome::Nothing;
        };
        let agreeing = rule.agreeing(window.make_contiguous(), |f| {
            f.as_ref().is_some_and(|(v, _)| *v == face.value)
        });
        if !rule.confirms(agreeing) {
            return WatchOutcome::Nothing;
        }
        let recent = self
            .last_alarm
            .get(&face.value)
            .is_some_and(|t| now.saturating_duration_since(*t) < REPEAT);
        if recent {
            return WatchOutcome::Nothing;
        }
        self.last_alarm.insert(face.value.clone(), now);
        WatchOutcome::Alarm {
            value: face.value.clone(),
            score,
        }
    }

    /// The `deny` entry any of `track`'s recent frames matched: such a face
    /// does not open the gate, even before its alarm is confirmed.
    pub fn denied(&self, track: u64) -> Option<&str> {
        self.frames.get(&track)?.iter().find_map(|f| match f {
            Some((value, true)) => Some(value.as_str()),
            _ => None,
        })
    }

    /// Forgets a face that left the picture.
    pub fn forget(&mut self, track: u64) {
        self.frames.remove(&track);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(value: &str, v: &[f32], deny: bool) -> WatchFace {
        WatchFace {
            value: value.into(),
            label: None,
            deny,
            expires_at: None,
            embedding: v.to_vec(),
        }
    }

    #[test]
    fn the_closest_live_entry_above_the_threshold_matches() {
        let now = Utc::now();
        let mut expired = face("old", &[1.0, 0.0], false);
        expired.expires_at = Some(now - chrono::Duration::seconds(1));
        let faces = vec![
            expired,
            face("a", &[0.8, 0.6], false),
            face("b", &[0.0, 1.0], false),
        ];
        let (f, s) = best_match(&faces, &[1.0, 0.0], 0.5, now).unwrap();
        assert_eq!(f.value, "a");
        assert!((s - 0.8).abs() < 1e-6);
        assert!(best_match(&faces, &[1.0, 0.0], 0.9, now).is_none());
    }

    #[test]
    fn an_alarm_needs_k_of_m_frames_of_one_face_and_repeats_only_after_a_minute() {
        let listed = face("case-1", &[1.0, 0.0], false);
        let km = (2, 3);
        let mut m = WatchMemory::default();
        let t0 = Instant::now();
        assert_eq!(
            m.observe(7, Some((&listed, 0.9)), km, t0),
            WatchOutcome::Nothing
        );
        // A frame without the match in between: 2 of the last 3 still confirm.
        assert_eq!(m.observe(7, None, km, t0), WatchOutcome::Nothing);
        assert!(matches!(
            m.observe(7, Some((&listed, 0.8)), km, t0),
            WatchOutcome::Alarm { ref value, .. } if value == "case-1"
        ));
        // The same entry on another face soon after: no second alarm.
        m.observe(8, Some((&listed, 0.9)), km, t0);
        assert_eq!(
            m.observe(8, Some((&listed, 0.9)), km, t0 + Duration::from_secs(5)),
            WatchOutcome::Nothing
        );
        assert!(matches!(
            m.observe(8, Some((&listed, 0.9)), km, t0 + REPEAT),
            WatchOutcome::Alarm { .. }
        ));
        // One frame in three is not enough.
        let mut m = WatchMemory::default();
        m.observe(9, Some((&listed, 0.9)), km, t0);
        m.observe(9, None, km, t0);
        m.observe(9, None, km, t0);
        assert_eq!(m.observe(9, None, km, t0), WatchOutcome::Nothing);
    }

    #[test]
    fn a_deny_entry_keeps_the_face_out_from_its_first_matching_frame() {
        let wanted = face("case-2", &[1.0, 0.0], true);
        let mut m = WatchMemory::default();
        let t0 = Instant::now();
        m.observe(3, None, (2, 3), t0);
        assert!(m.denied(3).is_none());
        m.observe(3, Some((&wanted, 0.7)), (2, 3), t0);
        assert_eq!(m.denied(3), Some("case-2"));
        m.forget(3);
        assert!(m.denied(3).is_none());
    }

    #[test]
    fn the_watchlist_confirms_on_the_same_frame_as_the_resident_vote() {
        use crate::domain::ResidentId;
        use crate::face::gallery::IdentityScore;
        use crate::face::policy::{Confirmation, FrameVerdict, MatchPolicy};
        let listed = face("case-3", &[1.0, 0.0], false);
        for (k, m) in [(1, 1), (2, 3), (3, 5), (4, 4)] {
            let policy = MatchPolicy {
                threshold: 0.5,
                verify_threshold: 0.5,
                margin: 0.05,
                confirm_k: k,
                confirm_m: m,
                combine: crate::domain::embedding::Combine::Best,
                cooldown: Duration::from_secs(5),
                unknown_interval: Duration::from_secs(30),
            };
            // The same face, matching on some frames and not on others.
            let pattern = [true, false, true, true, false, true, true, true];
            let mut verdicts = Vec::new();
            let mut memory = WatchMemory::default();
            let t0 = Instant::now();
            for (i, matched) in pattern.into_iter().enumerate() {
                verdicts.push(if matched {
                    FrameVerdict::Match(IdentityScore {
                        resident: ResidentId(1),
                        score: 0.8,
                    })
                } else {
                    FrameVerdict::Rejected {
                        reason: crate::face::quality::Rejection::Blurred,
                    }
                });
                let resident = matches!(policy.confirm(&verdicts), Confirmation::Resident(_));
                let hit = matched.then_some((&listed, 0.8));
                let watch = memory.observe(1, hit, (k, m), t0) != WatchOutcome::Nothing;
                assert_eq!(watch, resident, "K={k} M={m} frame {i}");
                if watch {
                    break;
                }
            }
        }
    }
}
