//! The entrance cameras' side of the daemon: confirmed faces become `Face`
//! credentials at their gate (`WatchlistedFace` when the station's `deny`
//! entry matched them), unknown faces `UnknownFace` credentials with a
//! snapshot (refused by the gate, `unknown_face`), camera state changes
//! device events. Every refusal comes out of `access::decide`.
//!
//! A presentation attack (a face that failed the liveness check) is presented
//! to its gate as a `SpoofedFace` credential: the gate refuses it with
//! `presentation_attack`, stores the event (liveness score, snapshot kept on
//! the device) and counts it toward the reader lockout; `[face]
//! attack_alarm_after` attacks at one gate within `[access]
//! lockout_window_s` raise a `presentation_attack` alarm.
//!
//! A camera or model failure takes face recognition out of service at that
//! gate only (an alarm says so); cards, PINs and plates keep working.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::mpsc;

use super::{GateHandle, Presentation};
use crate::access::Credential;
use crate::config::Config;
use crate::event::EventReason;
use crate::face::camera::CameraState;
use crate::face::pipeline::{self, FaceEvent, PipelineHandle};
use crate::face::watch::WatchFaces;
use crate::face::GalleryHandle;
use crate::store::events::{EventKind, EventRecord, NewEvent};
use crate::store::{self, strangers::StrangerPolicy};

/// How often the gallery checks the database for enrolment changes.
const GALLERY_POLL: Duration = Duration::from_secs(3);

/// The running cameras; stop them at shutdown.
pub struct Cameras {
    pub gallery: GalleryHandle,
    pub pipelines: Vec<PipelineHandle>,
}

impl Cameras {
    pub fn stop(self) {
        for p in self.pipelines {
            p.stop();
        }
    }
}

/// Starts every configured camera and the task that turns their events into
/// decisions and events. Returns `Ok(None)` when no camera is configured.
pub fn start(
    config: &Config,
    handle: GateHandle,
) -> Result<
    Option<(
        Cameras,
        impl std::future::Future<Output = ()> + Send + 'static,
    )>,
> {
    if config.cameras.is_empty() {
        return Ok(None);
    }
    // Stale flags are a write: on the writer, once, before the gallery is read.
    let model = crate::face::embedder_spec(config)?.name;
    handle
        .core()
        .with_store_blocking(|s| crate::face::flag_stale_faces(s.conn(), &model))?;
    // Everything else the cameras do with the database is reading, on
    // read-only connections that never wait for the gates' writer.
    let readers = handle.core().readers().clone();
    let (tx, rx) = mpsc::channel::<FaceEvent>(64);
    let started = readers.read(|conn| pipeline::spawn_all(config, conn, tx))??;
    handle
        .core()
        .set_face_witness(std::sync::Arc::new(started.witness));
    let snapshots = config.data_dir().join("snapshots");
    let lists = Lists {
        gallery: started.gallery.clone(),
        watchlist: started.watchlist,
        dim: started.dim,
        strangers: Strangers {
            model: started.model.clone(),
            policy: StrangerPolicy {
                threshold: started.threshold,
                keep_days: config.face.stranger_days,
                report_after_days: config.face.recurring_stranger_days,
                utc_offset: config.site.utc_offset(),
            },
        },
    };
    let attacks = AttackCounter {
        window: Duration::from_secs(u64::from(config.access.lockout_window_s)),
        alarm_after: config.face.attack_alarm_after.max(1) as usize,
        seen: HashMap::new(),
    };
    let task = run_events(rx, handle, snapshots, lists, readers, attacks);
    Ok(Some((
        Cameras {
            gallery: started.gallery,
            pipelines: started.handles,
        },
        task,
    )))
}

/// Presentation attacks per gate within the window; enough of them raise the alarm.
struct AttackCounter {
    window: Duration,
    alarm_after: usize,
    seen: HashMap<crate::domain::GateId, VecDeque<Instant>>,
}

