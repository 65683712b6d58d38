//! The faces a gate's cameras saw in the last seconds, for card + face and
//! household + face: a card read at a two-factor gate is checked 1:1
//! ([`MatchPolicy::verify`]) against the faces seen since shortly before it,
//! a household number 1:few against its members, and the gate may wait up to
//! `face_wait_s` (`household_wait_s`) for the right face to look at the camera.
//!
//! A face confirms a check as it confirms a 1:N match: K of M consecutive
//! frames of one tracked face must match (the policy's `confirm_frames` of
//! `confirm_window`). One lucky frame of a stranger who lingers in front of
//! the camera for the whole wait, hundreds of frames, must not be enough.
//!
//! Only embeddings of faces that passed the quality floor are kept, in
//! memory, for [`KEEP`] at most: enough to pair a card with a face, too
//! little to follow anyone.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::calibrate::StrangerRisk;
use super::camera::{CameraMonitor, CameraState};
use super::gallery::{Gallery, GalleryHandle};
use super::policy::MatchPolicy;
use super::Embedding;
use crate::access::{FaceCheck, MemberFace};
use crate::config::Config;
use crate::domain::{GateId, ResidentId};
use crate::models::ModelSpec;

/// How long a seen face is kept (the longest `face_wait_s` is 120 s).
pub const KEEP: Duration = Duration::from_secs(120);
/// At most this many faces are kept per gate (a crowd does not grow memory).
pub const CAPACITY: usize = 256;

/// One tracked face: the camera that saw it and its track there (track ids
/// are per camera, and a gate may have several).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FaceTrack {
    pub camera: Arc<str>,
    pub id: u64,
}

#[derive(Debug)]
struct SeenFace {
    at: Instant,
    track: FaceTrack,
    embedding: Embedding,
}

#[derive(Debug, Default)]
pub struct RecentFaces {
    seen: VecDeque<SeenFace>,
}

/// One gate's recent faces, shared by its cameras and its gate task.
pub type SharedRecentFaces = Arc<Mutex<RecentFaces>>;

