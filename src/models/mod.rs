//! The model manifest (`models/models.toml`) and installing models from it.
//!
//! A model file is trusted only if its sha256 matches the manifest: `fetch`
//! refuses a mismatching download or mirror copy before it reaches the models
//! folder, and `verify` re-checks what is installed.
//!
//! Architecture Invariant: nothing here runs a model; this module only knows
//! files, checksums and preprocessing parameters.

pub mod tail_curve;

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest compiled into the binary.
pub const BUILTIN_MANIFEST: &str = include_str!("../../models/models.toml");

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ModelRole {
    Detector,
    Embedder,
    /// Presentation-attack detection (liveness): a crop around the face box →
    /// class logits, one of which is "real face".
    Liveness,
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

/// An output-preserving graph rewrite a model's entry asks for
/// (`rewrites = [...]`), applied by `onnx::rewrite` when the model is loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GraphRewrite {
    /// `PRelu` as operators ONNX Runtime runs fast: on x86-64, where it
    /// works in the blocked (NCHWc) layout, `x + (1 − s)·Relu(−x)` with the
    /// per-channel products as 1×1 depthwise convolutions (which stay in that
    /// layout); elsewhere `Max(x, s·x)` (slopes at most 1).
    FastPrelu,
    /// Zero channels that round pruned conv chains up to the SIMD block. Only
    /// where ONNX Runtime uses blocked convolutions (x86-64); elsewhere the
    /// padding would cost without saving.
    PadChannels,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    pub name: String,
    pub role: ModelRole,
    pub file: String,
    pub sha256: String,
    /// Where to download it; absent for mirror-only models.
    pub url: Option<String>,
    pub licence: String,
    pub input_name: String,
    pub output_name: Option<String>,
    pub channel_order: ChannelOrder,
    /// Only `nchw` is supported; kept explicit so a new model cannot be wired wrongly.
    pub layout: String,
    pub input_width: Option<u32>,
    pub input_height: Option<u32>,
    /// Detector inputs must be padded to multiples of this.
    pub input_multiple: Option<u32>,
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// `arcface5`: 5-point similarity transform onto the ArcFace template.
    pub alignment: Option<String>,
    pub embedding_size: Option<usize>,
    pub output_normalized: Option<bool>,
    /// Default cosine threshold for embedders.
    pub match_threshold: Option<f32>,
    /// Embedders: the impostor score tail (median, upper-half sd) that
    /// `gatehouse doctor` extrapolates the stranger false-accept rate from
    /// until `gatehouse face calibrate` measures one for the site.
    pub impostor_mean: Option<f32>,
    pub impostor_sd: Option<f32>,
    /// Detector NMS IoU.
    pub nms_iou: Option<f32>,
    /// Liveness models: the crop is this many times the face box (shifted to
    /// stay inside the image), resized to `input_width × input_height`.
    pub crop_scale: Option<f32>,
    /// Liveness models: the index of the "real face" class in the softmax.
    pub real_class: Option<usize>,
    /// Embedders: the impostor tail measured on many identities (a
    /// generalised-Pareto fit with its 95 % bound), used until a site's own
    /// register is large enough (`face::calibrate::prior_curve`).
    #[serde(default)]
    pub impostor_prior: Option<tail_curve::TailCurve>,
    /// Why this entry has not been checked against the pipeline (e.g. the file
    /// was never available to the team); `gatehouse doctor` says so.
    #[serde(default)]
    pub unverified: Option<String>,
    /// Rewrites that let ONNX Runtime run this model faster without changing
    /// its output (`onnx::rewrite`).
    #[serde(default)]
    pub rewrites: Vec<GraphRewrite>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(rename = "model")]
    pub models: Vec<ModelSpec>,
}

impl Manifest {
    pub fn builtin() -> Manifest {
        // Compiled in and covered by a unit test: failure is a build defect.
        Manifest::parse(BUILTIN_MANIFEST, "<built-in models.toml>")
            .unwrap_or_else(|e| panic!("built-in model manifest is invalid: {e:#}"))
    }

