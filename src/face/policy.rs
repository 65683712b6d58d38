//! The matching policy: when a face counts as a resident. This is the one
//! place that decides; the camera pipeline, `face identify`, enrolment's
//! duplicate warning and the evaluations all call it, so the figures an
//! evaluation reports are the figures of the gate.
//!
//! A gate searches the whole register (1:N), so a stranger always has a
//! nearest resident. The policy says "match" only when (1) the face passed the
//! quality floor, (2) the best identity reaches the threshold, (3) it beats
//! the second-best *identity* by the margin, and (4) K of the last M frames of
//! the same tracked face agree on that one resident. A cooldown per person and
//! gate stops one walk-through from opening the gate twice; unknown-face
//! reports are rate-limited per gate.
//!
//! Everything here is pure: time comes in as an argument.
//!
//! How to measure it (open-set evaluations): per probe photo call
//! [`super::FaceEngine::observe`] (quality floor, embedding, search, [`MatchPolicy::judge`]);
//! for F photos treated as consecutive frames of one face, feed their verdicts
//! to [`MatchPolicy::confirm`]. The gate runs exactly these two steps per frame
//! ([`super::pipeline::FrameProcessor`] with a [`GateState`]); `face eval-1n`
//! ([`super::openset`]) does exactly that. A resident's score is the cosine
//! with the centroid of their enrolled faces, or the best over them
//! ([`MatchPolicy::combine`], applied when the gallery is built).
//!
//! At a card + face gate the face is not searched but checked against the
//! card owner only ([`MatchPolicy::verify`], 1:1).
//!
//! Liveness (presentation-attack detection, [`super::liveness`]) enters per
//! frame: at a gate with liveness on, a frame that matched a resident but
//! scored below the liveness threshold becomes [`FrameVerdict::Spoof`], a
//! vote for an attack and never for the resident ([`with_liveness`]). So each
//! of the K confirming frames must pass on its own (BENCHMARKS.md,
//! "Liveness": measured against the mean of the K frames), and K spoof votes
//! in the window make the face a presentation attack: the track never yields
//! a credential after that.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde::Serialize;

use super::gallery::{Gallery, IdentityScore, Ranked};
use super::quality::Rejection;
use crate::access::FaceCheck;
use crate::domain::embedding::Combine;
use crate::domain::ResidentId;
use crate::models::ModelSpec;

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MatchPolicy {
    /// Cosine similarity the best identity must reach.
    pub threshold: f32,
    /// Cosine a face must reach against one named resident (card + face, 1:1).
    pub verify_threshold: f32,
    /// How far the best identity must beat the second-best identity.
    pub margin: f32,
    /// K: agreeing frames needed …
    pub confirm_k: usize,
    /// … among the last M frames of one tracked face.
    pub confirm_m: usize,
    /// How a resident's enrolled faces make their score (applied when the gallery is built).
    pub combine: Combine,
    #[serde(skip)]
    pub cooldown: Duration,
    #[serde(skip)]
    pub unknown_interval: Duration,
}

/// K-of-M confirmation: K of the last M frames of one tracked face must
/// agree. The one implementation: the resident vote ([`MatchPolicy::confirm`],
/// [`GateState`]) and the station's face watchlist (`super::watch`) both count
/// with it, so a face is confirmed on the watchlist on the same frame it would
/// be confirmed as a resident.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KOfM {
    k: usize,
    m: usize,
}

impl KOfM {
    /// At least one frame, and a window no shorter than K (else nothing confirms).
    pub fn new(k: usize, m: usize) -> KOfM {
        let k = k.max(1);
        KOfM { k, m: m.max(k) }
    }

    /// The last M of `recent` (oldest first).
    pub fn window<'a, T>(&self, recent: &'a [T]) -> &'a [T] {
        &recent[recent.len().saturating_sub(self.m)..]
    }

    /// Adds a frame's vote, keeping only the last M.
    pub fn push<T>(&self, frames: &mut VecDeque<T>, vote: T) {
        frames.push_back(vote);
        while frames.len() > self.m {
            frames.pop_front();
        }
    }

    /// Whether `agreeing` frames of the window confirm.
    pub fn confirms(&self, agreeing: usize) -> bool {
        agreeing >= self.k
    }

    /// Whether some M consecutive frames of `hits` (one face's frames, oldest
    /// first) hold K hits: the rule applied over a whole wait, not only its end.
    pub fn confirms_somewhere(&self, hits: &[bool]) -> bool {
        if hits.len() <= self.m {
            return self.confirms(hits.iter().filter(|h| **h).count());
        }
        hits.windows(self.m)
            .any(|w| self.confirms(w.iter().filter(|h| **h).count()))
    }

    /// How many frames of the window vote `for_this`.
    pub fn agreeing<T>(&self, frames: &[T], for_this: impl Fn(&T) -> bool) -> usize {
        self.window(frames).iter().filter(|f| for_this(f)).count()
    }
}

