//! `gatehouse face detect|identify|enroll|remove|list|reembed|watch|eval|eval-1n|calibrate|eval-liveness|watch-entry|strangers`.

mod liveness;
mod openset;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use opencv::prelude::*;

use super::{Cli, Exit};
use crate::domain::ResidentId;
use crate::face::{self, eval, photo, FaceEngine, MatchPolicy};
use crate::store::{self, faces, Store};

#[derive(Subcommand, Debug)]
pub enum FaceCommand {
    /// Show the faces in a photo: boxes, landmarks and quality
    Detect {
        image: PathBuf,
        /// One JSON object per face instead of text
        #[arg(long)]
        json: bool,
        /// Also write the photo with boxes and landmarks drawn (PNG or JPEG by extension)
        #[arg(long, value_name = "FILE")]
        annotate: Option<PathBuf>,
        /// Detector input width (a multiple of 32) [default: chosen for still photos]
        #[arg(long, value_name = "PIXELS", value_parser = parse_width)]
        width: Option<u32>,
    },
    /// Search the enrolled residents for the faces in a photo
    Identify {
        image: PathBuf,
        /// How many residents to list per face
        #[arg(long, default_value_t = 3)]
        top: usize,
    },
    /// Enrol a resident's face from photos (each must show exactly one usable face)
    Enroll {
        /// Resident id, e.g. R3 or 3
        resident: ResidentId,
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Delete every enrolled face of a resident
    Remove { resident: ResidentId },
    /// List enrolled faces (model, stale flag), without biometric data
    List { resident: Option<ResidentId> },
    /// Recompute stale embeddings from the stored aligned crops with the configured embedder
    Reembed,
    /// Run the camera pipeline and print face credentials, unknown faces and camera states
    Watch {
        /// A configured camera id [default: the first camera]
        #[arg(long, conflicts_with = "source")]
        camera: Option<String>,
        /// Any source instead: /dev/video0, rtsp://…, or a video file
        #[arg(long)]
        source: Option<String>,
        /// Gate the faces count for (with --source) [default: the first gate]
        #[arg(long)]
        gate: Option<crate::domain::GateId>,
        /// Stop after this many seconds [default: run until the source ends or Ctrl-C]
        #[arg(long)]
        seconds: Option<u64>,
        /// Write unknown-face snapshots into this folder
        #[arg(long, value_name = "DIR")]
        snapshots: Option<PathBuf>,
    },
    /// Verification accuracy and speed on labelled pairs (image_a,image_b,same)
    Eval {
        #[arg(long, value_name = "FILE.csv")]
        pairs: PathBuf,
        /// Folder the paths in the pairs file are relative to
        #[arg(long, value_name = "DIR")]
        root: PathBuf,
        /// Threshold for FAR/FRR [default: the configured match threshold]
        #[arg(long)]
        threshold: Option<f32>,
        /// Also write every pair's score to this CSV (image_a,image_b,same,score)
        #[arg(long, value_name = "FILE")]
        scores: Option<PathBuf>,
    },
    /// Open-set 1:N accuracy on labelled photos (file,identity): residents and strangers
    #[command(name = "eval-1n")]
    EvalOneToN(openset::EvalOneToN),
    /// Choose the match threshold for a target stranger false-accept rate at a register size
    Calibrate(openset::Calibrate),
    /// Presentation-attack detection on labelled frames (file,subject,label live|spoof):
    /// APCER, BPCER, EER and a curve, per frame, with the gate's detector and models
    #[command(name = "eval-liveness")]
    EvalLiveness(liveness::EvalLiveness),
    /// Unregistered faces seen at the gates on several days (who may live here
    /// unregistered); the read is audited
    Strangers {
        /// Look back this many days [default: [face] stranger_days]
        #[arg(long)]
        days: Option<u32>,
        /// Only faces seen on at least this many days
        #[arg(long, default_value_t = 2)]
        min_days: u32,
        #[arg(long)]
        json: bool,
    },
    /// Print a face watchlist entry from a photo with one face, embedded with this
    /// gateway's model, as the arguments of `station sign watchlist_set`
    #[command(name = "watch-entry")]
    WatchEntry {
        image: PathBuf,
        /// The station's reference for the entry (case number; ASCII, at most 64 characters)
        #[arg(long)]
        value: String,
        /// Why the person is listed (shown in the alarm)
        #[arg(long)]
        label: Option<String>,
        /// Also refuse entry (`deny`), or only raise the alarm (`alert`)
        #[arg(long, default_value = "alert", value_parser = parse_watch_action)]
        action: crate::store::station_queries::WatchAction,
        /// When the entry stops matching (RFC 3339)
        #[arg(long)]
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    },
}

fn parse_watch_action(s: &str) -> Result<crate::store::station_queries::WatchAction, String> {
    use crate::store::station_queries::WatchAction;
    match s {
        "alert" => Ok(WatchAction::Alert),
        "deny" => Ok(WatchAction::Deny),
        other => Err(format!("{other:?}: expected alert or deny")),
    }
}

/// `face strangers`: recurring unregistered faces, from the kept sightings.
fn strangers(
    config: &crate::config::Config,
    days: Option<u32>,
    min_days: u32,
    json: bool,
) -> Result<ExitCode> {
    let days = days.unwrap_or(config.face.stranger_days);
    let store = Store::open_config(config)?;
    let since = chrono::Utc::now() - chrono::Duration::days(i64::from(days));
    let found = store::strangers::list(store.conn(), since, min_days.max(1))?;
    Store::audit(
        store.conn(),
        &store::os_user(),
        "face.strangers",
        None,
        Some(&serde_json::json!({ "days": days, "min_days": min_days, "found": found.len() })),
    )?;
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(ExitCode::SUCCESS);
    }
    if found.is_empty() {
        println!("no unregistered face seen on {min_days} or more days in the last {days} days");
        return Ok(ExitCode::SUCCESS);
    }
    let mut rows = vec![[
        "STRANGER".to_string(),
        "DAYS".into(),
        "SIGHTINGS".into(),
        "FIRST SEEN".into(),
        "LAST SEEN".into(),
        "GATES".into(),
        "LATEST SNAPSHOT".into(),
    ]];
    for r in &found {
        rows.push([
            r.stranger.clone(),
            r.days.to_string(),
            r.sightings.to_string(),
            r.first_seen.clone(),
            r.last_seen.clone(),
            r.gates.join(","),
            r.snapshots.first().cloned().unwrap_or_else(|| "-".into()),
        ]);
    }
    print!("{}", super::output::render_table(&rows));
    Ok(ExitCode::SUCCESS)
}

