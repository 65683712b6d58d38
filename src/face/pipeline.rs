//! The per-camera pipeline: camera → detect → quality → align → embed →
//! match → liveness → policy → a face credential for the access decision, a
//! presentation attack, or a rate-limited unknown-face event with a JPEG
//! snapshot.
//!
//! At a gate with liveness on, every face that passed the quality floor and
//! could become a credential (it matched a resident, or the gate's card + face
//! check may ask for it) goes through the liveness models, all such faces of a
//! frame in one batch; a failing match becomes a spoof vote
//! ([`super::policy::with_liveness`]) and a failing face is not offered to a
//! card + face check.
//!
//! One thread per camera owns its own detector and embedder sessions; the
//! gallery is shared through a [`GalleryHandle`] that can be swapped (after
//! an enrolment) while the threads run. Results leave over a channel; nothing
//! here touches doors or the event log.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use opencv::core::{Mat, Point, Rect, Scalar, Vector};
use opencv::imgproc;
use opencv::prelude::*;
use serde::Serialize;
use tokio::sync::mpsc;

use super::camera::{Camera, CameraMonitor, CameraOptions, CameraState, CameraStats, Source};
use super::detect::Detection;
use super::gallery::{GalleryHandle, IdentityScore};
use super::liveness::Liveness;
use super::policy::{self, FrameVerdict, GateState, MatchPolicy, Outcome, SharedGateMemory};
use super::quality::{Rejection, RejectionCounters};
use super::recent::{FaceTrack, FaceWitness, SharedRecentFaces};
use super::track::Tracker;
use super::watch::{self, WatchFaces, WatchMemory, WatchOutcome};
use super::{cv, FaceEngine};
use crate::config::Config;
use crate::domain::{GateId, ResidentId};

/// A confirmed resident at a gate: a credential of kind face.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaceCredential {
    pub gate: GateId,
    pub camera: String,
    pub resident: ResidentId,
    /// Mean cosine similarity of the agreeing frames.
    pub score: f32,
    pub at: DateTime<Utc>,
    /// The station's `deny` entry one of the face's recent frames matched:
    /// the gate refuses it (`watchlisted`), as it refuses a listed card.
    pub watchlisted: Option<String>,
}

/// A face that matched nobody over K of M frames.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnknownFace {
    pub gate: GateId,
    pub camera: String,
    /// The closest resident (below the threshold), for review.
    pub best: Option<IdentityScore>,
    pub at: DateTime<Utc>,
    /// JPEG of the face and its surroundings (not the whole frame).
    #[serde(skip)]
    pub snapshot_jpeg: Vec<u8>,
    /// The face's embedding (unit length), to recognise a stranger who
    /// comes back (`store::strangers`); never published.
    #[serde(skip)]
    pub embedding: Option<Vec<f32>>,
}

/// A face the station's watchlist names, confirmed over K frames.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WatchedFace {
    pub gate: GateId,
    pub camera: String,
    /// The station's reference for the entry.
    pub value: String,
    pub label: Option<String>,
    /// The entry asks to refuse entry (the face's credential is dropped).
    pub deny: bool,
    pub score: f32,
    pub at: DateTime<Utc>,
    #[serde(skip)]
    pub snapshot_jpeg: Vec<u8>,
}

/// A face that matched a resident but failed the liveness check over K of M
/// frames: a photo or a screen held up to the camera.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SpoofedFace {
    pub gate: GateId,
    pub camera: String,
    /// Whose face the photo shows, and how well it matched.
    pub best: IdentityScore,
    /// Mean fused liveness score of the spoof frames (below the threshold).
    pub liveness: f32,
    pub threshold: f32,
    pub at: DateTime<Utc>,
    /// JPEG of the face and its surroundings, kept on the device.
    #[serde(skip)]
    pub snapshot_jpeg: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FaceEvent {
    Credential(FaceCredential),
    Unknown(UnknownFace),
    /// A presentation attack: never a credential.
    Attack(SpoofedFace),
    Watchlist(WatchedFace),
    /// The camera changed state (lost, back, ended).
    Camera {
        gate: GateId,
        camera: String,
        state: CameraState,
    },
    /// The face models failed on [`MODEL_FAULT_FRAMES`] frames in a row
    /// (`error`), or ran again after such a fault (`error: None`). A broken
    /// detector must not look like a gate where nobody comes.
    Model {
        gate: GateId,
        camera: String,
        error: Option<String>,
    },
}