/// What one frame says about one face.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum FrameVerdict {
    /// Passed the threshold and the margin: a vote for this resident.
    Match(IdentityScore),
    /// Passed the threshold, but another resident is too close: no vote.
    Ambiguous {
        best: IdentityScore,
        second: IdentityScore,
    },
    /// Good enough to judge, and nobody is close enough: a vote for "stranger".
    Unknown { best: Option<IdentityScore> },
    /// Refused by the quality floor: no vote either way.
    Rejected { reason: Rejection },
    /// Matched `best`, but failed the liveness check (a photo or a screen):
    /// a vote for a presentation attack, never for the resident.
    Spoof { best: IdentityScore, liveness: f32 },
}

/// The liveness check applied to one frame's verdict: a match whose fused
/// liveness score is below `threshold` becomes a [`FrameVerdict::Spoof`];
/// anything else is unchanged (only faces that could become a credential
/// are checked).
pub fn with_liveness(verdict: FrameVerdict, liveness: f32, threshold: f32) -> FrameVerdict {
    match verdict {
        // A score that is not a number fails too.
        FrameVerdict::Match(best) if liveness.is_nan() || liveness < threshold => {
            FrameVerdict::Spoof { best, liveness }
        }
        other => other,
    }
}

impl FrameVerdict {
    pub fn resident(&self) -> Option<ResidentId> {
        match self {
            FrameVerdict::Match(s) => Some(s.resident),
            _ => None,
        }
    }
}

/// What the last M frames of one face add up to.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Confirmation {
    /// K or more frames matched this resident and none matched anyone else.
    /// The score is the mean of the agreeing frames.
    Resident(IdentityScore),
    /// K or more frames were judged and matched nobody, and none matched anyone.
    Stranger { best: Option<IdentityScore> },
    /// K or more frames matched a resident but failed the liveness check:
    /// a presentation attack with `best`'s face (the closest match, and the
    /// mean liveness of those frames).
    Attack { best: IdentityScore, liveness: f32 },
    /// Not enough agreement yet.
    Pending,
}

impl MatchPolicy {
    /// The policy from the `[face]` config, with the threshold defaulting to
    /// the embedder's manifest entry.
    pub fn from_config(face: &crate::config::Face, embedder: &ModelSpec) -> Result<MatchPolicy> {
        let fixed = match face.threshold {
            Some(crate::config::FaceThreshold::Fixed(t)) => Some(t),
            _ => None,
        };
        // With `threshold = "calibrated"` this is the threshold until the
        // first calibration, and whenever one fails.
        let Some(threshold) = fixed.or(face.match_threshold).or(embedder.match_threshold) else {
            bail!(
                "no match threshold: set [face] match_threshold or give embedder {:?} a match_threshold in the manifest",
                embedder.name
            );
        };
        Ok(MatchPolicy {
            threshold,
            verify_threshold: face.verify_threshold.unwrap_or(threshold),
            margin: face.margin,
            confirm_k: face.confirm_frames.max(1) as usize,
            confirm_m: face.confirm_window.max(face.confirm_frames).max(1) as usize,
            combine: face.combine,
            cooldown: Duration::from_secs(face.cooldown_s as u64),
            unknown_interval: Duration::from_secs(face.unknown_event_interval_s as u64),
        })
    }

    /// Judges one face in one frame: its quality verdict and its 1:N search
    /// result (`None` when the gallery is empty).
    pub fn judge(&self, quality: Result<(), Rejection>, ranked: Option<&Ranked>) -> FrameVerdict {
        if let Err(reason) = quality {
            return FrameVerdict::Rejected { reason };
        }
        let Some(ranked) = ranked else {
            return FrameVerdict::Unknown { best: None };
        };
        if ranked.best.score < self.threshold {
            return FrameVerdict::Unknown {
                best: Some(ranked.best),
            };
        }
        match ranked.second {
            Some(second) if ranked.best.score - second.score < self.margin => {
                FrameVerdict::Ambiguous {
                    best: ranked.best,
                    second,
                }
            }
            _ => FrameVerdict::Match(ranked.best),
        }
    }

