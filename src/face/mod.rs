//! Face recognition at the entrances: camera → detection → quality → alignment
//! → embedding → 1:N matching → policy → face credential.
//!
//! Each stage is its own module so it can be tested and benchmarked alone; the
//! [`FaceEngine`] ties the model-backed stages together for one thread (ONNX
//! Runtime sessions are run through `&mut`, so every camera thread owns its own).
//! The decision what counts as a match lives only in [`policy`]: the camera
//! pipeline, the CLI and the evaluations all call it, so what is measured is
//! what opens the gate.
//!
//! Architecture Invariant: nothing here writes events or opens doors; the
//! pipeline emits [`pipeline::FaceEvent`]s over a channel and the access
//! decision stays with its owner.

pub mod align;
pub mod calibrate;
pub mod camera;
pub mod detect;
pub mod embed;
pub mod enrol;
pub mod eval;
pub mod gallery;
pub mod liveness;
pub mod openset;
pub mod photo;
pub mod pipeline;
pub mod policy;
pub mod quality;
pub mod quantized;
pub mod recent;
pub mod tail;
pub mod track;
pub mod watch;

use anyhow::{Context, Result};
use opencv::core::Mat;

use crate::config::Config;
use crate::models::{self, Manifest, ModelRole, ModelSpec};

pub use detect::{BBox, Detection, Detector, Landmarks};
pub use embed::{Embedder, Embedding};
pub use gallery::{Gallery, GalleryHandle, IdentityScore, Ranked};

use crate::domain::embedding::Combine;
pub use policy::{FrameVerdict, MatchPolicy};
pub use quality::{Quality, QualityGate, Rejection};

/// The detector, the embedder and the quality gate, loaded for one thread.
pub struct FaceEngine {
    pub detector: Detector,
    pub embedder: Embedder,
    pub quality: QualityGate,
    /// Average each embedding with the mirror image's (`[face] flip_average`).
    pub flip_average: bool,
}

/// One face found in a frame, carried through quality, alignment and embedding.
pub struct AnalyzedFace {
    pub detection: Detection,
    /// The face on the ArcFace 112×112 template (BGR), the crop that is kept at enrolment.
    pub crop112: Mat,
    pub quality: Quality,
    /// `Err` when the quality gate refused the face; such faces are not embedded.
    pub verdict: Result<(), Rejection>,
    pub embedding: Option<Embedding>,
    /// Milliseconds spent aligning and embedding this face.
    pub embed_ms: f64,
}

impl FaceEngine {
    /// Loads ONNX Runtime and the configured detector and embedder, each checked
    /// against its sha256 before it is opened.
    pub fn load(config: &Config) -> Result<FaceEngine> {
        crate::onnx::init(config.models.onnxruntime.as_deref())?;
        let manifest = Manifest::for_config(config)?;
        let dir = config.models_dir();
        let detector_spec =
            model_with_role(&manifest, &config.models.detector, ModelRole::Detector)?;
        let embedder_spec =
            model_with_role(&manifest, &config.models.embedder, ModelRole::Embedder)?;
        let detector = Detector::load(
            detector_spec,
            &models::installed_path(detector_spec, &dir)?,
            config.models.threads,
            detect::DetectorSettings::from_config(&config.face, detector_spec),
        )?;
        let embedder = Embedder::load(
            embedder_spec,
            &models::installed_path(embedder_spec, &dir)?,
            config.models.threads,
        )?;
        Ok(FaceEngine {
            detector,
            embedder,
            quality: QualityGate::from_config(&config.face),
            flip_average: config.face.flip_average,
        })
    }