/// Consecutive failed frames that make a model fault (one bad frame is not).
pub const MODEL_FAULT_FRAMES: u32 = 3;

/// Counters of one pipeline, readable while it runs.
#[derive(Debug, Default)]
pub struct PipelineCounters {
    pub frames: AtomicU64,
    pub faces: AtomicU64,
    pub embedded: AtomicU64,
    pub credentials: AtomicU64,
    pub unknown_events: AtomicU64,
    /// Faces run through the liveness models, and those that failed.
    pub liveness_checked: AtomicU64,
    pub liveness_failed: AtomicU64,
    pub attacks: AtomicU64,
    /// Events the channel had no room for (unknown faces and camera states only).
    pub events_dropped: AtomicU64,
    pub errors: AtomicU64,
    /// Microseconds the last frame took from detection to decision.
    pub last_frame_us: AtomicU64,
    pub rejections: RejectionCounters,
}

/// A snapshot of a running pipeline for `gate status` and the console.
#[derive(Clone, Debug, Serialize)]
pub struct PipelineStatus {
    pub gate: GateId,
    pub camera: String,
    pub source: String,
    pub camera_state: CameraState,
    pub camera_stats: CameraStats,
    pub frames: u64,
    pub faces: u64,
    pub embedded: u64,
    pub credentials: u64,
    pub unknown_events: u64,
    pub liveness_checked: u64,
    pub liveness_failed: u64,
    pub attacks: u64,
    pub events_dropped: u64,
    pub errors: u64,
    pub last_frame_ms: f64,
    pub rejections: Vec<(Rejection, u64)>,
    pub gallery_faces: usize,
}

/// Everything that happens to one frame, without the camera: the per-frame path.
pub struct FrameProcessor {
    pub engine: FaceEngine,
    pub policy: MatchPolicy,
    pub gate: GateId,
    pub camera: String,
    gallery: GalleryHandle,
    tracker: Tracker,
    state: GateState,
    counters: Arc<PipelineCounters>,
    warned_model: bool,
    /// Faces seen at this gate, for a card + face check (when the gate has one).
    recent: Option<SharedRecentFaces>,
    /// The station's face watchlist, and this camera's confirmations of it.
    watch: Option<WatchFaces>,
    watch_memory: WatchMemory,
    /// The liveness models, at a gate with liveness on.
    liveness: Option<Liveness>,
}

impl FrameProcessor {
    pub fn new(
        engine: FaceEngine,
        policy: MatchPolicy,
        gate: GateId,
        camera: String,
        gallery: GalleryHandle,
    ) -> FrameProcessor {
        FrameProcessor {
            engine,
            policy,
            gate,
            camera,
            gallery,
            tracker: Tracker::default(),
            state: GateState::default(),
            counters: Arc::new(PipelineCounters::default()),
            warned_model: false,
            recent: None,
            watch: None,
            watch_memory: WatchMemory::default(),
            liveness: None,
        }
    }

    /// Checks every face that could become a credential for liveness.
    pub fn check_liveness(&mut self, liveness: Liveness) {
        self.liveness = Some(liveness);
    }

    /// Compares every good face with the station's face watchlist.
    pub fn share_watchlist(&mut self, watch: WatchFaces) {
        self.watch = Some(watch);
    }