    pub fn load(path: &Path) -> Result<Manifest> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("cannot read model manifest {}", path.display()))?;
        Manifest::parse(&text, &path.display().to_string())
    }

    /// The manifest named in the config, or the built-in one.
    pub fn for_config(config: &crate::config::Config) -> Result<Manifest> {
        match &config.models.manifest {
            Some(path) => Manifest::load(path),
            None => Ok(Manifest::builtin()),
        }
    }

    pub fn parse(text: &str, source: &str) -> Result<Manifest> {
        let manifest: Manifest =
            toml::from_str(text).with_context(|| format!("{source}: invalid model manifest"))?;
        for m in &manifest.models {
            if m.sha256.len() != 64 || !m.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("{source}: model {:?}: sha256 must be 64 hex digits", m.name);
            }
            if m.layout != "nchw" {
                bail!(
                    "{source}: model {:?}: layout {:?} is not supported (only nchw)",
                    m.name,
                    m.layout
                );
            }
            if m.file.contains('/') || m.file.contains("..") {
                bail!(
                    "{source}: model {:?}: file must be a plain file name",
                    m.name
                );
            }
            if m.role == ModelRole::Embedder
                && (m.input_width.is_none()
                    || m.input_height.is_none()
                    || m.embedding_size.is_none())
            {
                bail!(
                    "{source}: embedder {:?} needs input_width, input_height and embedding_size",
                    m.name
                );
            }
            if m.role == ModelRole::Liveness
                && (m.input_width.is_none()
                    || m.input_height.is_none()
                    || !m.crop_scale.is_some_and(|s| s.is_finite() && s >= 1.0)
                    || m.real_class.is_none())
            {
                bail!(
                    "{source}: liveness model {:?} needs input_width, input_height, crop_scale (>= 1) and real_class",
                    m.name
                );
            }
        }
        Ok(manifest)
    }

    pub fn get(&self, name: &str) -> Result<&ModelSpec> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .with_context(|| {
                let known: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
                format!(
                    "no model named {name:?} in the manifest (known: {})",
                    known.join(", ")
                )
            })
    }
}

/// Hex sha256 of a file, streamed.
/// The lowercase hex sha256 of `bytes`.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// What happened to one model during `fetch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    AlreadyInstalled,
    CopiedFromMirror(PathBuf),
    Downloaded(String),
}

/// Installs `spec` into `models_dir`: already there with the right hash, copied
/// from `mirror`, or downloaded from its URL. The file appears under its final
/// name only after its hash matched.
pub fn fetch(spec: &ModelSpec, models_dir: &Path, mirror: Option<&Path>) -> Result<FetchOutcome> {
    let target = models_dir.join(&spec.file);
    if target.exists() && sha256_file(&target)? == spec.sha256 {
        return Ok(FetchOutcome::AlreadyInstalled);
    }
    fs::create_dir_all(models_dir)
        .with_context(|| format!("cannot create models folder {}", models_dir.display()))?;
    let partial = models_dir.join(format!(".{}.partial", spec.file));
    let outcome = match mirror {
        Some(mirror) if mirror.join(&spec.file).exists() => {
            let source = mirror.join(&spec.file);
            fs::copy(&source, &partial).with_context(|| {
                format!("cannot copy {} to {}", source.display(), partial.display())
            })?;
            FetchOutcome::CopiedFromMirror(source)
        }
        _ => {
            let Some(url) = &spec.url else {
                let where_ = mirror
                    .map(|m| format!(" and it is not in the mirror {}", m.display()))
                    .unwrap_or_default();
                bail!(
                    "model {:?} ({}) has no download URL{where_}; pass --mirror DIR with a folder that holds it",
                    spec.name,
                    spec.file
                );
            };
            download(url, &partial)
                .with_context(|| format!("cannot download model {:?} from {url}", spec.name))?;
            FetchOutcome::Downloaded(url.clone())
        }
    };
    let actual = sha256_file(&partial)?;
    if actual != spec.sha256 {
        let _ = fs::remove_file(&partial);
        bail!(
            "model {:?}: sha256 of the fetched file is {actual}, expected {}; refusing it",
            spec.name,
            spec.sha256
        );
    }
    fs::rename(&partial, &target)
        .with_context(|| format!("cannot move {} into place", target.display()))?;
    Ok(outcome)
}