impl RecentFaces {
    /// Records a frame of the face `track` seen at `at` and forgets faces
    /// older than [`KEEP`].
    pub fn record(&mut self, at: Instant, track: FaceTrack, embedding: Embedding) {
        while self
            .seen
            .front()
            .is_some_and(|f| at.saturating_duration_since(f.at) > KEEP)
        {
            self.seen.pop_front();
        }
        if self.seen.len() >= CAPACITY {
            self.seen.pop_front();
        }
        self.seen.push_back(SeenFace {
            at,
            track,
            embedding,
        });
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// The frames seen since `since`, grouped by tracked face (oldest first within each).
    fn tracks_since(&self, since: Instant) -> Vec<Vec<&Embedding>> {
        let mut order: Vec<&FaceTrack> = Vec::new();
        let mut frames: HashMap<&FaceTrack, Vec<&Embedding>> = HashMap::new();
        for f in self.seen.iter().filter(|f| f.at >= since) {
            frames
                .entry(&f.track)
                .or_insert_with(|| {
                    order.push(&f.track);
                    Vec::new()
                })
                .push(&f.embedding);
        }
        order.into_iter().filter_map(|t| frames.remove(t)).collect()
    }

    /// The 1:1 check of `owner` against the faces seen since `since`: a
    /// match if K of M consecutive frames of one face match (the best such
    /// face's best score), else the closest mismatch (a single matching
    /// frame included), else not seen.
    pub fn check_owner(
        &self,
        policy: &MatchPolicy,
        gallery: &Gallery,
        owner: ResidentId,
        since: Instant,
    ) -> FaceCheck {
        if !gallery.has(owner) {
            return FaceCheck::NotEnrolled;
        }
        let rule = policy.k_of_m();
        let mut best = FaceCheck::NotSeen;
        for frames in self.tracks_since(since) {
            let scores: Vec<f32> = frames
                .iter()
                .filter_map(|e| gallery.score_for(owner, e.as_slice()))
                .collect();
            let Some(top) = scores.iter().copied().max_by(f32::total_cmp) else {
                continue;
            };
            let hits: Vec<bool> = scores
                .iter()
                .map(|&s| s >= policy.verify_threshold)
                .collect();
            let check = if rule.confirms_somewhere(&hits) {
                FaceCheck::Match { score: top }
            } else {
                FaceCheck::Mismatch { score: top }
            };
            best = match (best, check) {
                (FaceCheck::Match { score: a }, FaceCheck::Match { score: b }) => {
                    FaceCheck::Match { score: a.max(b) }
                }
                (FaceCheck::Match { .. }, _) => best,
                (_, FaceCheck::Match { .. }) => check,
                (FaceCheck::Mismatch { score: a }, FaceCheck::Mismatch { score: b }) => {
                    FaceCheck::Mismatch { score: a.max(b) }
                }
                (_, other) => other,
            };
        }
        best
    }

    /// The 1:few check of the faces seen since `since` against the
    /// `members` of a household keyed at a household gate: each face is
    /// compared with each member's enrolled faces only (1:1 each, at the
    /// verify threshold); a member whose K of M consecutive frames of one
    /// face match is confirmed, and the best-scoring confirmed member wins.
    pub fn check_members(
        &self,
        policy: &MatchPolicy,
        gallery: &Gallery,
        members: &[ResidentId],
        since: Instant,
    ) -> MemberFace {
        let enrolled: Vec<ResidentId> = members
            .iter()
            .copied()
            .filter(|m| gallery.has(*m))
            .collect();
        if enrolled.is_empty() {
            return MemberFace::NotEnrolled;
        }
        let rule = policy.k_of_m();
        let mut best = MemberFace::NotSeen;
        for frames in self.tracks_since(since) {
            for member in &enrolled {
                let scores: Vec<f32> = frames
                    .iter()
                    .filter_map(|e| gallery.score_for(*member, e.as_slice()))
                    .collect();
                let Some(top) = scores.iter().copied().max_by(f32::total_cmp) else {
                    continue;
                };
                let hits: Vec<bool> = scores
                    .iter()
                    .map(|&s| s >= policy.verify_threshold)
                    .collect();
                let face = if rule.confirms_somewhere(&hits) {
                    MemberFace::Member {
                        resident: *member,
                        score: top,
                    }
                } else {
                    MemberFace::NotMember { score: top }
                };
                best = match (best, face) {
                    (MemberFace::Member { score: a, .. }, MemberFace::Member { score: b, .. })
                        if b > a =>
                    {
                        face
                    }
                    (MemberFace::Member { .. }, _) => best,
                    (_, MemberFace::Member { .. }) => face,
                    (MemberFace::NotMember { score: a }, MemberFace::NotMember { score: b }) => {
                        MemberFace::NotMember { score: a.max(b) }
                    }
                    (_, other) => other,
                };
            }
        }
        best
    }
}

/// What the gates know of the cameras: per gate, the faces seen recently
/// (gates with card + face only) and whether a camera is working, plus the
/// gallery and policy to check a card owner's face with. Built when the
/// cameras start; read by the gate tasks and by `gate status`.
pub struct FaceWitness {
    gallery: GalleryHandle,
    policy: MatchPolicy,
    gates: HashMap<GateId, GateCameras>,
    /// For the stranger false-accept rate at today's register size.
    config: Config,
    embedder: ModelSpec,
    /// The register's own impostor tail, for the gallery it was computed on
    /// (recomputed when the gallery is swapped, on the first status after).
    own_tail: std::sync::Mutex<Option<(usize, Option<super::tail::TailCurve>)>>,
}

struct GateCameras {
    recent: Option<SharedRecentFaces>,
    cameras: Vec<(String, CameraMonitor)>,
}

/// The face side of one gate, for `gate status` and the console.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GateFaceStatus {
    /// Camera id and state name (`streaming`, `reconnecting`, …).
    pub cameras: Vec<(String, String)>,
    /// Faces kept for card + face right now (gates with card + face only).
    pub recent_faces: Option<usize>,
    /// Residents in the face gallery (the N of the 1:N search).
    pub gallery_residents: usize,
    /// Expected probability that a stranger is admitted by one confirmed face.
    pub stranger_fpir: Option<f64>,
    pub target_fpir: Option<f64>,
    /// The stranger rate is over the target: see `stranger_risk`.
    pub over_target: bool,
    /// The sentence `gatehouse doctor` prints, with advice when over target.
    pub stranger_risk: Option<String>,
    /// The threshold in force, the rate's 95 % bound, what the tail rests on
    /// (`own register`, `model prior`, …) and how many comparisons, and the
    /// largest register the data vouches for at the target.
    #[serde(default)]
    pub threshold: Option<f32>,
    #[serde(default)]
    pub stranger_fpir_upper: Option<f64>,
    #[serde(default)]
    pub tail_source: Option<String>,
    #[serde(default)]
    pub tail_comparisons: Option<usize>,
    #[serde(default)]
    pub max_residents: Option<u64>,
    /// Where the threshold in force comes from (`configured`, or
    /// `self-calibrated on the own register for target 1.0 %`).
    #[serde(default)]
    pub threshold_source: Option<String>,
}