impl AttackCounter {
    /// Counts one attack at `gate`; returns the number within the window when
    /// it reaches the alarm (and starts counting afresh).
    fn note(&mut self, gate: &crate::domain::GateId, now: Instant) -> Option<usize> {
        let q = self.seen.entry(gate.clone()).or_default();
        q.retain(|t| now.saturating_duration_since(*t) < self.window);
        q.push_back(now);
        if q.len() >= self.alarm_after {
            let n = q.len();
            q.clear();
            return Some(n);
        }
        None
    }
}

/// What the cameras match against, reloaded when the database changes.
struct Lists {
    gallery: GalleryHandle,
    watchlist: WatchFaces,
    dim: usize,
    strangers: Strangers,
}

/// The cameras' read-only connections to the database.
type Reader = crate::store::Readers;

/// A sighting that can cross into a blocking task.
#[derive(Clone)]
struct OwnedSighting {
    at: chrono::DateTime<chrono::Utc>,
    gate: String,
    model: String,
    embedding: Vec<f32>,
    snapshot: Option<String>,
    event_seq: i64,
}

impl OwnedSighting {
    fn borrowed(&self) -> store::strangers::Sighting<'_> {
        store::strangers::Sighting {
            at: self.at,
            gate: &self.gate,
            model: &self.model,
            embedding: &self.embedding,
            snapshot: self.snapshot.as_deref(),
            event_seq: Some(self.event_seq),
        }
    }
}

/// How unknown faces are kept and grouped (`store::strangers`).
#[derive(Clone)]
struct Strangers {
    model: String,
    policy: StrangerPolicy,
}

async fn run_events(
    mut rx: mpsc::Receiver<FaceEvent>,
    handle: GateHandle,
    snapshots: PathBuf,
    lists: Lists,
    conn: Reader,
    mut attacks: AttackCounter,
) {
    let Lists {
        gallery,
        watchlist,
        dim,
        strangers,
    } = lists;
    let mut last_version = gallery_version(&conn);
    let mut last_register = register_version(&conn);
    let mut poll = tokio::time::interval(GALLERY_POLL);
    loop {
        tokio::select! {
            event = rx.recv() => {
                let Some(event) = event else { return };
                if let Err(e) = on_event(&handle, &snapshots, &strangers, &conn, &mut attacks, event).await {
                    tracing::warn!("face event not recorded: {e:#}");
                }
            }
            _ = poll.tick() => {
                let version = gallery_version(&conn);
                if version != last_version {
                    last_version = version;
                    let (gallery, conn) = (gallery.clone(), conn.clone());
                    let reloaded = tokio::task::spawn_blocking(move || {
                        conn.read(|conn| gallery.reload(conn))?
                    }).await;
                    match reloaded {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => tracing::warn!("face gallery reload failed: {e:#}"),
                        Err(e) => tracing::warn!("face gallery reload task failed: {e}"),
                    }
                }
                // The watchlist bumps the register version (migration 006).
                let register = register_version(&conn);
                if register != last_register {
                    last_register = register;
                    let (watchlist, conn) = (watchlist.clone(), conn.clone());
                    let reloaded = tokio::task::spawn_blocking(move || {
                        conn.read(|conn| watchlist.reload(conn, dim))?
                    }).await;
                    match reloaded {
                        Ok(Ok(n)) => tracing::debug!(faces = n, "face watchlist reloaded"),
                        Ok(Err(e)) => tracing::warn!("face watchlist reload failed (keeping the previous one): {e:#}"),
                        Err(e) => tracing::warn!("face watchlist reload task failed: {e}"),
                    }
                }
            }
        }
    }
}

fn register_version(conn: &Reader) -> Option<i64> {
    conn.read(crate::store::snapshot::register_version)
        .ok()?
        .ok()
}

/// Changes whenever a face is enrolled, removed or re-embedded.
fn gallery_version(conn: &Reader) -> Option<(i64, i64, i64)> {
    conn.read(crate::store::faces::gallery_version).ok()?.ok()
}