/// `face watch-entry`: the photo's one face as a validated watchlist entry.
fn watch_entry(
    config: &crate::config::Config,
    image: &Path,
    value: &str,
    label: Option<&str>,
    action: crate::store::station_queries::WatchAction,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<ExitCode> {
    use crate::store::station_queries::{WatchEntry, WatchKind};
    let frame = load_photo(image)?;
    let mut engine = FaceEngine::load(config)?;
    let face = photo::single_face(&mut engine, &frame)
        .map_err(|e| failed(format!("{}: {e}", image.display())))?;
    let embedding = face.embedding.ok_or_else(|| {
        failed(format!(
            "{}: the face could not be embedded",
            image.display()
        ))
    })?;
    let entry = WatchEntry {
        kind: WatchKind::Face,
        value: value.to_string(),
        embedding: Some(embedding.as_slice().to_vec()),
        action,
        label: label.map(String::from),
        expires_at,
    }
    .validated()
    .map_err(|e| failed(format!("--value: {e}")))?;
    eprintln!(
        "{}: one face, embedded with {} ({} numbers)",
        image.display(),
        engine.model_name(),
        embedding.dim()
    );
    println!("{}", serde_json::json!({ "entries": [entry] }));
    Ok(ExitCode::SUCCESS)
}

pub fn run(cli: &Cli, cmd: &FaceCommand) -> Result<ExitCode> {
    let config = cli.load_config()?;
    match cmd {
        FaceCommand::Detect {
            image,
            json,
            annotate,
            width,
        } => detect(&config, image, *json, annotate.as_deref(), *width),
        FaceCommand::Identify { image, top } => identify(&config, image, *top),
        FaceCommand::Enroll { resident, images } => enroll(&config, *resident, images),
        FaceCommand::Remove { resident } => remove(&config, *resident),
        FaceCommand::List { resident } => list(&config, *resident),
        FaceCommand::Reembed => reembed(&config),
        FaceCommand::Watch {
            camera,
            source,
            gate,
            seconds,
            snapshots,
        } => watch(
            &config,
            camera.as_deref(),
            source.as_deref(),
            gate.as_ref(),
            *seconds,
            snapshots.as_deref(),
        ),
        FaceCommand::Eval {
            pairs,
            root,
            threshold,
            scores,
        } => run_eval(&config, pairs, root, *threshold, scores.as_deref()),
        FaceCommand::EvalOneToN(args) => openset::eval_1n(&config, args),
        FaceCommand::Strangers {
            days,
            min_days,
            json,
        } => strangers(&config, *days, *min_days, *json),
        FaceCommand::WatchEntry {
            image,
            value,
            label,
            action,
            expires_at,
        } => watch_entry(
            &config,
            image,
            value,
            label.as_deref(),
            *action,
            *expires_at,
        ),
        FaceCommand::Calibrate(args) => openset::calibrate(&config, args),
        FaceCommand::EvalLiveness(args) => liveness::eval_liveness(&config, args),
    }
}

fn parse_width(s: &str) -> Result<u32, String> {
    match s.parse::<u32>() {
        Ok(w) if (64..=4096).contains(&w) && w % 32 == 0 => Ok(w),
        _ => Err(format!(
            "expected a multiple of 32 between 64 and 4096, got {s:?}"
        )),
    }
}

fn failed(message: String) -> anyhow::Error {
    Exit { code: 1, message }.into()
}

fn load_photo(image: &Path) -> Result<opencv::core::Mat> {
    photo::load(image).map_err(|e| failed(format!("{}: {e}", image.display())))
}

fn detect(
    config: &crate::config::Config,
    image: &Path,
    json: bool,
    annotate: Option<&Path>,
    width: Option<u32>,
) -> Result<ExitCode> {
    let frame = load_photo(image)?;
    let mut engine = FaceEngine::load(config)?;
    let faces = match width {
        Some(w) => engine.detector.detect_at(&frame, w)?,
        None => photo::detect(&mut engine, &frame)
            .map_err(|e| failed(format!("{}: {e}", image.display())))?,
    };
    if !json {
        println!(
            "{}: {}x{}, {} face(s)",
            image.display(),
            frame.cols(),
            frame.rows(),
            faces.len()
        );
    }
    for (i, d) in faces.iter().enumerate() {
        let face = engine.analyze(&frame, *d)?;
        let verdict = match face.verdict {
            Ok(()) => "ok".to_string(),
            Err(r) => format!("refused: {}", r.explain()),
        };
        if json {
            let value = serde_json::json!({
                "face": i + 1,
                "score": d.score,
                "box": [d.bbox.x, d.bbox.y, d.bbox.w, d.bbox.h],
                "landmarks": d.landmarks,
                "quality": face.quality,
                "rejection": face.verdict.err(),
            });
            println!("{value}");
            continue;
        }
        let q = face.quality;
        println!(
            "face {}: score {:.3} box x={:.1} y={:.1} w={:.1} h={:.1}",
            i + 1,
            d.score,
            d.bbox.x,
            d.bbox.y,
            d.bbox.w,
            d.bbox.h
        );
        let names = ["right eye", "left eye", "nose", "right mouth", "left mouth"];
        let marks: Vec<String> = names
            .iter()
            .zip(d.landmarks.iter())
            .map(|(n, p)| format!("{n} ({:.1},{:.1})", p[0], p[1]))
            .collect();
        println!("  landmarks: {}", marks.join(", "));
        println!(
            "  quality: eyes {:.0} px, sharpness {:.1}, yaw {:+.2}, pitch {:.2}, brightness {:.0}: {verdict}",
            q.eye_px, q.sharpness, q.yaw, q.pitch, q.brightness
        );
    }
    if let Some(out) = annotate {
        let mut canvas = frame.clone();
        for d in &faces {
            face::pipeline::draw_detection(&mut canvas, d)?;
        }
        let written = opencv::imgcodecs::imwrite(out, &canvas, &opencv::core::Vector::new())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("cannot write {}", out.display()))?;
        if !written {
            return Err(failed(format!(
                "{}: cannot write (use a .png or .jpg name)",
                out.display()
            )));
        }
    }
    Ok(ExitCode::SUCCESS)
}