    /// Aligns, measures and (if the quality gate lets it through) embeds one detected face.
    pub fn analyze(&mut self, frame: &Mat, detection: Detection) -> Result<AnalyzedFace> {
        let started = std::time::Instant::now();
        let crop112 = align::align(frame, &detection.landmarks, 112, 112)?;
        let quality = quality::measure(&detection, &crop112)?;
        let verdict = self.quality.check(&quality);
        let embedding = match verdict {
            Ok(()) => Some(self.embed_face(frame, &detection, &crop112)?),
            Err(_) => None,
        };
        Ok(AnalyzedFace {
            detection,
            crop112,
            quality,
            verdict,
            embedding,
            embed_ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    /// Embeds a face whatever its quality (evaluation and `face detect` use this).
    pub fn embed_face(
        &mut self,
        frame: &Mat,
        detection: &Detection,
        crop112: &Mat,
    ) -> Result<Embedding> {
        let (w, h) = self.embedder.input_size();
        if (w, h) == (112, 112) {
            self.embed_aligned(crop112)
        } else {
            // Align straight onto the scaled template rather than upscaling the 112 crop.
            let aligned = align::align(frame, &detection.landmarks, w, h)?;
            self.embed_aligned(&aligned)
        }
    }

    /// Embeds an aligned face, averaged with its mirror image when
    /// `flip_average` is on (the ArcFace template is symmetric, so the
    /// mirrored crop is an aligned face too). Enrolment, re-embedding and the
    /// gate all come through here, so stored and live embeddings agree.
    pub fn embed_aligned(&mut self, aligned: &Mat) -> Result<Embedding> {
        let straight = self.embedder.embed(aligned)?;
        if !self.flip_average {
            return Ok(straight);
        }
        let mut mirrored = Mat::default();
        cv(
            opencv::core::flip(aligned, &mut mirrored, 1),
            "cannot mirror face crop",
        )?;
        let flipped = self.embedder.embed(&mirrored)?;
        let sum = straight
            .as_slice()
            .iter()
            .zip(flipped.as_slice())
            .map(|(a, b)| a + b)
            .collect();
        Embedding::from_raw(sum)
    }

    pub fn model_name(&self) -> &str {
        self.embedder.model()
    }

    /// One face through the whole decision for one frame: quality, embedding,
    /// 1:N search, and the policy's verdict. The camera pipeline, `face
    /// identify` and the evaluations all call this, so they decide alike.
    /// A gallery made by another embedder is treated as empty.
    pub fn observe(
        &mut self,
        frame: &Mat,
        detection: Detection,
        gallery: &Gallery,
        policy: &MatchPolicy,
    ) -> Result<Observation> {
        let face = self.analyze(frame, detection)?;
        let embedding = face
            .embedding
            .as_ref()
            .filter(|_| gallery.model() == self.model_name())
            .map(Embedding::as_slice);
        let (ranked, verdict) = policy.search_and_judge(gallery, face.verdict, embedding);
        Ok(Observation {
            face,
            ranked,
            verdict,
        })
    }
}

/// A face, what the gallery said about it, and the policy's verdict.
pub struct Observation {
    pub face: AnalyzedFace,
    pub ranked: Option<Ranked>,
    pub verdict: FrameVerdict,
}

/// The manifest entry named `name`, checked to have the expected role.
pub fn model_with_role<'m>(
    manifest: &'m Manifest,
    name: &str,
    role: ModelRole,
) -> Result<&'m ModelSpec> {
    let spec = manifest.get(name)?;
    if spec.role != role {
        anyhow::bail!(
            "model {name:?} is a {:?} in the manifest, expected a {role:?}",
            spec.role
        );
    }
    Ok(spec)
}

/// The configured embedder's manifest entry (for thresholds and the model name).
pub fn embedder_spec(config: &Config) -> Result<ModelSpec> {
    let manifest = Manifest::for_config(config)?;
    Ok(model_with_role(&manifest, &config.models.embedder, ModelRole::Embedder)?.clone())
}

/// Flags faces made by another embedder than `model` as stale (and clears
/// the flag on `model`'s own), with a warning when some are: a write, so on
/// the process's writer, before [`load_gallery`] when the embedder may have
/// changed (the daemon's camera start, a `Matcher`).
pub fn flag_stale_faces(conn: &rusqlite::Connection, model: &str) -> Result<usize> {
    let stale = crate::store::faces::mark_stale(conn, model)?;
    if stale > 0 {
        tracing::warn!(
            stale,
            model,
            "enrolled faces from another embedder are not matched; run `gatehouse face reembed`"
        );
    }
    Ok(stale)
}

/// Builds the gallery for `model` from the register, combining each
/// resident's faces as the policy says ([`MatchPolicy::combine`]). Only
/// reads: works on a read-only connection (stale flags are
/// [`flag_stale_faces`]' job).
pub fn load_gallery(
    conn: &rusqlite::Connection,
    model: &str,
    dim: usize,
    combine: Combine,
) -> Result<Gallery> {
    let faces = crate::store::faces::count_current(conn, model)?;
    let residents = crate::store::faces::count_residents(conn, model)?;
    let rows = combine.rows(faces, residents);
    let mut builder = gallery::GalleryBuilder::combining(model, dim, rows, combine);
    crate::store::faces::for_each_gallery_row(conn, model, |resident, v| {
        builder.push(resident, v)
    })?;
    Ok(builder.finish())
}

pub(crate) fn cv<T>(r: opencv::Result<T>, what: &str) -> Result<T> {
    r.map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| what.to_string())
}
