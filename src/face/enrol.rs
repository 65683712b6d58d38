//! Enrolling a resident's face from photos: the one path used by
//! `gatehouse face enroll`, the console's upload page and the demo.
//!
//! A photo is accepted only with exactly one face of sufficient quality;
//! enrolment is all-or-nothing (one refused photo enrols none), and a face
//! that already matches another resident is enrolled with a warning, since
//! twins and look-alikes exist but so do mistakes at the desk. A photo the
//! liveness models score as a presentation attack (a photo of a photo, a
//! screen) is enrolled with a warning too: it makes a poor template, and it
//! may be a sign that someone is enrolling a face that is not theirs.

use std::fmt;
use std::path::Path;

use anyhow::Result;
use opencv::core::Mat;
use opencv::prelude::*;

use super::liveness::Liveness;
use super::photo::{self, PhotoError};
use super::policy::MatchPolicy;
use super::{FaceEngine, Gallery};
use crate::config::Config;
use crate::domain::ResidentId;
use crate::store::{faces, Readers, Store, Writer};

/// The store, the engine, the policy and the current gallery: what matching needs.
pub struct Matcher {
    /// The process's writer: the daemon's (the console) or the CLI's own.
    pub store: Writer,
    /// Gallery reloads read here, never holding the writer.
    pub readers: Readers,
    pub engine: FaceEngine,
    pub policy: MatchPolicy,
    pub gallery: Gallery,
    /// The liveness models, to warn about photos of photos; `Err` says why
    /// they are not there (enrolment goes on without the check).
    pub liveness: Result<Liveness, String>,
}

impl Matcher {
    /// A matcher on a database of its own (the CLI: its process's one writer).
    pub fn open(config: &Config) -> Result<Matcher> {
        let store = Store::open_config(config)?;
        Matcher::with_store(config, store)
    }

    pub fn with_store(config: &Config, store: Store) -> Result<Matcher> {
        Matcher::with_writer(config, Writer::new(store))
    }

    /// A matcher writing through `writer` (the daemon's, for the console).
    pub fn with_writer(config: &Config, writer: Writer) -> Result<Matcher> {
        let spec = super::embedder_spec(config)?;
        let policy = MatchPolicy::from_config(&config.face, &spec)?;
        let engine = FaceEngine::load(config)?;
        let readers = {
            let store = writer.lock();
            super::flag_stale_faces(store.conn(), engine.model_name())?;
            Readers::new(store.path())
        };
        let gallery = readers.read(|conn| {
            super::load_gallery(
                conn,
                engine.model_name(),
                engine.embedder.dim(),
                policy.combine,
            )
        })??;
        let liveness = Liveness::load(config).map_err(|e| format!("{e:#}"));
        if let Err(e) = &liveness {
            tracing::warn!("enrolment photos are not checked for liveness: {e}");
        }
        Ok(Matcher {
            store: writer,
            readers,
            engine,
            policy,
            gallery,
            liveness,
        })
    }
}

/// A photo to enrol: a label for messages (file name) and its decoded pixels.
pub struct Photo {
    pub label: String,
    pub frame: Result<Mat, PhotoError>,
}

impl Photo {
    pub fn from_path(path: &Path) -> Photo {
        Photo {
            label: path.display().to_string(),
            frame: photo::load(path),
        }
    }

    pub fn from_bytes(label: &str, bytes: &[u8]) -> Photo {
        Photo {
            label: label.to_string(),
            frame: photo::decode(bytes),
        }
    }
}

/// What an accepted enrolment stored.
#[derive(Debug, Clone)]
pub struct Enrolment {
    pub face_ids: Vec<i64>,
    pub model: String,
    /// "photo: already matches R7 (score 0.52)" lines for the operator.
    pub warnings: Vec<String>,
}