use crate::face::enrol::{self as enrolment, Matcher, Photo, Refused};

fn open_matching(config: &crate::config::Config) -> Result<Matcher> {
    Matcher::open(config)
}

fn identify(config: &crate::config::Config, image: &Path, top: usize) -> Result<ExitCode> {
    let frame = load_photo(image)?;
    let mut m = open_matching(config)?;
    Store::audit(
        m.store.lock().conn(),
        &store::os_user(),
        "face.identify",
        None,
        Some(&serde_json::json!({ "image": image.display().to_string() })),
    )?;
    let faces = photo::detect(&mut m.engine, &frame)
        .map_err(|e| failed(format!("{}: {e}", image.display())))?;
    println!(
        "{}: {} face(s); gallery: {} residents, {} faces ({}); threshold {:.3}, margin {:.3}",
        image.display(),
        faces.len(),
        m.gallery.identities(),
        m.gallery.len(),
        m.gallery.model(),
        m.policy.threshold,
        m.policy.margin
    );
    for (i, d) in faces.iter().enumerate() {
        let seen = m.engine.observe(&frame, *d, &m.gallery, &m.policy)?;
        let verdict = seen.verdict;
        // Scores are listed whatever the quality, so the operator sees why a face was refused.
        let embedding = match &seen.face.embedding {
            Some(e) => e.clone(),
            None => m.engine.embed_face(&frame, d, &seen.face.crop112)?,
        };
        let said = match verdict {
            face::FrameVerdict::Match(s) => format!("MATCH {} ({:.3})", s.resident, s.score),
            face::FrameVerdict::Ambiguous { best, second } => format!(
                "ambiguous: {} {:.3} vs {} {:.3} (margin {:.3} needed)",
                best.resident, best.score, second.resident, second.score, m.policy.margin
            ),
            face::FrameVerdict::Unknown { .. } => "unknown".to_string(),
            face::FrameVerdict::Rejected { reason } => format!("refused: {}", reason.explain()),
            face::FrameVerdict::Spoof { best, liveness } => format!(
                "presentation attack: looks like {} ({:.3}) but liveness {liveness:.3}",
                best.resident, best.score
            ),
        };
        println!(
            "face {} at x={:.0} y={:.0} w={:.0} h={:.0}: {said}",
            i + 1,
            d.bbox.x,
            d.bbox.y,
            d.bbox.w,
            d.bbox.h
        );
        for s in m.gallery.top(embedding.as_slice(), top) {
            println!("  {:<8} {:.3}", s.resident.to_string(), s.score);
        }
        // What a gate with liveness on would say about this face.
        match m.liveness.as_mut() {
            Ok(l) => {
                let s = l.score_one(&frame, &d.bbox)?;
                let said = if l.is_live(s.score) {
                    "live"
                } else {
                    "a photo or a screen"
                };
                println!(
                    "  liveness {:.3} (threshold {:.3}): {said}",
                    s.score, l.threshold
                );
            }
            Err(e) => println!("  liveness not checked: {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn enroll(
    config: &crate::config::Config,
    resident: ResidentId,
    images: &[PathBuf],
) -> Result<ExitCode> {
    let mut m = open_matching(config)?;
    let photos = images.iter().map(|p| Photo::from_path(p)).collect();
    let done = match enrolment::enrol(&mut m, resident, photos, &store::os_user()) {
        Ok(done) => done,
        Err(e) => match e.downcast::<Refused>() {
            Ok(refused) => {
                for r in &refused.refusals {
                    eprintln!("{r}");
                }
                return Err(failed(format!(
                    "{} of {} photo(s) refused; nothing was enrolled for {resident}",
                    refused.refusals.len(),
                    refused.total
                )));
            }
            Err(e) => return Err(e),
        },
    };
    for w in &done.warnings {
        eprintln!("warning: {w}");
    }
    println!(
        "enrolled {} face(s) for {resident} with {} (face ids {:?})",
        done.face_ids.len(),
        done.model,
        done.face_ids
    );
    Ok(ExitCode::SUCCESS)
}

fn remove(config: &crate::config::Config, resident: ResidentId) -> Result<ExitCode> {
    let mut store = Store::open_config(config)?;
    let n = faces::remove(store.conn_mut(), resident, &store::os_user())?;
    if n == 0 {
        return Err(failed(format!("{resident} has no enrolled faces")));
    }
    println!("removed {n} face(s) of {resident}");
    Ok(ExitCode::SUCCESS)
}

fn list(config: &crate::config::Config, resident: Option<ResidentId>) -> Result<ExitCode> {
    let store = Store::open_config(config)?;
    let spec = face::embedder_spec(config)?;
    faces::mark_stale(store.conn(), &spec.name)?;
    let rows = faces::list(store.conn(), resident)?;
    for r in &rows {
        println!(
            "{:<8} face {:<5} {:<18} {}{}",
            r.person.to_string(),
            r.id,
            r.model,
            r.created_at,
            if r.stale {
                "  STALE (run `gatehouse face reembed`)"
            } else {
                ""
            }
        );
    }
    println!("{} face(s)", rows.len());
    Ok(ExitCode::SUCCESS)
}

fn reembed(config: &crate::config::Config) -> Result<ExitCode> {
    let mut engine = FaceEngine::load(config)?;
    let mut store = Store::open_config(config)?;
    let model = engine.model_name().to_string();
    faces::mark_stale(store.conn(), &model)?;
    let secret = store.secret().clone();
    let crops = faces::crops_to_reembed(store.conn(), &secret, &model, &store::os_user())?;
    if crops.is_empty() {
        println!("every enrolled face is already embedded with {model}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut updates = Vec::with_capacity(crops.len());
    for (id, person, crop) in crops {
        let mat = crop_mat(&crop).with_context(|| format!("face {id} of {person}"))?;
        let embedding = engine
            .embed_aligned(&mat)
            .with_context(|| format!("face {id} of {person}"))?;
        updates.push((id, embedding.as_slice().to_vec()));
    }
    faces::update_embeddings(store.conn_mut(), &model, &updates, &store::os_user())?;
    println!("re-embedded {} face(s) with {model}", updates.len());
    Ok(ExitCode::SUCCESS)
}

/// A stored crop (112×112 BGR pixels) as a Mat.
fn crop_mat(bytes: &[u8]) -> Result<opencv::core::Mat> {
    if bytes.len() != 112 * 112 * 3 {
        anyhow::bail!("stored crop has {} bytes, expected 112x112x3", bytes.len());
    }
    let flat = opencv::core::Mat::from_slice(bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let shaped = flat
        .reshape(3, 112)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .try_clone()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(shaped)
}

fn run_eval(
    config: &crate::config::Config,
    pairs_path: &Path,
    root: &Path,
    threshold: Option<f32>,
    scores: Option<&Path>,
) -> Result<ExitCode> {
    let pairs = eval::read_pairs(pairs_path)?;
    if !root.is_dir() {
        return Err(failed(format!(
            "--root {}: not a directory",
            root.display()
        )));
    }
    let spec = face::embedder_spec(config)?;
    let policy = MatchPolicy::from_config(&config.face, &spec)?;
    let threshold = threshold.unwrap_or(policy.threshold);
    let mut engine = FaceEngine::load(config)?;
    let report = eval::run_pairs(&mut engine, &pairs, root, threshold)?;
    if let Some(out) = scores {
        let mut csv = String::from("image_a,image_b,same,score\n");
        for (i, score) in &report.scores {
            let p = &pairs[*i];
            csv.push_str(&format!(
                "{},{},{},{score:.6}\n",
                p.a.display(),
                p.b.display(),
                u8::from(p.same)
            ));
        }
        std::fs::write(out, csv).with_context(|| format!("cannot write {}", out.display()))?;
    }
    let s = &report.summary;
    for (image, why) in &report.failed {
        println!("no face: {} ({why})", image.display());
    }
    let stats = |v: &[f32]| -> String {
        if v.is_empty() {
            return "none".into();
        }
        let mut s = v.to_vec();
        s.sort_by(f32::total_cmp);
        format!(
            "n={} min {:.3} median {:.3} max {:.3}",
            s.len(),
            s[0],
            s[s.len() / 2],
            s[s.len() - 1]
        )
    };
    println!(
        "embedder:        {} (detector {})",
        engine.model_name(),
        config.models.detector
    );
    println!(
        "pairs used:      {} of {} ({} images with no face)",
        s.pairs,
        pairs.len(),
        s.no_face
    );
    println!("same person:     {}", stats(&report.genuine));
    println!("different:       {}", stats(&report.impostor));
    println!("ROC AUC:         {:.4}", s.auc);
    println!(
        "best accuracy:   {:.4} at threshold {:.3}",
        s.best_accuracy, s.best_threshold
    );
    println!(
        "at threshold {:.3}: FAR {:.4} ({} of {} different-person pairs accepted), FRR {:.4}",
        s.threshold,
        s.far,
        (s.far * report.impostor.len() as f64).round(),
        report.impostor.len(),
        s.frr
    );
    println!(
        "median per image: detection {:.1} ms, alignment + embedding {:.1} ms",
        s.detect_ms, s.embed_ms
    );
    println!("{}", serde_json::to_string(s)?);
    Ok(ExitCode::SUCCESS)
}

fn watch(
    config: &crate::config::Config,
    camera_id: Option<&str>,
    source: Option<&str>,
    gate: Option<&crate::domain::GateId>,
    seconds: Option<u64>,
    snapshots: Option<&Path>,
) -> Result<ExitCode> {
    use crate::face::pipeline::{self, FaceEvent};
    let camera = match (source, camera_id) {
        (Some(source), _) => {
            let gate = match gate {
                Some(g) => g.clone(),
                None => config
                    .gates
                    .first()
                    .map(|g| g.id.clone())
                    .context("no gate configured; pass --gate")?,
            };
            crate::config::CameraConfig {
                id: "watch".into(),
                gate,
                source: source.to_string(),
                max_fps: 10.0,
                loop_file: false,
            }
        }
        (None, Some(id)) => config
            .cameras
            .iter()
            .find(|c| c.id == id)
            .cloned()
            .ok_or_else(|| failed(format!("no camera {id:?} in the config")))?,
        (None, None) => config
            .cameras
            .first()
            .cloned()
            .ok_or_else(|| failed("no camera configured; pass --source".into()))?,
    };
    if let Some(dir) = snapshots {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let store = Store::open_config(config)?;
    let spec = face::embedder_spec(config)?;
    let dim = spec
        .embedding_size
        .context("embedder has no embedding_size")?;
    let combine = MatchPolicy::from_config(&config.face, &spec)?.combine;
    face::flag_stale_faces(store.conn(), &spec.name)?;
    let gallery =
        face::GalleryHandle::new(face::load_gallery(store.conn(), &spec.name, dim, combine)?);
    drop(store);
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let handle = pipeline::spawn(config, &camera, gallery, tx)?;
    let started = std::time::Instant::now();
    let limit = seconds.map(std::time::Duration::from_secs);
    let mut unknown = 0;
    loop {
        while let Ok(event) = rx.try_recv() {
            match &event {
                FaceEvent::Unknown(u) => {
                    unknown += 1;
                    let mut line = serde_json::to_value(&event)?;
                    if let Some(dir) = snapshots {
                        let file = dir.join(format!("unknown-{}-{unknown}.jpg", u.gate));
                        std::fs::write(&file, &u.snapshot_jpeg)
                            .with_context(|| format!("cannot write {}", file.display()))?;
                        line["snapshot"] = serde_json::json!(file.display().to_string());
                    }
                    println!("{line}");
                }
                _ => println!("{}", serde_json::to_string(&event)?),
            }
        }
        if handle.is_finished() || limit.is_some_and(|l| started.elapsed() >= l) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = handle.status();
    handle.stop();
    while let Ok(event) = rx.try_recv() {
        println!("{}", serde_json::to_string(&event)?);
    }
    println!("{}", serde_json::to_string(&status)?);
    Ok(ExitCode::SUCCESS)
}
