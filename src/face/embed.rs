//! Embedding: an aligned face crop → an L2-normalised vector, with the
//! preprocessing the model manifest gives (size, channel order, scale, mean,
//! std). The test embedder (MobileFaceNet, 128-d) and the product's (SFace,
//! FaceNet) all run through this one path; only the manifest entry differs.

use std::path::Path;

use anyhow::{bail, Context, Result};
use opencv::core::{Mat, Size};
use opencv::imgproc;
use opencv::prelude::*;
use ort::session::Session;
use ort::value::TensorRef;

use super::cv;
use super::detect::Normalize;
use crate::models::ModelSpec;

/// A unit-length face embedding.
#[derive(Clone, Debug, PartialEq)]
pub struct Embedding(Box<[f32]>);

impl Embedding {
    /// Normalises `v` to unit length; refuses empty, zero or non-finite vectors.
    pub fn from_raw(v: Vec<f32>) -> Result<Embedding> {
        if v.is_empty() || v.iter().any(|x| !x.is_finite()) {
            bail!("embedding is empty or not finite");
        }
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm < 1e-12 {
            bail!("embedding has zero length");
        }
        Ok(Embedding(v.into_iter().map(|x| x / norm).collect()))
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    pub fn dim(&self) -> usize {
        self.0.len()
    }

    /// Cosine similarity (both are unit length, so the dot product).
    pub fn cosine(&self, other: &Embedding) -> f32 {
        crate::domain::embedding::dot(&self.0, &other.0)
    }

    /// Little-endian f32 bytes, as stored in the database.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    pub fn from_le_bytes(bytes: &[u8]) -> Result<Embedding> {
        if !bytes.len().is_multiple_of(4) {
            bail!(
                "embedding blob of {} bytes is not a list of f32",
                bytes.len()
            );
        }
        let v = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Embedding::from_raw(v)
    }
}

/// The embedder with its ONNX Runtime session and the manifest's preprocessing.
pub struct Embedder {
    session: Session,
    model: String,
    input_name: String,
    output_name: Option<String>,
    width: u32,
    height: u32,
    dim: usize,
    normalize: Normalize,
    tensor: Vec<f32>,
}

impl Embedder {
    pub fn load(spec: &ModelSpec, path: &Path, threads: usize) -> Result<Embedder> {
        let (Some(width), Some(height), Some(dim)) =
            (spec.input_width, spec.input_height, spec.embedding_size)
        else {
            bail!(
                "embedder {:?} needs input_width, input_height and embedding_size in the manifest",
                spec.name
            );
        };
        if spec.alignment.as_deref().unwrap_or("arcface5") != "arcface5" {
            bail!(
                "embedder {:?}: alignment {:?} is not supported (only arcface5)",
                spec.name,
                spec.alignment
            );
        }
        let session = crate::onnx::session(path, threads)?;
        if let Some(out) = &spec.output_name {
            if !session.outputs().iter().any(|o| o.name() == out) {
                bail!("model {} has no output {out:?}", path.display());
            }
        }
        Ok(Embedder {
            session,
            model: spec.name.clone(),
            input_name: spec.input_name.clone(),
            output_name: spec.output_name.clone(),
            width,
            height,
            dim,
            normalize: Normalize::from_spec(spec),
            tensor: Vec::new(),
        })
    }

    /// Manifest name of the model; stored with every embedding.
    pub fn model(&self) -> &str {
        &self.model
    }

    pub fn input_size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Embeds one aligned BGR face; a crop of another size is resized first
    /// (re-embedding from the stored 112×112 crops).
    pub fn embed(&mut self, aligned: &Mat) -> Result<Embedding> {
        let size = cv(aligned.size(), "crop size")?;
        if aligned.typ() != opencv::core::CV_8UC3 || size.width <= 0 {
            bail!("expected an 8-bit BGR face crop");
        }
        let (w, h) = (self.width as i32, self.height as i32);
        let mut resized = Mat::default();
        let img = if size.width == w && size.height == h && aligned.is_continuous() {
            aligned
        } else {
            cv(
                imgproc::resize(
                    aligned,
                    &mut resized,
                    Size::new(w, h),
                    0.0,
                    0.0,
                    imgproc::INTER_LINEAR,
                ),
                "cannot resize face crop",
            )?;
            &resized
        };
        let (w, h) = (w as usize, h as usize);
        self.tensor.clear();
        self.tensor.resize(3 * w * h, 0.0);
        self.normalize.write_nchw(
            cv(img.data_bytes(), "crop pixels")?,
            w,
            h,
            &mut self.tensor,
            w,
            h,
        );
        let input = TensorRef::from_array_view(([1usize, 3, h, w], self.tensor.as_slice()))
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("cannot build embedder input")?;
        let outputs = self
            .session
            .run(ort::inputs![self.input_name.as_str() => input])
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("embedder {} failed", self.model))?;
        let name = match &self.output_name {
            Some(name) => name.clone(),
            None => outputs
                .keys()
                .next()
                .context("embedder produced no output")?
                .to_string(),
        };
        let value = outputs
            .get(&name)
            .with_context(|| format!("embedder output {name} missing"))?;
        let (_, data) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("embedder output is not f32")?;
        if data.len() != self.dim {
            bail!(
                "embedder {} returned {} values, the manifest says {}",
                self.model,
                data.len(),
                self.dim
            );
        }
        Embedding::from_raw(data.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_unit_length_and_round_trip_as_le_bytes() {
        let e = Embedding::from_raw(vec![3.0, 4.0]).unwrap();
        assert_eq!(e.as_slice(), &[0.6, 0.8]);
        let back = Embedding::from_le_bytes(&e.to_le_bytes()).unwrap();
        assert_eq!(back, e);
        assert!(Embedding::from_raw(vec![0.0, 0.0]).is_err());
        assert!(Embedding::from_raw(vec![f32::NAN]).is_err());
        assert!(Embedding::from_le_bytes(&[1, 2, 3]).is_err());
    }
}