/// Every refused photo with its reason; nothing was stored.
#[derive(Debug, Clone)]
pub struct Refused {
    pub resident: ResidentId,
    pub total: usize,
    /// "label: reason" per refused photo.
    pub refusals: Vec<String>,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} photo(s) refused; nothing was enrolled for {}: {}",
            self.refusals.len(),
            self.total,
            self.resident,
            self.refusals.join("; ")
        )
    }
}

impl std::error::Error for Refused {}

/// Enrols `photos` for `resident`. Errors are a [`Refused`] (downcast it to
/// list the photos) or a storage problem.
pub fn enrol(
    m: &mut Matcher,
    resident: ResidentId,
    photos: Vec<Photo>,
    actor: &str,
) -> Result<Enrolment> {
    if !m
        .readers
        .read(|conn| faces::person_exists(conn, resident))??
    {
        anyhow::bail!("no resident {resident} in the register");
    }
    let others = m.gallery.without(resident);
    let total = photos.len();
    let mut accepted = Vec::new();
    let mut refusals = Vec::new();
    let mut warnings = Vec::new();
    for p in photos {
        let frame = match p.frame {
            Ok(frame) => frame,
            Err(e) => {
                refusals.push(format!("{}: {e}", p.label));
                continue;
            }
        };
        match photo::single_face(&mut m.engine, &frame) {
            Ok(face) => {
                if let Some(w) = liveness_warning(m, &p.label, &frame, &face) {
                    warnings.push(w);
                }
                accepted.push((p.label, face))
            }
            Err(e) => refusals.push(format!("{}: {e}", p.label)),
        }
    }
    if total == 0 {
        refusals.push("no photo given".into());
    }
    if !refusals.is_empty() {
        return Err(Refused {
            resident,
            total,
            refusals,
        }
        .into());
    }
    let model = m.engine.model_name().to_string();
    let mut rows = Vec::new();
    for (label, face) in &accepted {
        let Some(embedding) = &face.embedding else {
            continue;
        };
        if let Some(ranked) = others.search(embedding.as_slice()) {
            if ranked.best.score >= m.policy.threshold {
                warnings.push(format!(
                    "{label}: this face already matches {} (score {:.3}, threshold {:.3}); check that it is the right person",
                    ranked.best.resident, ranked.best.score, m.policy.threshold
                ));
            }
        }
        let crop = face
            .crop112
            .data_bytes()
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .to_vec();
        rows.push((crop, embedding.clone(), face.quality));
    }
    let new: Vec<faces::NewFace<'_>> = rows
        .iter()
        .map(|(crop, embedding, q)| faces::NewFace {
            model: &model,
            embedding: embedding.as_slice(),
            crop,
            eye_px: q.eye_px,
            sharpness: q.sharpness,
        })
        .collect();
    let face_ids = {
        let mut store = m.store.lock();
        let secret = store.secret().clone();
        faces::enroll(store.conn_mut(), &secret, resident, &new, actor)?
    };
    // Later enrolments in the same session see this face.
    let (dim, combine) = (m.engine.embedder.dim(), m.policy.combine);
    m.gallery = m
        .readers
        .read(|conn| super::load_gallery(conn, &model, dim, combine))??;
    Ok(Enrolment {
        face_ids,
        model,
        warnings,
    })
}

/// A warning when an enrolment photo scores as a presentation attack (or
/// when it could not be checked).
fn liveness_warning(
    m: &mut Matcher,
    label: &str,
    frame: &Mat,
    face: &super::AnalyzedFace,
) -> Option<String> {
    let liveness = m.liveness.as_mut().ok()?;
    match liveness.score_one(frame, &face.detection.bbox) {
        Ok(s) if !liveness.is_live(s.score) => Some(format!(
            "{label}: this looks like a photo of a photo or of a screen (liveness {:.2}, threshold {:.2}); a poor template: take the photo of the resident in person",
            s.score, liveness.threshold
        )),
        Ok(_) => None,
        Err(e) => Some(format!("{label}: liveness not checked: {e:#}")),
    }
}