async fn on_event(
    handle: &GateHandle,
    snapshots: &std::path::Path,
    strangers: &Strangers,
    reader: &Reader,
    attacks: &mut AttackCounter,
    event: FaceEvent,
) -> Result<()> {
    match event {
        FaceEvent::Attack(a) => {
            let snapshot = save_snapshot(snapshots, &a.gate, &a.snapshot_jpeg)?;
            let detail = serde_json::json!({
                "camera": a.camera,
                "liveness": a.liveness,
                "liveness_threshold": a.threshold,
            });
            handle
                .submit(
                    &a.gate,
                    Presentation {
                        credential: Credential::SpoofedFace {
                            resident: a.best.resident,
                            score: a.best.score,
                            liveness: a.liveness,
                        },
                        snapshot: Some(snapshot.clone()),
                        detail: Some(detail.clone()),
                    },
                )
                .await?;
            if let Some(attempts) = attacks.note(&a.gate, Instant::now()) {
                tracing::warn!(gate = %a.gate, attempts, "repeated presentation attacks");
                let mut e = handle.event(EventKind::Alarm);
                e.gate = Some(a.gate.clone());
                e.credential_kind = Some("face".into());
                e.reason = Some(EventReason::PresentationAttack);
                e.score = Some(a.liveness);
                e.snapshot = Some(snapshot);
                e.detail = Some(serde_json::json!({
                    "camera": a.camera,
                    "attempts": attempts,
                    "liveness": a.liveness,
                    "liveness_threshold": a.threshold,
                }));
                handle.record(e).await?;
            }
        }
        FaceEvent::Credential(c) => {
            let credential = match c.watchlisted {
                Some(entry) => Credential::WatchlistedFace {
                    resident: c.resident,
                    score: c.score,
                    entry,
                },
                None => Credential::Face {
                    resident: c.resident,
                    score: c.score,
                },
            };
            handle
                .submit(
                    &c.gate,
                    Presentation {
                        credential,
                        snapshot: None,
                        detail: Some(serde_json::json!({ "camera": c.camera })),
                    },
                )
                .await?;
        }
        FaceEvent::Unknown(u) => {
            let snapshot = save_snapshot(snapshots, &u.gate, &u.snapshot_jpeg)?;
            let presented = handle
                .submit(
                    &u.gate,
                    Presentation {
                        credential: Credential::UnknownFace {
                            score: u.best.as_ref().map(|b| b.score),
                        },
                        snapshot: Some(snapshot),
                        detail: Some(serde_json::json!({ "camera": u.camera })),
                    },
                )
                .await?;
            let Some(stored) = presented.event else {
                // Kept for the next write; the sighting needs its event's seq.
                anyhow::bail!(
                    "unknown face at {}: event not stored yet, sighting not kept",
                    u.gate
                );
            };
            if let Some(embedding) = u.embedding {
                note_stranger(handle, strangers, reader, &u.gate, embedding, &stored).await?;
            }
        }
        FaceEvent::Watchlist(w) => {
            let mut e = face_seen_event(
                handle,
                snapshots,
                EventKind::Alarm,
                &w.gate,
                &w.snapshot_jpeg,
            )?;
            e.reason = Some(EventReason::WatchlistMatch);
            e.score = Some(w.score);
            e.detail = Some(serde_json::json!({
                "camera": w.camera,
                "credential_kind": "face",
                "watch_entry": w.value,
                "label": w.label,
                "denied": w.deny,
            }));
            handle.record(e).await?;
        }
        FaceEvent::Camera {
            gate,
            camera,
            state,
        } => {
            let (kind, reason) = match &state {
                CameraState::Streaming => (EventKind::Device, EventReason::CameraStreaming),
                CameraState::Reconnecting { .. } => (EventKind::Alarm, EventReason::CameraLost),
                CameraState::Ended => (EventKind::Device, EventReason::CameraEnded),
                CameraState::Connecting | CameraState::Stopped => return Ok(()),
            };
            let mut e = handle.event(kind);
            e.gate = Some(gate);
            e.reason = Some(reason);
            e.detail = Some(serde_json::json!({ "camera": camera, "state": state }));
            handle.record(e).await?;
        }
        FaceEvent::Model {
            gate,
            camera,
            error,
        } => {
            // A model that fails to run takes face recognition out at this gate: an alarm.
            let (kind, reason) = match error {
                Some(_) => (EventKind::Alarm, EventReason::FaceModelFailed),
                None => (EventKind::Device, EventReason::FaceModelRecovered),
            };
            let mut e = handle.event(kind);
            e.gate = Some(gate);
            e.reason = Some(reason);
            e.detail = Some(serde_json::json!({ "camera": camera, "error": error }));
            handle.record(e).await?;
        }
    }
    Ok(())
}