    /// One face against the gallery: the 1:N search (skipped for a refused
    /// face or a missing embedding) and [`MatchPolicy::judge`]. The gate
    /// ([`super::FaceEngine::observe`]) and `face eval-1n` both call this.
    pub fn search_and_judge(
        &self,
        gallery: &Gallery,
        quality: Result<(), Rejection>,
        embedding: Option<&[f32]>,
    ) -> (Option<Ranked>, FrameVerdict) {
        let ranked = match (quality, embedding) {
            (Ok(()), Some(e)) => gallery.search(e),
            _ => None,
        };
        (ranked, self.judge(quality, ranked.as_ref()))
    }

    /// The 1:1 check of a two-factor gate: the face seen against the
    /// enrolled faces of the card's owner only (no search, so its false-accept
    /// rate does not grow with the register).
    pub fn verify(
        &self,
        gallery: &Gallery,
        owner: ResidentId,
        embedding: Option<&[f32]>,
    ) -> FaceCheck {
        let Some(embedding) = embedding else {
            return FaceCheck::NotSeen;
        };
        match gallery.score_for(owner, embedding) {
            None => FaceCheck::NotEnrolled,
            Some(score) if score >= self.verify_threshold => FaceCheck::Match { score },
            Some(score) => FaceCheck::Mismatch { score },
        }
    }

    /// The K-of-M rule of this policy.
    pub fn k_of_m(&self) -> KOfM {
        KOfM::new(self.confirm_k, self.confirm_m)
    }

    /// K-of-M confirmation over the most recent verdicts of one face (oldest
    /// first; only the last M count).
    pub fn confirm(&self, recent: &[FrameVerdict]) -> Confirmation {
        let rule = self.k_of_m();
        let window = rule.window(recent);
        let mut votes: Vec<(ResidentId, usize, f32)> = Vec::new();
        let mut unknown = 0;
        let mut best_unknown: Option<IdentityScore> = None;
        let (mut spoofs, mut spoof_liveness) = (0usize, 0.0f32);
        let mut spoof_best: Option<IdentityScore> = None;
        for verdict in window {
            match verdict {
                FrameVerdict::Match(s) => match votes.iter_mut().find(|v| v.0 == s.resident) {
                    Some(v) => {
                        v.1 += 1;
                        v.2 += s.score;
                    }
                    None => votes.push((s.resident, 1, s.score)),
                },
                FrameVerdict::Unknown { best } => {
                    unknown += 1;
                    if let Some(b) = best {
                        if best_unknown.is_none_or(|u| b.score > u.score) {
                            best_unknown = Some(*b);
                        }
                    }
                }
                FrameVerdict::Spoof { best, liveness } => {
                    spoofs += 1;
                    spoof_liveness += liveness;
                    if spoof_best.is_none_or(|b| best.score > b.score) {
                        spoof_best = Some(*best);
                    }
                }
                FrameVerdict::Ambiguous { .. } | FrameVerdict::Rejected { .. } => {}
            }
        }
        // An attack outweighs any match in the same window: a photo that
        // passes now and then must still never open.
        if let (Some(best), true) = (spoof_best, rule.confirms(spoofs)) {
            return Confirmation::Attack {
                best,
                liveness: spoof_liveness / spoofs as f32,
            };
        }
        match votes.as_slice() {
            // Two residents in one window: the track is confused; wait for clearer frames.
            [(resident, n, sum)] if rule.confirms(*n) => Confirmation::Resident(IdentityScore {
                resident: *resident,
                score: sum / *n as f32,
            }),
            [] if rule.confirms(unknown) => Confirmation::Stranger { best: best_unknown },
            _ => Confirmation::Pending,
        }
    }
}

/// What a gate should act on after a frame.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub enum Outcome {
    /// A confirmed resident: a face credential for the access decision.
    Credential(IdentityScore),
    /// A confirmed stranger, not rate-limited: raise an unknown-face event.
    UnknownFace { best: Option<IdentityScore> },
    /// A confirmed presentation attack (once per track): refused, recorded,
    /// and counted toward the gate's lockout.
    PresentationAttack { best: IdentityScore, liveness: f32 },
}

#[derive(Debug, Default)]
struct TrackVotes {
    recent: VecDeque<FrameVerdict>,
    credential_sent: bool,
    unknown_sent: bool,
}