impl FaceWitness {
    /// Card + face and household gates keep recent faces; the others only report.
    pub fn new(
        gallery: GalleryHandle,
        policy: MatchPolicy,
        config: &Config,
        embedder: ModelSpec,
    ) -> FaceWitness {
        let gates = config
            .cameras
            .iter()
            .map(|c| c.gate.clone())
            .chain(config.gates.iter().map(|g| g.id.clone()))
            .map(|id| {
                let two_factor = config
                    .gates
                    .iter()
                    .any(|g| g.id == id && g.face_mode() != crate::config::FaceMode::OneToN);
                let recent = two_factor.then(SharedRecentFaces::default);
                (
                    id,
                    GateCameras {
                        recent,
                        cameras: Vec::new(),
                    },
                )
            })
            .collect();
        FaceWitness {
            gallery,
            policy,
            gates,
            config: config.clone(),
            embedder,
            own_tail: std::sync::Mutex::new(None),
        }
    }

    /// Where `gate`'s cameras record faces, if the gate keeps them.
    pub fn recent_for(&self, gate: &GateId) -> Option<SharedRecentFaces> {
        self.gates.get(gate).and_then(|g| g.recent.clone())
    }

    /// Registers a running camera of `gate` (its state decides availability).
    pub fn add_camera(&mut self, gate: &GateId, camera: &str, monitor: CameraMonitor) {
        if let Some(g) = self.gates.get_mut(gate) {
            g.cameras.push((camera.to_string(), monitor));
        }
    }

    /// The 1:1 check of `owner` against the faces seen at `gate` since
    /// `since`; [`FaceCheck::Unavailable`] when no camera of the gate streams.
    pub fn check_owner(&self, gate: &GateId, owner: ResidentId, since: Instant) -> FaceCheck {
        let Some(g) = self.gates.get(gate) else {
            return FaceCheck::Unavailable;
        };
        let streaming = g
            .cameras
            .iter()
            .any(|(_, m)| m.state() == CameraState::Streaming);
        let (Some(recent), true) = (&g.recent, streaming) else {
            return FaceCheck::Unavailable;
        };
        let gallery = self.gallery.current();
        let recent = recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.check_owner(&self.policy, &gallery, owner, since)
    }

    /// The 1:few check of a household's `members` against the faces seen at
    /// `gate` since `since`; [`MemberFace::Unavailable`] when no camera of
    /// the gate streams.
    pub fn check_members(
        &self,
        gate: &GateId,
        members: &[ResidentId],
        since: Instant,
    ) -> MemberFace {
        let Some(g) = self.gates.get(gate) else {
            return MemberFace::Unavailable;
        };
        let streaming = g
            .cameras
            .iter()
            .any(|(_, m)| m.state() == CameraState::Streaming);
        let (Some(recent), true) = (&g.recent, streaming) else {
            return MemberFace::Unavailable;
        };
        let gallery = self.gallery.current();
        let recent = recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.check_members(&self.policy, &gallery, members, since)
    }