    /// Records every face that passes the quality floor into the gate's
    /// recent faces, where a card read at a two-factor gate looks for its owner.
    pub fn share_recent_faces(&mut self, recent: SharedRecentFaces) {
        self.recent = Some(recent);
    }

    /// Shares cooldowns and the unknown-face rate limit with the gate's other cameras.
    pub fn share_gate_memory(&mut self, memory: SharedGateMemory) {
        self.state = GateState::sharing(memory);
    }

    pub fn counters(&self) -> Arc<PipelineCounters> {
        self.counters.clone()
    }

    /// Runs one frame through detection, quality, embedding, search and the
    /// policy; returns the credentials and unknown-face events it produced.
    pub fn process(&mut self, frame: &Mat, now: Instant) -> Result<Vec<FaceEvent>> {
        let started = Instant::now();
        let detections = self.engine.detector.detect(frame)?;
        let boxes: Vec<_> = detections.iter().map(|d| d.bbox).collect();
        let assignment = self.tracker.update(&boxes);
        for ended in &assignment.ended {
            self.state.forget(*ended);
            self.watch_memory.forget(*ended);
        }
        let watchlist = self.watch.as_ref().map(WatchFaces::current);
        let gallery = self.gallery.current();
        // The 1:N threshold in force: the gallery's self-calibrated one when
        // calibration is on (chosen when it was loaded), else the configured.
        let policy = match gallery.calibrated() {
            Some(c) => MatchPolicy {
                threshold: c.threshold,
                ..self.policy
            },
            None => self.policy,
        };
        let usable_gallery = gallery.model() == self.engine.model_name();
        if !usable_gallery && !self.warned_model {
            tracing::error!(
                gallery = gallery.model(),
                embedder = self.engine.model_name(),
                "gallery was built with another embedder; no face will match until it is reloaded"
            );
            self.warned_model = true;
        }
        let c = self.counters.clone();
        c.frames.fetch_add(1, Ordering::Relaxed);
        let mut events = Vec::new();
        let mut observed = Vec::with_capacity(detections.len());
        let mut face_errors = Vec::new();
        for (detection, track) in detections.iter().zip(assignment.ids) {
            c.faces.fetch_add(1, Ordering::Relaxed);
            // One bad face (degenerate landmarks, a runtime hiccup) must not void the frame.
            match self.engine.observe(frame, *detection, &gallery, &policy) {
                Ok(o) => observed.push((detection, track, o)),
                Err(e) => {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(camera = %self.camera, track, error = %format!("{e:#}"), "face skipped");
                    face_errors.push(e);
                }
            }
        }
        let checked = self.liveness_of(frame, &observed);
        for ((detection, track, observation), checked) in observed.iter().zip(checked) {
            let (detection, track) = (*detection, *track);
            let live = match checked {
                LivenessCheck::NotNeeded => None,
                LivenessCheck::Score(score) => Some(score),
                // Fail closed without crying wolf: this frame is no vote at all
                // (not a credential, not an attack), and not a card + face witness.
                LivenessCheck::Failed => continue,
            };
            let (face, ranked) = (&observation.face, observation.ranked);
            let verdict = match (live, &self.liveness) {
                (Some(score), Some(l)) => {
                    policy::with_liveness(observation.verdict, score, l.threshold)
                }
                _ => observation.verdict,
            };
            if let Err(reason) = face.verdict {
                c.rejections.add(reason);
            }
            let failed_liveness = match (live, &self.liveness) {
                (Some(score), Some(l)) => !l.is_live(score),
                _ => false,
            };
            if let Some(embedding) = &face.embedding {
                c.embedded.fetch_add(1, Ordering::Relaxed);
                // A photo of the card owner must not complete a card + face check.
                if let (Some(recent), Ok(()), false) = (&self.recent, face.verdict, failed_liveness)
                {
                    let mut recent = recent.lock().unwrap_or_else(|p| p.into_inner());
                    let track = FaceTrack {
                        camera: Arc::from(self.camera.as_str()),
                        id: track,
                    };
                    recent.record(now, track, embedding.clone());
                }
                if let (Some(list), Ok(())) = (&watchlist, face.verdict) {
                    let hit = watch::best_match(
                        list,
                        embedding.as_slice(),
                        self.policy.threshold,
                        Utc::now(),
                    );
                    let confirmed = self.watch_memory.observe(
                        track,
                        hit,
                        (self.policy.confirm_k, self.policy.confirm_m),
                        now,
                    );
                    if let (WatchOutcome::Alarm { value, score }, Some((entry, _))) =
                        (confirmed, hit)
                    {
                        tracing::warn!(camera = %self.camera, entry = %value, score, "watchlisted face");
                        events.push(FaceEvent::Watchlist(WatchedFace {
                            gate: self.gate.clone(),
                            camera: self.camera.clone(),
                            value,
                            label: entry.label.clone(),
                            deny: entry.deny,
                            score,
                            at: Utc::now(),
                            snapshot_jpeg: snapshot_or_empty(frame, detection),
                        }));
                    }
                }
            }
            tracing::debug!(
                camera = %self.camera,
                track,
                eye_px = face.quality.eye_px,
                sharpness = face.quality.sharpness,
                yaw = face.quality.yaw,
                brightness = face.quality.brightness,
                best = ?ranked.map(|r| (r.best.resident, r.best.score)),
                ?verdict,
                "face"
            );
            // With the wrong gallery every resident would look like a stranger:
            // report nothing rather than flood the station with unknown faces.
            if !usable_gallery {
                continue;
            }
            let Some(outcome) = self.state.observe(&policy, track, verdict, now) else {
                continue;
            };
            let at = Utc::now();
            match outcome {
                Outcome::Credential(score) => {
                    let watchlisted = self.watch_memory.denied(track).map(str::to_string);
                    match &watchlisted {
                        // The station asked to keep this face out: the gate
                        // refuses it (its alarm is raised by the confirmation above).
                        Some(entry) => {
                            tracing::warn!(camera = %self.camera, entry, "watchlisted face (deny): presented to be refused")
                        }
                        None => {
                            c.credentials.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    events.push(FaceEvent::Credential(FaceCredential {
                        gate: self.gate.clone(),
                        camera: self.camera.clone(),
                        resident: score.resident,
                        score: score.score,
                        at,
                        watchlisted,
                    }));
                }
                Outcome::PresentationAttack { best, liveness } => {
                    c.attacks.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(camera = %self.camera, resident = %best.resident, liveness, "presentation attack: face refused");
                    events.push(FaceEvent::Attack(SpoofedFace {
                        gate: self.gate.clone(),
                        camera: self.camera.clone(),
                        best,
                        liveness,
                        threshold: self.liveness.as_ref().map_or(0.0, |l| l.threshold),
                        at,
                        snapshot_jpeg: snapshot_or_empty(frame, detection),
                    }));
                }
                Outcome::UnknownFace { best } => {
                    c.unknown_events.fetch_add(1, Ordering::Relaxed);
                    let snapshot_jpeg = snapshot_or_empty(frame, detection);
                    events.push(FaceEvent::Unknown(UnknownFace {
                        gate: self.gate.clone(),
                        camera: self.camera.clone(),
                        best,
                        at,
                        snapshot_jpeg,
                        embedding: face.embedding.as_ref().map(|e| e.as_slice().to_vec()),
                    }));
                }
            }
        }
        c.last_frame_us
            .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        let labels = [("camera", self.camera.as_str())];
        let (name, help) = crate::metrics::FACE_FRAME;
        crate::metrics::observe(name, help, &labels, started.elapsed().as_secs_f64());
        let (name, help) = crate::metrics::CAMERA_FRAMES;
        crate::metrics::inc(name, help, &labels);
        // Every face failing (the embedder refusing to run) is a failed frame.
        if !detections.is_empty() && face_errors.len() == detections.len() {
            if let Some(e) = face_errors.pop() {
                return Err(e.context("every face in the frame failed"));
            }
        }
        Ok(events)
    }

    /// The fused liveness score of each observed face that needs one (with
    /// liveness on: it passed the quality floor, and it matched a resident or
    /// may serve a card + face check), all in one batch per model. A failing
    /// model run fails the check of those faces only.
    fn liveness_of(
        &mut self,
        frame: &Mat,
        observed: &[(&Detection, u64, super::Observation)],
    ) -> Vec<LivenessCheck> {
        let Some(models) = self.liveness.as_mut() else {
            return vec![LivenessCheck::NotNeeded; observed.len()];
        };
        let needs: Vec<bool> = observed
            .iter()
            .map(|(_, _, o)| {
                o.face.verdict.is_ok()
                    && (matches!(o.verdict, FrameVerdict::Match(_))
                        || (self.recent.is_some() && o.face.embedding.is_some()))
            })
            .collect();
        let boxes: Vec<_> = observed
            .iter()
            .zip(&needs)
            .filter(|(_, n)| **n)
            .map(|((d, _, _), _)| d.bbox)
            .collect();
        if boxes.is_empty() {
            return vec![LivenessCheck::NotNeeded; observed.len()];
        }
        let scores: Vec<f32> = match models.score(frame, &boxes) {
            Ok(scores) => scores.into_iter().map(|s| s.score).collect(),
            Err(e) => {
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(camera = %self.camera, error = %format!("{e:#}"), "liveness check failed; these faces are skipped in this frame");
                return needs
                    .into_iter()
                    .map(|n| {
                        if n {
                            LivenessCheck::Failed
                        } else {
                            LivenessCheck::NotNeeded
                        }
                    })
                    .collect();
            }
        };
        let c = &self.counters;
        c.liveness_checked
            .fetch_add(scores.len() as u64, Ordering::Relaxed);
        c.liveness_failed.fetch_add(
            scores.iter().filter(|s| !models.is_live(**s)).count() as u64,
            Ordering::Relaxed,
        );
        let mut scores = scores.into_iter();
        needs
            .into_iter()
            .map(|n| match n {
                true => scores
                    .next()
                    .map_or(LivenessCheck::Failed, LivenessCheck::Score),
                false => LivenessCheck::NotNeeded,
            })
            .collect()
    }
}

/// What the liveness stage says about one face of a frame.
#[derive(Clone, Copy, Debug, PartialEq)]
enum LivenessCheck {
    /// Liveness is off here, or the face could not become a credential.
    NotNeeded,
    /// The fused score.
    Score(f32),
    /// The models failed on this frame.
    Failed,
}

/// [`snapshot`], or nothing (with a warning): an event without a picture beats no event.
fn snapshot_or_empty(frame: &Mat, detection: &Detection) -> Vec<u8> {
    snapshot(frame, detection).unwrap_or_else(|e| {
        tracing::warn!(error = %format!("{e:#}"), "cannot encode face snapshot");
        Vec::new()
    })
}

/// JPEG (quality 85) of the face box enlarged 1.6×, clipped to the frame.
pub fn snapshot(frame: &Mat, detection: &Detection) -> Result<Vec<u8>> {
    let b = detection.bbox;
    let (cx, cy) = (b.x + b.w / 2.0, b.y + b.h / 2.0);
    let (w, h) = (b.w * 1.6, b.h * 1.6);
    let x0 = (cx - w / 2.0).max(0.0) as i32;
    let y0 = (cy - h / 2.0).max(0.0) as i32;
    let x1 = ((cx + w / 2.0) as i32).min(frame.cols());
    let y1 = ((cy + h / 2.0) as i32).min(frame.rows());
    if x1 <= x0 || y1 <= y0 {
        anyhow::bail!("face box lies outside the frame");
    }
    let roi = cv(
        Mat::roi(frame, Rect::new(x0, y0, x1 - x0, y1 - y0)),
        "snapshot region",
    )?;
    let mut buf = Vector::<u8>::new();
    let params = Vector::from_slice(&[opencv::imgcodecs::IMWRITE_JPEG_QUALITY, 85]);
    cv(
        opencv::imgcodecs::imencode(".jpg", &roi, &mut buf, &params),
        "cannot encode JPEG",
    )?;
    Ok(buf.to_vec())
}

/// Draws a detection (box, landmarks, score) onto an image, for `face detect --annotate`.
pub fn draw_detection(canvas: &mut Mat, d: &Detection) -> Result<()> {
    let green = Scalar::new(0.0, 255.0, 0.0, 0.0);
    let thickness = ((d.bbox.w / 100.0).ceil() as i32).max(1);
    cv(
        imgproc::rectangle(
            canvas,
            Rect::new(
                d.bbox.x as i32,
                d.bbox.y as i32,
                d.bbox.w as i32,
                d.bbox.h as i32,
            ),
            green,
            thickness,
            imgproc::LINE_8,
            0,
        ),
        "draw box",
    )?;
    // Right eye red, left eye blue, nose green, mouth corners yellow/magenta.
    let colours = [
        Scalar::new(0.0, 0.0, 255.0, 0.0),
        Scalar::new(255.0, 0.0, 0.0, 0.0),
        green,
        Scalar::new(0.0, 255.0, 255.0, 0.0),
        Scalar::new(255.0, 0.0, 255.0, 0.0),
    ];
    for (p, colour) in d.landmarks.iter().zip(colours) {
        cv(
            imgproc::circle(
                canvas,
                Point::new(p[0] as i32, p[1] as i32),
                thickness * 2,
                colour,
                -1,
                imgproc::LINE_8,
                0,
            ),
            "draw landmark",
        )?;
    }
    cv(
        imgproc::put_text(
            canvas,
            &format!("{:.2}", d.score),
            Point::new(d.bbox.x as i32, (d.bbox.y as i32 - 4).max(10)),
            imgproc::FONT_HERSHEY_SIMPLEX,
            0.5 * thickness as f64,
            green,
            thickness,
            imgproc::LINE_8,
            false,
        ),
        "draw score",
    )?;
    Ok(())
}

/// A running camera pipeline.
pub struct PipelineHandle {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<PipelineCounters>,
    monitor: CameraMonitor,
    gallery: GalleryHandle,
    gate: GateId,
    camera: String,
    source: String,
}

impl PipelineHandle {
    pub fn status(&self) -> PipelineStatus {
        let c = &self.counters;
        PipelineStatus {
            gate: self.gate.clone(),
            camera: self.camera.clone(),
            source: self.source.clone(),
            camera_state: self.monitor.state(),
            camera_stats: self.monitor.stats(),
            frames: c.frames.load(Ordering::Relaxed),
            faces: c.faces.load(Ordering::Relaxed),
            embedded: c.embedded.load(Ordering::Relaxed),
            credentials: c.credentials.load(Ordering::Relaxed),
            unknown_events: c.unknown_events.load(Ordering::Relaxed),
            liveness_checked: c.liveness_checked.load(Ordering::Relaxed),
            liveness_failed: c.liveness_failed.load(Ordering::Relaxed),
            attacks: c.attacks.load(Ordering::Relaxed),
            events_dropped: c.events_dropped.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            last_frame_ms: c.last_frame_us.load(Ordering::Relaxed) as f64 / 1000.0,
            rejections: c.rejections.snapshot(),
            gallery_faces: self.gallery.current().len(),
        }
    }

    /// True once the thread has exited (a video file ended, or the receiver went away).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }

    /// Stops the pipeline and waits for its thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for PipelineHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Starts the pipeline of one configured camera: loads its own models, opens
/// the camera, and sends [`FaceEvent`]s to `tx` until stopped, until a video
/// file ends, or until the receiver is dropped.
pub fn spawn(
    config: &Config,
    camera: &crate::config::CameraConfig,
    gallery: GalleryHandle,
    tx: mpsc::Sender<FaceEvent>,
) -> Result<PipelineHandle> {
    spawn_with(
        config,
        camera,
        gallery,
        tx,
        SharedGateMemory::default(),
        None,
        None,
    )
}

/// [`spawn`], with the gate's memory (cooldowns) shared with its other
/// cameras, recording good faces in `recent` (card + face gates) and
/// comparing them with the station's `watchlist`.
fn spawn_with(
    config: &Config,
    camera: &crate::config::CameraConfig,
    gallery: GalleryHandle,
    tx: mpsc::Sender<FaceEvent>,
    gate_memory: SharedGateMemory,
    recent: Option<SharedRecentFaces>,
    watchlist: Option<WatchFaces>,
) -> Result<PipelineHandle> {
    let spec = super::embedder_spec(config)?;
    let policy = MatchPolicy::from_config(&config.face, &spec)?;
    let engine = FaceEngine::load(config)
        .with_context(|| format!("camera {}: cannot load the face models", camera.id))?;
    let mut processor = FrameProcessor::new(
        engine,
        policy,
        camera.gate.clone(),
        camera.id.clone(),
        gallery.clone(),
    );
    processor.share_gate_memory(gate_memory);
    if config.gate(&camera.gate).is_some_and(|g| g.liveness_on()) {
        let liveness = Liveness::load(config)
            .with_context(|| format!("camera {}: cannot load the liveness models", camera.id))?;
        processor.check_liveness(liveness);
    }
    if let Some(recent) = recent {
        processor.share_recent_faces(recent);
    }
    if let Some(watchlist) = watchlist {
        processor.share_watchlist(watchlist);
    }
    let source = Source::parse(&camera.source);
    let label = source.label();
    let cam = Camera::open(
        source,
        CameraOptions {
            loop_file: camera.loop_file,
            ..CameraOptions::default()
        },
    );
    let monitor = cam.monitor();
    let counters = processor.counters();
    let stop = Arc::new(AtomicBool::new(false));
    let interval = Duration::from_secs_f32(1.0 / camera.max_fps.max(0.1));
    let thread = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name(format!("face {}", camera.id))
            .spawn(move || run_loop(cam, processor, interval, &stop, &tx))
            .context("cannot start face pipeline thread")?
    };
    Ok(PipelineHandle {
        stop,
        thread: Some(thread),
        counters,
        monitor,
        gallery,
        gate: camera.gate.clone(),
        camera: camera.id.clone(),
        source: label,
    })
}

fn run_loop(
    mut cam: Camera,
    mut processor: FrameProcessor,
    interval: Duration,
    stop: &AtomicBool,
    tx: &mpsc::Sender<FaceEvent>,
) {
    let counters = processor.counters();
    let mut last_state = cam.state();
    let mut next_due = Instant::now();
    let mut failed_in_a_row = 0u32;
    while !stop.load(Ordering::SeqCst) {
        let state = cam.state();
        if state != last_state {
            let event = FaceEvent::Camera {
                gate: processor.gate.clone(),
                camera: processor.camera.clone(),
                state: state.clone(),
            };
            if tx.try_send(event).is_err() {
                counters.events_dropped.fetch_add(1, Ordering::Relaxed);
            }
            last_state = state.clone();
        }
        if state.is_final() {
            break;
        }
        // At most max_fps frames are processed; the camera keeps only the newest meanwhile.
        let now = Instant::now();
        if now < next_due {
            std::thread::sleep(next_due - now);
        }
        let Some(frame) = cam.next_frame(Duration::from_millis(200)) else {
            continue;
        };
        next_due = Instant::now() + interval;
        let mut events = match processor.process(&frame.image, frame.captured) {
            Ok(events) => events,
            Err(e) => {
                counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(camera = %processor.camera, error = %format!("{e:#}"), "frame failed");
                failed_in_a_row += 1;
                if failed_in_a_row == MODEL_FAULT_FRAMES {
                    let fault = FaceEvent::Model {
                        gate: processor.gate.clone(),
                        camera: processor.camera.clone(),
                        error: Some(format!("{e:#}")),
                    };
                    if tx.blocking_send(fault).is_err() {
                        break;
                    }
                }
                continue;
            }
        };
        if failed_in_a_row >= MODEL_FAULT_FRAMES {
            events.insert(
                0,
                FaceEvent::Model {
                    gate: processor.gate.clone(),
                    camera: processor.camera.clone(),
                    error: None,
                },
            );
        }
        failed_in_a_row = 0;
        for event in events {
            let sent = match event {
                // A credential must not be lost: wait for room.
                FaceEvent::Credential(_) => tx.blocking_send(event).map_err(|_| ()),
                _ => match tx.try_send(event) {
                    Ok(()) => Ok(()),
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        counters.events_dropped.fetch_add(1, Ordering::Relaxed);
                        Ok(())
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
                },
            };
            if sent.is_err() {
                tracing::info!(camera = %processor.camera, "event receiver closed; stopping face pipeline");
                cam.stop();
                return;
            }
        }
    }
    cam.stop();
}

/// Every configured camera, started, with what they share.
pub struct Pipelines {
    pub gallery: GalleryHandle,
    pub handles: Vec<PipelineHandle>,
    /// What the gates ask for card + face and `gate status`.
    pub witness: FaceWitness,
    /// The station's face watchlist every camera compares faces with.
    pub watchlist: WatchFaces,
    /// The embedding length (watchlist entries of another length are skipped).
    pub dim: usize,
    /// The embedder's name and the match threshold (strangers are grouped with it).
    pub model: String,
    pub threshold: f32,
}

/// Starts a pipeline per configured camera: one gallery and one watchlist
/// for all, and per gate one memory (cooldowns) and recent faces (card + face).
pub fn spawn_all(
    config: &Config,
    conn: &rusqlite::Connection,
    tx: mpsc::Sender<FaceEvent>,
) -> Result<Pipelines> {
    let spec = super::embedder_spec(config)?;
    let dim = spec
        .embedding_size
        .context("embedder has no embedding_size in the manifest")?;
    let policy = MatchPolicy::from_config(&config.face, &spec)?;
    let mut gallery =
        GalleryHandle::new(super::load_gallery(conn, &spec.name, dim, policy.combine)?);
    if let Some(calibration) = super::calibrate::Calibration::from_config(config, &spec) {
        gallery = gallery.with_calibration(calibration);
        gallery.calibrate(conn);
    }
    let watchlist = WatchFaces::default();
    watchlist
        .reload(conn, dim)
        .context("cannot read the face watchlist")?;
    let model = spec.name.clone();
    let mut witness = FaceWitness::new(gallery.clone(), policy, config, spec);
    let mut handles = Vec::new();
    let mut memories: std::collections::HashMap<GateId, SharedGateMemory> = Default::default();
    for camera in &config.cameras {
        let memory = memories.entry(camera.gate.clone()).or_default().clone();
        let handle = spawn_with(
            config,
            camera,
            gallery.clone(),
            tx.clone(),
            memory,
            witness.recent_for(&camera.gate),
            Some(watchlist.clone()),
        )?;
        witness.add_camera(&camera.gate, &camera.id, handle.monitor.clone());
        handles.push(handle);
    }
    Ok(Pipelines {
        gallery,
        handles,
        witness,
        watchlist,
        dim,
        model,
        threshold: policy.threshold,
    })
}