fn download(url: &str, to: &Path) -> Result<()> {
    let agent = download_agent()?;
    let response = agent.get(url).call().map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut reader = response.into_body().into_reader();
    let mut file =
        fs::File::create(to).with_context(|| format!("cannot create {}", to.display()))?;
    std::io::copy(&mut reader, &mut file).context("download interrupted")?;
    file.flush()?;
    file.sync_all()?;
    Ok(())
}

/// An HTTP(S) client on the rustls (ring) the uplink already links, trusting
/// the system's CA roots (Debian's ca-certificates), with no bundled root list.
fn download_agent() -> Result<ureq3::Agent> {
    use ureq3::tls::{Certificate, RootCerts, TlsConfig};
    let found = rustls_native_certs::load_native_certs();
    let roots: Vec<Certificate<'static>> = found
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect();
    if roots.is_empty() {
        bail!(
            "no CA certificates found on this system (install ca-certificates){}",
            found
                .errors
                .first()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
    }
    let tls = TlsConfig::builder()
        .root_certs(RootCerts::new_with_certs(&roots))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build();
    let config = ureq3::Agent::config_builder()
        .tls_config(tls)
        .timeout_global(Some(std::time::Duration::from_secs(600)))
        .build();
    Ok(config.into())
}

/// Result of checking one installed model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifyOutcome {
    Ok,
    Missing(PathBuf),
    Mismatch { path: PathBuf, actual: String },
}

pub fn verify(spec: &ModelSpec, models_dir: &Path) -> Result<VerifyOutcome> {
    let path = models_dir.join(&spec.file);
    if !path.exists() {
        return Ok(VerifyOutcome::Missing(path));
    }
    let actual = sha256_file(&path)?;
    if actual == spec.sha256 {
        Ok(VerifyOutcome::Ok)
    } else {
        Ok(VerifyOutcome::Mismatch { path, actual })
    }
}

/// Path of an installed model, checked: exists and hash matches. Used before
/// loading a model so a corrupted file is named instead of failing deep in ONNX Runtime.
pub fn installed_path(spec: &ModelSpec, models_dir: &Path) -> Result<PathBuf> {
    match verify(spec, models_dir)? {
        VerifyOutcome::Ok => Ok(models_dir.join(&spec.file)),
        VerifyOutcome::Missing(path) => bail!(
            "model {:?} is not installed at {}; run `gatehouse models fetch`",
            spec.name,
            path.display()
        ),
        VerifyOutcome::Mismatch { path, actual } => bail!(
            "model file {} is corrupt: sha256 {actual}, expected {}; run `gatehouse models fetch` again",
            path.display(),
            spec.sha256
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_manifest_parses_and_has_the_product_defaults() {
        let manifest = Manifest::builtin();
        assert_eq!(
            manifest.get("yunet-2023mar").unwrap().role,
            ModelRole::Detector
        );
        assert_eq!(
            manifest.get("sface-2021dec").unwrap().role,
            ModelRole::Embedder
        );
        assert!(manifest
            .get("mobilefacenet")
            .unwrap()
            .match_threshold
            .is_some());
        assert!(manifest.get("nope").is_err());
    }

    #[test]
    fn fetch_refuses_a_mirror_file_with_the_wrong_hash() {
        let dir = std::env::temp_dir().join(format!("gh-models-{}", std::process::id()));
        let mirror = dir.join("mirror");
        let installed = dir.join("installed");
        fs::create_dir_all(&mirror).unwrap();
        let mut spec = Manifest::builtin().get("mobilefacenet").unwrap().clone();
        fs::write(mirror.join(&spec.file), b"not a model").unwrap();
        let err = fetch(&spec, &installed, Some(&mirror)).unwrap_err();
        assert!(format!("{err:#}").contains("refusing"), "{err:#}");
        assert!(!installed.join(&spec.file).exists());
        // With the right hash pinned, the same file is accepted.
        spec.sha256 = hex::encode(Sha256::digest(b"not a model"));
        assert!(matches!(
            fetch(&spec, &installed, Some(&mirror)).unwrap(),
            FetchOutcome::CopiedFromMirror(_)
        ));
        assert_eq!(verify(&spec, &installed).unwrap(), VerifyOutcome::Ok);
        fs::remove_dir_all(&dir).ok();
    }
}