/// What a gate remembers across its cameras: the last grant per resident and
/// the last unknown-face report (cooldown and rate limit are per gate).
#[derive(Debug, Default)]
pub struct GateMemory {
    last_grant: HashMap<ResidentId, Instant>,
    last_unknown: Option<Instant>,
}

/// One gate's memory, shared by the cameras that watch it.
pub type SharedGateMemory = Arc<Mutex<GateMemory>>;

/// The policy's state for one camera: votes per tracked face, plus the
/// memory of its gate (own, or shared with the gate's other cameras).
#[derive(Debug, Default)]
pub struct GateState {
    tracks: HashMap<u64, TrackVotes>,
    gate: SharedGateMemory,
}

impl GateState {
    /// A camera's state that shares its gate's cooldowns with other cameras.
    pub fn sharing(gate: SharedGateMemory) -> GateState {
        GateState {
            tracks: HashMap::new(),
            gate,
        }
    }

    /// Adds one frame's verdict for `track` and says what, if anything, to act on.
    /// A track yields at most one credential and at most one unknown-face report.
    pub fn observe(
        &mut self,
        policy: &MatchPolicy,
        track: u64,
        verdict: FrameVerdict,
        now: Instant,
    ) -> Option<Outcome> {
        let votes = self.tracks.entry(track).or_default();
        policy.k_of_m().push(&mut votes.recent, verdict);
        if votes.credential_sent {
            return None;
        }
        let mut gate = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        match policy.confirm(votes.recent.make_contiguous()) {
            Confirmation::Attack { best, liveness } => {
                // The track never becomes a credential after this.
                votes.credential_sent = true;
                Some(Outcome::PresentationAttack { best, liveness })
            }
            Confirmation::Resident(score) => {
                votes.credential_sent = true;
                let cooling = gate
                    .last_grant
                    .get(&score.resident)
                    .is_some_and(|t| now.saturating_duration_since(*t) < policy.cooldown);
                if cooling {
                    return None;
                }
                gate.last_grant
                    .retain(|_, t| now.saturating_duration_since(*t) < policy.cooldown);
                gate.last_grant.insert(score.resident, now);
                Some(Outcome::Credential(score))
            }
            Confirmation::Stranger { best } if !votes.unknown_sent => {
                votes.unknown_sent = true;
                let limited = gate
                    .last_unknown
                    .is_some_and(|t| now.saturating_duration_since(t) < policy.unknown_interval);
                if limited {
                    return None;
                }
                gate.last_unknown = Some(now);
                Some(Outcome::UnknownFace { best })
            }
            _ => None,
        }
    }

    /// Drops the votes of a face the tracker lost.
    pub fn forget(&mut self, track: u64) {
        self.tracks.remove(&track);
    }