    /// The register's own impostor tail for the current gallery: computed
    /// from the database once per gallery (never on the frame path).
    fn own_tail(&self) -> Option<super::tail::TailCurve> {
        let gallery = self.gallery.current();
        let key = std::sync::Arc::as_ptr(&gallery) as usize;
        let mut cache = self.own_tail.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, tail)) = cache.as_ref() {
            if *k == key {
                return tail.clone();
            }
        }
        let computed = (|| -> anyhow::Result<Option<super::tail::TailCurve>> {
            let conn = crate::store::readers::open_read_only(&self.config.database_path())?;
            super::calibrate::own_curve_from_db(
                &conn,
                gallery.model(),
                gallery.dim(),
                gallery.combine(),
            )
        })()
        .unwrap_or_else(|e| {
            tracing::debug!("own impostor tail unavailable: {e:#}");
            None
        });
        *cache = Some((key, computed.clone()));
        computed
    }

    /// The face side of `gate` (`None`: the gate has no camera).
    pub fn gate_status(&self, gate: &GateId) -> Option<GateFaceStatus> {
        let g = self.gates.get(gate).filter(|g| !g.cameras.is_empty())?;
        let gallery = self.gallery.current();
        let residents = gallery.identities();
        let own = self.own_tail();
        // The threshold the cameras match at: the gallery's self-calibrated
        // one when calibration is on, else the configured one.
        let risk = match super::calibrate::stranger_risk_at(
            &self.config,
            &self.embedder,
            residents,
            own,
            gallery.calibrated(),
        ) {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!("stranger risk unavailable: {e:#}");
                None
            }
        };
        Some(GateFaceStatus {
            cameras: g
                .cameras
                .iter()
                .map(|(id, m)| (id.clone(), m.state().name().to_string()))
                .collect(),
            recent_faces: g
                .recent
                .as_ref()
                .map(|r| r.lock().unwrap_or_else(|p| p.into_inner()).len()),
            gallery_residents: residents,
            stranger_fpir: risk.as_ref().map(|r| r.expected_fpir),
            target_fpir: risk.as_ref().map(|r| r.target_fpir),
            over_target: risk.as_ref().is_some_and(StrangerRisk::over_target),
            stranger_risk: risk.as_ref().map(StrangerRisk::describe),
            threshold: risk.as_ref().map(|r| r.threshold),
            stranger_fpir_upper: risk.as_ref().map(|r| r.fpir_upper),
            tail_source: risk.as_ref().map(|r| r.tail_source.to_string()),
            tail_comparisons: risk.as_ref().map(|r| r.comparisons),
            max_residents: risk.as_ref().map(|r| r.max_residents),
            threshold_source: risk.as_ref().map(|r| r.threshold_source.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::embedding::Combine;

    fn policy() -> MatchPolicy {
        MatchPolicy {
            threshold: 0.5,
            verify_threshold: 0.4,
            margin: 0.05,
            confirm_k: 2,
            confirm_m: 3,
            combine: Combine::Centroid,
            cooldown: Duration::from_secs(5),
            unknown_interval: Duration::from_secs(30),
        }
    }

    fn e(v: &[f32]) -> Embedding {
        Embedding::from_raw(v.to_vec()).unwrap()
    }

    fn track(id: u64) -> FaceTrack {
        FaceTrack {
            camera: Arc::from("cam"),
            id,
        }
    }

    /// `n` frames of one tracked face, `step` apart from `t`.
    fn frames(recent: &mut RecentFaces, t: Instant, id: u64, n: usize, v: &[f32]) {
        for i in 0..n {
            recent.record(t + Duration::from_millis(100 * i as u64), track(id), e(v));
        }
    }

    #[test]
    fn the_owners_face_among_recent_faces_matches_and_old_faces_do_not_count() {
        let g = Gallery::from_rows(
            "m",
            2,
            vec![
                (ResidentId(1), vec![1.0, 0.0]),
                (ResidentId(2), vec![0.0, 1.0]),
            ],
        )
        .unwrap();
        let p = policy();
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let mut recent = RecentFaces::default();
        assert_eq!(
            recent.check_owner(&p, &g, ResidentId(1), t0),
            FaceCheck::NotSeen
        );
        // A stranger-ish face, then R1's face.
        frames(&mut recent, t0, 1, 3, &[0.3, 0.954]);
        frames(&mut recent, t1, 2, 3, &[0.99, 0.14]);
        assert!(matches!(
            recent.check_owner(&p, &g, ResidentId(1), t0),
            FaceCheck::Match { score } if score > 0.98
        ));
        // R2's card: the first face (0.954 from R2) matches if it counts, but
        // since t0 + 1 s only R1's face was seen, which is not R2's.
        assert!(matches!(
            recent.check_owner(&p, &g, ResidentId(2), t0),
            FaceCheck::Match { .. }
        ));
        assert!(matches!(
            recent.check_owner(&p, &g, ResidentId(2), t1),
            FaceCheck::Mismatch { .. }
        ));
        assert_eq!(
            recent.check_owner(&p, &g, ResidentId(9), t0),
            FaceCheck::NotEnrolled
        );
        // Faces older than KEEP are forgotten when new ones arrive.
        recent.record(t0 + KEEP + Duration::from_secs(5), track(3), e(&[0.0, 1.0]));
        assert_eq!(recent.len(), 1);
    }

    #[test]
    fn one_lucky_frame_of_a_lingering_stranger_does_not_pass_a_card_check() {
        // R1 enrolled; a stranger lingers for the whole wait: a hundred
        // frames below the verify threshold (0.4) and, once, a frame above it.
        let g = Gallery::from_rows("m", 2, vec![(ResidentId(1), vec![1.0, 0.0])]).unwrap();
        let p = policy();
        let t0 = Instant::now();
        let mut recent = RecentFaces::default();
        for i in 0..100u64 {
            let v: &[f32] = if i == 50 {
                &[0.45, 0.893]
            } else {
                &[0.2, 0.98]
            };
            recent.record(t0 + Duration::from_millis(100 * i), track(7), e(v));
        }
        assert!(matches!(
            recent.check_owner(&p, &g, ResidentId(1), t0),
            FaceCheck::Mismatch { score } if score > 0.4
        ));
        // Two such frames of different faces are not K of one face either.
        recent.record(t0 + Duration::from_secs(11), track(8), e(&[0.45, 0.893]));
        assert!(matches!(
            recent.check_owner(&p, &g, ResidentId(1), t0),
            FaceCheck::Mismatch { .. }
        ));
        // The same camera's track ids are not another camera's.
        let other = FaceTrack {
            camera: Arc::from("cam-2"),
            id: 8,
        };
        recent.record(t0 + Duration::from_secs(12), other, e(&[0.45, 0.893]));
        assert!(matches!(
            recent.check_owner(&p, &g, ResidentId(1), t0),
            FaceCheck::Mismatch { .. }
        ));
        // The owner: 2 of 3 consecutive frames of one face, with a poor frame between.
        let t2 = t0 + Duration::from_secs(20);
        recent.record(t2, track(9), e(&[0.9, 0.436]));
        recent.record(t2 + Duration::from_millis(100), track(9), e(&[0.2, 0.98]));
        assert!(matches!(
            recent.check_owner(&p, &g, ResidentId(1), t2),
            FaceCheck::Mismatch { .. }
        ));
        recent.record(t2 + Duration::from_millis(200), track(9), e(&[0.9, 0.436]));
        assert!(matches!(
            recent.check_owner(&p, &g, ResidentId(1), t2),
            FaceCheck::Match { score } if score > 0.89
        ));
    }

    #[test]
    fn a_households_faces_are_matched_against_its_members_only() {
        let g = Gallery::from_rows(
            "m",
            2,
            vec![
                (ResidentId(1), vec![1.0, 0.0]),
                (ResidentId(2), vec![0.6, -0.8]),
                (ResidentId(3), vec![0.0, 1.0]),
            ],
        )
        .unwrap();
        let p = policy();
        let t0 = Instant::now();
        let mut recent = RecentFaces::default();
        let household = [ResidentId(1), ResidentId(2)];
        assert_eq!(
            recent.check_members(&p, &g, &household, t0),
            MemberFace::NotSeen
        );
        // R3's face: no member's, whatever the rest of the register holds.
        frames(&mut recent, t0, 1, 3, &[0.05, 0.998]);
        assert!(matches!(
            recent.check_members(&p, &g, &household, t0),
            MemberFace::NotMember { score } if score < 0.7
        ));
        // Then one frame of R2's: not yet confirmed.
        let t1 = t0 + Duration::from_secs(1);
        recent.record(t1, track(2), e(&[0.62, -0.78]));
        assert!(matches!(
            recent.check_members(&p, &g, &household, t0),
            MemberFace::NotMember { score } if score > 0.99
        ));
        // A second frame (R1 matches it too, less well): the best-matching
        // member, not merely the first.
        recent.record(t1 + Duration::from_millis(100), track(2), e(&[0.62, -0.78]));
        assert!(matches!(
            recent.check_members(&p, &g, &household, t0),
            MemberFace::Member { resident: ResidentId(2), score } if score > 0.99
        ));
        // A household with nobody enrolled, and faces seen before `since`.
        assert_eq!(
            recent.check_members(&p, &g, &[ResidentId(9)], t0),
            MemberFace::NotEnrolled
        );
        assert_eq!(
            recent.check_members(&p, &g, &household, t0 + Duration::from_secs(5)),
            MemberFace::NotSeen
        );
    }

    #[test]
    fn a_crowd_does_not_grow_the_buffer() {
        let mut recent = RecentFaces::default();
        let t0 = Instant::now();
        for i in 0..(CAPACITY + 10) {
            recent.record(
                t0 + Duration::from_millis(i as u64),
                track(1),
                e(&[1.0, 0.0]),
            );
        }
        assert_eq!(recent.len(), CAPACITY);
    }
}