/// Keeps an unknown face among the strangers seen; raises `recurring_stranger`
/// when the same face has now been seen on enough days.
async fn note_stranger(
    handle: &GateHandle,
    strangers: &Strangers,
    reader: &Reader,
    gate: &crate::domain::GateId,
    embedding: Vec<f32>,
    unknown: &EventRecord,
) -> Result<()> {
    if strangers.policy.keep_days == 0 {
        return Ok(());
    }
    let sighting = OwnedSighting {
        at: handle.core().clock.now().wall,
        gate: gate.to_string(),
        model: strangers.model.clone(),
        embedding,
        snapshot: unknown.snapshot.clone(),
        event_seq: unknown.seq,
    };
    let policy = strangers.policy;
    // The search reads every kept sighting: on a read-only connection, so
    // gate events never wait behind it; only the insert takes the writer.
    let (reader, searched) = (reader.clone(), sighting.clone());
    let stranger = tokio::task::spawn_blocking(move || -> Result<Option<i64>> {
        reader
            .read(|conn| store::strangers::closest_stranger(conn, &searched.borrowed(), &policy))?
    })
    .await
    .context("stranger search task failed")??;
    let report = handle
        .with_store(move |store| {
            store::strangers::record_as(store.conn(), &sighting.borrowed(), stranger, &policy)
        })
        .await??;
    if let Some(r) = report {
        tracing::warn!(stranger = %r.stranger, days = r.days, "an unregistered face keeps coming back");
        let mut e = handle.event(EventKind::Alarm);
        e.gate = Some(gate.clone());
        e.credential_kind = Some("face".into());
        e.reason = Some(EventReason::RecurringStranger);
        e.snapshot = unknown.snapshot.clone();
        e.detail = Some(serde_json::to_value(&r)?);
        handle.record(e).await?;
    }
    Ok(())
}

/// An event about a face seen at `gate`, with its snapshot saved.
fn face_seen_event(
    handle: &GateHandle,
    snapshots: &std::path::Path,
    kind: EventKind,
    gate: &crate::domain::GateId,
    jpeg: &[u8],
) -> Result<NewEvent> {
    let mut e = handle.event(kind);
    e.snapshot = Some(save_snapshot(snapshots, gate, jpeg)?);
    e.gate = Some(gate.clone());
    e.direction = handle
        .gate_config(gate)
        .ok()
        .map(|g| super::gate::direction_str(g.direction).to_string());
    e.credential_kind = Some("face".into());
    Ok(e)
}

/// Writes a face snapshot (0640) under `snapshots/`, returning its file name.
fn save_snapshot(
    dir: &std::path::Path,
    gate: &crate::domain::GateId,
    jpeg: &[u8],
) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = format!("face-{gate}-{}.jpg", uuid::Uuid::now_v7().simple());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(dir.join(&name))
        .with_context(|| format!("cannot write snapshot {name}"))?;
    f.write_all(jpeg)?;
    Ok(name)
}