    pub fn tracked(&self) -> usize {
        self.tracks.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> MatchPolicy {
        MatchPolicy {
            threshold: 0.5,
            verify_threshold: 0.4,
            margin: 0.05,
            confirm_k: 2,
            confirm_m: 3,
            combine: Combine::Best,
            cooldown: Duration::from_secs(5),
            unknown_interval: Duration::from_secs(30),
        }
    }

    #[test]
    fn k_of_m_confirms_in_any_window_of_m_consecutive_frames() {
        let rule = KOfM::new(2, 3);
        assert!(!rule.confirms_somewhere(&[]));
        assert!(!rule.confirms_somewhere(&[true]));
        assert!(rule.confirms_somewhere(&[true, false, true]));
        // Hits further apart than M frames never share a window.
        assert!(!rule.confirms_somewhere(&[true, false, false, true, false, false, true]));
        assert!(rule.confirms_somewhere(&[false, false, false, true, true, false]));
    }

    fn s(resident: i64, score: f32) -> IdentityScore {
        IdentityScore {
            resident: ResidentId(resident),
            score,
        }
    }

    fn ranked(best: IdentityScore, second: Option<IdentityScore>) -> Ranked {
        Ranked { best, second }
    }

    #[test]
    fn judges_one_frame_by_quality_threshold_and_margin() {
        let p = policy();
        let cases = [
            (
                Ok(()),
                Some(ranked(s(1, 0.7), Some(s(2, 0.3)))),
                FrameVerdict::Match(s(1, 0.7)),
            ),
            (
                Ok(()),
                Some(ranked(s(1, 0.7), None)),
                FrameVerdict::Match(s(1, 0.7)),
            ),
            (
                Ok(()),
                Some(ranked(s(1, 0.7), Some(s(2, 0.68)))),
                FrameVerdict::Ambiguous {
                    best: s(1, 0.7),
                    second: s(2, 0.68),
                },
            ),
            (
                Ok(()),
                Some(ranked(s(1, 0.49), Some(s(2, 0.1)))),
                FrameVerdict::Unknown {
                    best: Some(s(1, 0.49)),
                },
            ),
            (Ok(()), None, FrameVerdict::Unknown { best: None }),
            (
                Err(Rejection::Blurred),
                Some(ranked(s(1, 0.9), None)),
                FrameVerdict::Rejected {
                    reason: Rejection::Blurred,
                },
            ),
        ];
        for (quality, r, want) in cases {
            assert_eq!(p.judge(quality, r.as_ref()), want, "{r:?}");
        }
    }

    #[test]
    fn verifies_one_named_resident_only() {
        let p = policy();
        let g = Gallery::from_rows(
            "m",
            2,
            vec![
                (ResidentId(1), vec![1.0, 0.0]),
                (ResidentId(2), vec![0.0, 1.0]),
            ],
        )
        .unwrap();
        let near_1 = [0.95f32, 0.312];
        assert!(matches!(
            p.verify(&g, ResidentId(1), Some(&near_1)),
            FaceCheck::Match { score } if (score - 0.95).abs() < 1e-3
        ));
        // The same face with R2's card: a mismatch, however close R1 is.
        assert!(matches!(
            p.verify(&g, ResidentId(2), Some(&near_1)),
            FaceCheck::Mismatch { .. }
        ));
        assert_eq!(
            p.verify(&g, ResidentId(3), Some(&near_1)),
            FaceCheck::NotEnrolled
        );
        assert_eq!(p.verify(&g, ResidentId(1), None), FaceCheck::NotSeen);
    }

    #[test]
    fn confirms_two_of_three_for_one_resident_only() {
        let p = policy();
        let m = |r, sc| FrameVerdict::Match(s(r, sc));
        let u = FrameVerdict::Unknown {
            best: Some(s(1, 0.3)),
        };
        let rej = FrameVerdict::Rejected {
            reason: Rejection::Pose,
        };
        let cases: Vec<(Vec<FrameVerdict>, Confirmation)> = vec![
            (vec![m(1, 0.6)], Confirmation::Pending),
            (
                vec![m(1, 0.625), rej, m(1, 0.875)],
                Confirmation::Resident(s(1, 0.75)),
            ),
            // An older vote outside the window does not count.
            (vec![m(1, 0.6), rej, rej, m(1, 0.8)], Confirmation::Pending),
            // Two residents in one window: never confirm either.
            (vec![m(1, 0.6), m(2, 0.9), m(1, 0.8)], Confirmation::Pending),
            (
                vec![u, rej, u],
                Confirmation::Stranger {
                    best: Some(s(1, 0.3)),
                },
            ),
            (vec![u, m(1, 0.9), u], Confirmation::Pending),
        ];
        for (window, want) in cases {
            assert_eq!(p.confirm(&window), want, "{window:?}");
        }
    }

    #[test]
    fn one_credential_per_track_and_cooldown_per_person() {
        let p = policy();
        let mut g = GateState::default();
        let t0 = Instant::now();
        let m = FrameVerdict::Match(s(1, 0.8));
        assert_eq!(g.observe(&p, 1, m, t0), None);
        assert_eq!(
            g.observe(&p, 1, m, t0),
            Some(Outcome::Credential(s(1, 0.8)))
        );
        assert_eq!(g.observe(&p, 1, m, t0), None, "same track again");
        // A new track of the same person within the cooldown: nothing.
        let t1 = t0 + Duration::from_secs(2);
        g.observe(&p, 2, m, t1);
        assert_eq!(g.observe(&p, 2, m, t1), None);
        // After the cooldown a new track opens again.
        let t2 = t0 + Duration::from_secs(6);
        g.observe(&p, 3, m, t2);
        assert_eq!(
            g.observe(&p, 3, m, t2),
            Some(Outcome::Credential(s(1, 0.8)))
        );
        g.forget(1);
        g.forget(2);
        assert_eq!(g.tracked(), 1);
    }

    #[test]
    fn two_cameras_of_one_gate_share_the_cooldown() {
        let p = policy();
        let memory = SharedGateMemory::default();
        let mut a = GateState::sharing(memory.clone());
        let mut b = GateState::sharing(memory);
        let t0 = Instant::now();
        let m = FrameVerdict::Match(s(1, 0.8));
        a.observe(&p, 1, m, t0);
        assert!(a.observe(&p, 1, m, t0).is_some());
        b.observe(&p, 1, m, t0);
        assert_eq!(
            b.observe(&p, 1, m, t0),
            None,
            "same person, same gate, other camera"
        );
        // A camera of another gate is not affected.
        let mut other = GateState::default();
        other.observe(&p, 1, m, t0);
        assert!(other.observe(&p, 1, m, t0).is_some());
    }

    #[test]
    fn liveness_turns_only_a_failing_match_into_a_spoof_vote() {
        let m = FrameVerdict::Match(s(1, 0.8));
        let u = FrameVerdict::Unknown { best: None };
        assert_eq!(with_liveness(m, 0.9, 0.5), m);
        assert_eq!(
            with_liveness(m, 0.1, 0.5),
            FrameVerdict::Spoof {
                best: s(1, 0.8),
                liveness: 0.1
            }
        );
        assert_eq!(with_liveness(u, 0.1, 0.5), u, "a stranger stays a stranger");
        assert!(matches!(
            with_liveness(m, f32::NAN, 0.5),
            FrameVerdict::Spoof { .. }
        ));
    }

    #[test]
    fn each_confirming_frame_must_be_live_and_k_spoofs_make_an_attack() {
        let p = policy();
        let m = FrameVerdict::Match(s(1, 0.8));
        let spoof = |l| FrameVerdict::Spoof {
            best: s(1, 0.8),
            liveness: l,
        };
        let cases: Vec<(Vec<FrameVerdict>, Confirmation)> = vec![
            // One live frame and one spoof: not enough for either.
            (vec![m, spoof(0.2)], Confirmation::Pending),
            (vec![m, spoof(0.2), m], Confirmation::Resident(s(1, 0.8))),
            (
                vec![spoof(0.1), m, spoof(0.3)],
                Confirmation::Attack {
                    best: s(1, 0.8),
                    liveness: 0.2,
                },
            ),
        ];
        for (window, want) in cases {
            assert_eq!(p.confirm(&window), want, "{window:?}");
        }
    }

    #[test]
    fn a_presentation_attack_is_reported_once_and_its_track_never_opens() {
        let p = policy();
        let mut g = GateState::default();
        let t0 = Instant::now();
        let spoof = FrameVerdict::Spoof {
            best: s(1, 0.8),
            liveness: 0.1,
        };
        assert_eq!(g.observe(&p, 1, spoof, t0), None);
        assert_eq!(
            g.observe(&p, 1, spoof, t0),
            Some(Outcome::PresentationAttack {
                best: s(1, 0.8),
                liveness: 0.1
            })
        );
        // The photo now passes for a few frames: still no credential for this track.
        let m = FrameVerdict::Match(s(1, 0.8));
        for _ in 0..4 {
            assert_eq!(g.observe(&p, 1, m, t0), None);
        }
        // The resident in person, a new track: opens.
        g.observe(&p, 2, m, t0);
        assert_eq!(
            g.observe(&p, 2, m, t0),
            Some(Outcome::Credential(s(1, 0.8)))
        );
    }

    #[test]
    fn unknown_faces_are_reported_once_per_interval_and_do_not_block_a_later_match() {
        let p = policy();
        let mut g = GateState::default();
        let t0 = Instant::now();
        let u = FrameVerdict::Unknown { best: None };
        g.observe(&p, 1, u, t0);
        assert_eq!(
            g.observe(&p, 1, u, t0),
            Some(Outcome::UnknownFace { best: None })
        );
        // Another stranger 10 s later: rate-limited.
        let t1 = t0 + Duration::from_secs(10);
        g.observe(&p, 2, u, t1);
        assert_eq!(g.observe(&p, 2, u, t1), None);
        // Track 1 comes closer and is recognised after all.
        let m = FrameVerdict::Match(s(4, 0.7));
        assert_eq!(g.observe(&p, 1, m, t1), None);
        assert_eq!(
            g.observe(&p, 1, m, t1),
            Some(Outcome::Credential(s(4, 0.7)))
        );
        let t2 = t0 + Duration::from_secs(31);
        g.observe(&p, 3, u, t2);
        assert!(matches!(
            g.observe(&p, 3, u, t2),
            Some(Outcome::UnknownFace { .. })
        ));
    }
}
