//! Open-set 1:N evaluation (`gatehouse face eval-1n`): what a gate does with
//! residents *and* strangers. For each seeded split, half the identities are
//! enrolled as residents (K photos each) and the rest are strangers; every
//! other photo is a probe. A probe of F frames (F photos of one person, taken
//! as consecutive frames of one tracked face) goes through the gate's own
//! code: [`MatchPolicy::search_and_judge`] per frame and a fresh
//! [`GateState`] for the K-of-M confirmation, so the figures are those of the
//! gate, not of a copy.
//!
//! Figures per probe (a trial of F frames):
//! - DIR: known probes confirmed as the right resident;
//! - misidentification: known probes confirmed as another resident;
//! - FPIR: stranger probes confirmed as any resident.
//!
//! Photos are analysed once (detection, quality, embedding) by
//! [`analyse_photos`]; [`evaluate`] is pure, so tests feed it hand-made
//! embeddings whose right answer is known.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::Serialize;

use super::gallery::{Gallery, IdentityScore};
use super::policy::{GateState, MatchPolicy, Outcome};
use super::quality::Rejection;
use super::{photo, Embedding, FaceEngine, FrameVerdict, Ranked};
use crate::domain::ResidentId;

/// One `file,identity` row of a labels file.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledPhoto {
    pub file: PathBuf,
    pub identity: String,
}

/// Reads a labels file (`file,identity`, header optional, `#` comments).
pub fn read_labels(path: &Path) -> Result<Vec<LabelledPhoto>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read labels file {}", path.display()))?;
    parse_labels(&text).with_context(|| format!("labels file {}", path.display()))
}

pub fn parse_labels(text: &str) -> Result<Vec<LabelledPhoto>> {
    let mut rows = Vec::new();
    let mut seen = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line
            .split(',')
            .map(|f| f.trim().trim_matches('"').trim())
            .collect();
        if rows.is_empty()
            && seen.is_empty()
            && fields
                .first()
                .is_some_and(|f| f.eq_ignore_ascii_case("file"))
        {
            continue;
        }
        let [file, identity] = fields.as_slice() else {
            bail!(
                "line {}: expected file,identity, got {} fields",
                n + 1,
                fields.len()
            );
        };
        if file.is_empty() || identity.is_empty() {
            bail!("line {}: empty file or identity", n + 1);
        }
        if let Some(first) = seen.insert(file.to_string(), n + 1) {
            bail!("line {}: {file} is already listed on line {first}", n + 1);
        }
        rows.push(LabelledPhoto {
            file: PathBuf::from(file),
            identity: identity.to_string(),
        });
    }
    if rows.is_empty() {
        bail!("no photos listed");
    }
    Ok(rows)
}

/// What the gate would see in one labelled photo.
#[derive(Clone, Debug)]
pub struct Sample {
    /// Index into the identity names.
    pub identity: usize,
    /// The largest face's embedding; `None` when no face was found (such a
    /// photo is a frame in which the gate sees nobody).
    pub embedding: Option<Embedding>,
    /// The quality floor's verdict on that face.
    pub quality: Result<(), Rejection>,
}

/// Labelled photos after detection, quality and embedding.
pub struct AnalysedPhotos {
    /// Identity names, in order of first appearance.
    pub names: Vec<String>,
    pub samples: Vec<Sample>,
    /// Photos that gave no face, with the reason.
    pub no_face: Vec<(PathBuf, String)>,
    /// Milliseconds spent per photo (decode, detection, alignment, embedding).
    pub photo_ms: Vec<f64>,
}

/// Detects, checks and embeds the largest face of every labelled photo. A
/// photo that cannot be decoded or shows no face is kept as a frame without a
/// face; a missing file is an error (the labels or `--root` are wrong).
pub fn analyse_photos(
    engine: &mut FaceEngine,
    labels: &[LabelledPhoto],
    root: &Path,
) -> Result<AnalysedPhotos> {
    for (i, l) in labels.iter().enumerate() {
        let path = root.join(&l.file);
        if !path.is_file() {
            bail!(
                "{} (row {} of the labels) is not a file under {}",
                l.file.display(),
                i + 1,
                root.display()
            );
        }
    }
    let mut names: Vec<String> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    let mut out = AnalysedPhotos {
        names: Vec::new(),
        samples: Vec::with_capacity(labels.len()),
        no_face: Vec::new(),
        photo_ms: Vec::with_capacity(labels.len()),
    };
    for l in labels {
        let identity = *index.entry(&l.identity).or_insert_with(|| {
            names.push(l.identity.clone());
            names.len() - 1
        });
        let started = Instant::now();
        let (embedding, quality) = match analyse_one(engine, &root.join(&l.file))? {
            Ok(found) => found,
            Err(why) => {
                out.no_face.push((l.file.clone(), why));
                (None, Ok(()))
            }
        };
        out.photo_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        out.samples.push(Sample {
            identity,
            embedding,
            quality,
        });
    }
    out.names = names;
    Ok(out)
}

type Analysed = (Option<Embedding>, Result<(), Rejection>);

/// The largest face of a photo, embedded whatever its quality (so the
/// evaluation can also be run without the quality floor). The inner `Err` is
/// a photo without a usable face; the outer one a model that fails to run,
/// which stops the evaluation (it is never counted as "no face").
fn analyse_one(
    engine: &mut FaceEngine,
    path: &Path,
) -> Result<std::result::Result<Analysed, String>> {
    let frame = match photo::load(path) {
        Ok(frame) => frame,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let faces = match photo::detect(engine, &frame) {
        Ok(faces) => faces,
        Err(photo::PhotoError::Failed(why)) => {
            bail!("face detector failed on {}: {why}", path.display())
        }
        Err(e) => return Ok(Err(e.to_string())),
    };
    let Some(largest) = faces
        .iter()
        .max_by(|a, b| a.bbox.area().total_cmp(&b.bbox.area()))
    else {
        return Ok(Err(photo::PhotoError::NoFace.to_string()));
    };
    let face = engine
        .analyze(&frame, *largest)
        .with_context(|| format!("face models failed on {}", path.display()))?;
    let embedding = match face.embedding {
        Some(e) => e,
        None => engine
            .embed_face(&frame, largest, &face.crop112)
            .with_context(|| format!("face embedder failed on {}", path.display()))?,
    };
    Ok(Ok((Some(embedding), face.verdict)))
}

#[derive(Clone, Debug)]
pub struct OpenSetOptions {
    /// K: enrolment photos per resident.
    pub enrol_per_person: usize,
    /// F: photos of one person taken as consecutive frames of one face.
    pub frames: usize,
    pub splits: usize,
    pub seed: u64,
    /// Apply the quality floor (off: every face is judged).
    pub quality_floor: bool,
    /// Thresholds for the DIR-vs-FPIR curve.
    pub curve: Vec<f32>,
    /// Choose each split's threshold from its enrolled residents only.
    pub self_calibrate: Option<SelfCalibrate>,
    /// Household + face (1:few): residents are grouped into households of
    /// this many members, and each probe is matched against one household
    /// only (its own; a stranger's, a household drawn at random), at the
    /// threshold without a margin, as a household gate checks the members.
    pub household: Option<usize>,
}

/// `--self-calibrate`: per split, the threshold for `target_fpir` at that
/// split's register size, from the residents' own faces (no stranger labels)
/// or, while they are too few, from `prior`.
#[derive(Clone, Debug)]
pub struct SelfCalibrate {
    pub target_fpir: f64,
    pub prior: Option<super::tail::TailCurve>,
}

impl OpenSetOptions {
    /// 0.00, 0.01, …, 1.00.
    pub fn default_curve() -> Vec<f32> {
        (0..=100).map(|i| i as f32 / 100.0).collect()
    }
}

/// The final JSON line of `face eval-1n`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OpenSetSummary {
    /// Probes (trials of F frames) of enrolled residents, over all splits.
    pub known_probes: usize,
    /// Probes of strangers, over all splits.
    pub unknown_probes: usize,
    /// Known probes confirmed as the right resident.
    pub dir: f64,
    /// Stranger probes confirmed as any resident.
    pub fpir: f64,
    /// Known probes confirmed as another resident.
    pub misid: f64,
    pub threshold: f64,
    pub margin: f64,
    pub enrol_per_person: usize,
    pub frames: usize,
    /// The confirmation rule the frames went through: K of M.
    pub confirm_k: usize,
    pub confirm_m: usize,
    pub combine: &'static str,
    pub quality_floor: bool,
    pub splits: usize,
    pub seed: u64,
    pub identities: usize,
    pub photos: usize,
    pub no_face: usize,
    /// `--self-calibrate`: the target, and the stranger rate the calibration
    /// predicted for each split's register (mean over splits; point and 95 % bound).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_fpir: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_fpir: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicted_fpir_upper: Option<f64>,
    /// Splits whose threshold came from the residents' own faces (the rest: the prior).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub own_register_splits: Option<usize>,
    /// `--household`: members per household; each probe searched that household only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub household: Option<usize>,
}

/// DIR, FPIR and misidentification at one threshold.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CurvePoint {
    pub threshold: f32,
    pub dir: f64,
    pub fpir: f64,
    pub misid: f64,
}

#[derive(Clone, Debug)]
pub struct OpenSetReport {
    pub summary: OpenSetSummary,
    pub identified: usize,
    pub misidentified: usize,
    pub false_accepts: usize,
    pub curve: Vec<CurvePoint>,
    /// Identities that were never residents: fewer than two photos with a
    /// face (no photo left to probe with); they serve as strangers only.
    pub strangers_only: Vec<String>,
    /// Identities enrolled with fewer than K photos (name, photos enrolled):
    /// all their photos but one went into enrolment.
    pub enrolled_fewer: Vec<(String, usize)>,
    /// Probes whose F frames had to reuse a photo (the person had fewer than F probe photos).
    pub repeated_frames: usize,
    /// Each known probe photo's score with its own resident.
    pub genuine: Vec<f32>,
    /// Each probe photo's best score among residents it is not (stranger
    /// probes: the score that could open the gate for them).
    pub best_impostor: Vec<f32>,
}

/// An f32 as the f64 with the same shortest decimal form (0.45, not
/// 0.44999998807907104), for the JSON line.
pub fn shortest(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(f64::from(x))
}

/// Tiny fixed generator (SplitMix64): the same seed gives the same splits
/// on every build and platform, so published figures can be reproduced.
pub(crate) struct SplitMix(pub(crate) u64);

impl SplitMix {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(crate) fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// One split: who is enrolled with which photos, and the probes.
struct Split {
    /// (resident id, sample indices enrolled).
    residents: Vec<(ResidentId, Vec<usize>)>,
    /// (the resident this person is, or `None` for a stranger; probe sample indices).
    probes: Vec<(Option<ResidentId>, Vec<usize>)>,
}

fn resident_id(identity: usize) -> ResidentId {
    ResidentId(identity as i64 + 1)
}

fn enrollable(s: &Sample, floor: bool) -> bool {
    s.embedding.is_some() && (!floor || s.quality.is_ok())
}

fn make_split(
    rng: &mut SplitMix,
    by_identity: &[Vec<usize>],
    samples: &[Sample],
    opts: &OpenSetOptions,
    enrolled_fewer: &mut HashMap<usize, usize>,
) -> Split {
    // A resident needs one photo to enrol and one left to probe with.
    let mut eligible: Vec<usize> = (0..by_identity.len())
        .filter(|&i| {
            let photos = &by_identity[i];
            photos.len() >= 2
                && photos
                    .iter()
                    .any(|&s| enrollable(&samples[s], opts.quality_floor))
        })
        .collect();
    rng.shuffle(&mut eligible);
    let wanted = by_identity.len().div_ceil(2).min(eligible.len());
    let mut is_resident = vec![false; by_identity.len()];
    let mut split = Split {
        residents: Vec::new(),
        probes: Vec::new(),
    };
    for &identity in &eligible[..wanted] {
        is_resident[identity] = true;
        let mut photos = by_identity[identity].clone();
        rng.shuffle(&mut photos);
        let room = opts.enrol_per_person.min(photos.len() - 1);
        let mut enrol = Vec::new();
        let mut probe = Vec::new();
        for s in photos {
            if enrol.len() < room && enrollable(&samples[s], opts.quality_floor) {
                enrol.push(s);
            } else {
                probe.push(s);
            }
        }
        if enrol.len() < opts.enrol_per_person {
            enrolled_fewer.insert(identity, enrol.len());
        }
        let id = resident_id(identity);
        split.residents.push((id, enrol));
        split.probes.push((Some(id), probe));
    }
    for (identity, photos) in by_identity.iter().enumerate() {
        if !is_resident[identity] {
            let mut photos = photos.clone();
            rng.shuffle(&mut photos);
            split.probes.push((None, photos));
        }
    }
    split
}

/// Runs the evaluation over `samples` (from [`analyse_photos`], or made by
/// hand). `policy` is the gate's policy; for F frames below its K, K is
/// lowered to F (a one-frame evaluation judges single frames).
pub fn evaluate(
    names: &[String],
    samples: &[Sample],
    policy: &MatchPolicy,
    model: &str,
    dim: usize,
    opts: &OpenSetOptions,
) -> Result<OpenSetReport> {
    if opts.enrol_per_person == 0 || opts.frames == 0 || opts.splits == 0 {
        bail!("--enrol-per-person, --frames and --splits must be at least 1");
    }
    if opts.household == Some(0) {
        bail!("--household must be at least 1 member");
    }
    let mut by_identity: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
    for (i, s) in samples.iter().enumerate() {
        let Some(list) = by_identity.get_mut(s.identity) else {
            bail!(
                "sample {i} names identity {} of {}",
                s.identity,
                names.len()
            );
        };
        list.push(i);
    }
    if names.len() < 2 {
        bail!("an open-set evaluation needs at least two identities (residents and strangers)");
    }
    let can_be_resident = by_identity.iter().any(|photos| {
        photos.len() >= 2
            && photos
                .iter()
                .any(|&i| enrollable(&samples[i], opts.quality_floor))
    });
    if !can_be_resident {
        bail!("no identity has two photos with a usable face, so no resident can be probed");
    }
    let mut policy = *policy;
    policy.confirm_k = policy.confirm_k.min(opts.frames);
    policy.confirm_m = policy.confirm_m.max(policy.confirm_k);
    let quality = |s: &Sample| {
        if opts.quality_floor {
            s.quality
        } else {
            Ok(())
        }
    };

    let mut rng = SplitMix(opts.seed);
    // Households are drawn from a stream of their own, so `--household`
    // judges the very splits the 1:N evaluation with the same seed judges.
    let mut household_rng = SplitMix(opts.seed ^ 0x686f_7573_6568_6f6c);
    let mut enrolled_fewer = HashMap::new();
    let mut tally = Tally::default();
    let mut curve = vec![Tally::default(); opts.curve.len()];
    let mut repeated_frames = 0;
    let mut genuine = Vec::new();
    let mut best_impostor = Vec::new();
    let mut residents_seen = vec![false; names.len()];
    let mut calibrated = Calibrated::default();
    for _ in 0..opts.splits {
        let split = make_split(&mut rng, &by_identity, samples, opts, &mut enrolled_fewer);
        let rows = split.residents.iter().flat_map(|(id, enrol)| {
            enrol.iter().filter_map(move |&s| {
                samples[s]
                    .embedding
                    .as_ref()
                    .map(|e| (*id, e.as_slice().to_vec()))
            })
        });
        let rows: Vec<(ResidentId, Vec<f32>)> = rows.collect();
        let gallery =
            Gallery::from_rows_combined(model, dim, rows.iter().cloned(), policy.combine)?;
        let mut policy = policy;
        if let Some(sc) = &opts.self_calibrate {
            // A household gate compares a face with the household's members only.
            let n = match opts.household {
                Some(members) => members.min(gallery.identities()),
                None => gallery.identities(),
            };
            let own =
                super::calibrate::own_curve(&rows, &HashMap::new(), model, dim, policy.combine)
                    .ok();
            let Some(curve) =
                super::calibrate::choose_curve(own, sc.prior.as_ref(), sc.target_fpir, n)
            else {
                bail!(
                    "--self-calibrate: {n} residents are too few for a tail of their own and the embedder has no prior in the manifest"
                );
            };
            let choice = super::calibrate::choose_threshold(curve, sc.target_fpir, n);
            if matches!(
                choice.curve.basis,
                super::tail::TailBasis::OwnRegister { .. }
            ) {
                calibrated.own += 1;
            }
            calibrated.thresholds.push(f64::from(choice.threshold));
            calibrated.predicted.push(choice.fpir);
            calibrated.upper.push(choice.fpir_upper);
            policy.threshold = choice.threshold;
        }
        for (id, _) in &split.residents {
            residents_seen[(id.0 - 1) as usize] = true;
        }
        let households = opts
            .household
            .map(|members| households_of(&mut household_rng, &split.residents, members));
        for (who, probes) in &split.probes {
            // The members this face is compared with at a household gate.
            let household: Option<&[ResidentId]> = households.as_ref().map(|h| {
                let index = match who.and_then(|id| h.of.get(&id)) {
                    Some(&i) => i,
                    None => (household_rng.next() % h.members.len() as u64) as usize,
                };
                h.members[index].as_slice()
            });
            // The gate's verdict per frame, and the search result the curve re-judges.
            let frames: Vec<Option<Judged>> = probes
                .iter()
                .map(|&s| {
                    let sample = &samples[s];
                    let embedding = sample.embedding.as_ref()?;
                    let q = quality(sample);
                    let (ranked, verdict) = match household {
                        Some(members) => {
                            let ranked = q.ok().and_then(|()| {
                                among_members(&gallery, members, embedding.as_slice())
                            });
                            (ranked, policy.judge(q, ranked.as_ref()))
                        }
                        None => policy.search_and_judge(&gallery, q, Some(embedding.as_slice())),
                    };
                    Some((q, ranked, verdict))
                })
                .collect();
            for &s in probes {
                if let Some(e) = &samples[s].embedding {
                    let own = who.and_then(|id| gallery.score_for(id, e.as_slice()));
                    genuine.extend(own);
                    let other = gallery
                        .identity_scores(e.as_slice())
                        .filter(|x| Some(x.resident) != *who)
                        .map(|x| x.score)
                        .max_by(f32::total_cmp);
                    best_impostor.extend(other);
                }
            }
            let p = probes.len();
            for start in 0..p {
                if p < opts.frames {
                    repeated_frames += 1;
                }
                let trial = (0..opts.frames).map(|j| frames[(start + j) % p].as_ref());
                let verdicts: Vec<Option<FrameVerdict>> =
                    trial.clone().map(|f| f.map(|(_, _, v)| *v)).collect();
                tally.add(*who, confirm(&policy, &verdicts));
                for (point, &t) in curve.iter_mut().zip(&opts.curve) {
                    let at = MatchPolicy {
                        threshold: t,
                        ..policy
                    };
                    let verdicts: Vec<Option<FrameVerdict>> = trial
                        .clone()
                        .map(|f| f.map(|(q, ranked, _)| at.judge(*q, ranked.as_ref())))
                        .collect();
                    point.add(*who, confirm(&at, &verdicts));
                }
            }
        }
    }
    let strangers_only = (0..names.len())
        .filter(|&i| !residents_seen[i])
        .map(|i| names[i].clone())
        .collect();
    let mut enrolled_fewer: Vec<(String, usize)> = enrolled_fewer
        .into_iter()
        .map(|(i, n)| (names[i].clone(), n))
        .collect();
    enrolled_fewer.sort();
    let (dir, fpir, misid) = tally.rates();
    Ok(OpenSetReport {
        summary: OpenSetSummary {
            known_probes: tally.known,
            unknown_probes: tally.unknown,
            dir,
            fpir,
            misid,
            threshold: match calibrated.mean(&calibrated.thresholds) {
                Some(mean) => (mean * 1000.0).round() / 1000.0,
                None => shortest(policy.threshold),
            },
            margin: shortest(policy.margin),
            enrol_per_person: opts.enrol_per_person,
            frames: opts.frames,
            confirm_k: policy.confirm_k,
            confirm_m: policy.confirm_m,
            combine: policy.combine.as_str(),
            quality_floor: opts.quality_floor,
            splits: opts.splits,
            seed: opts.seed,
            identities: names.len(),
            photos: samples.len(),
            no_face: samples.iter().filter(|s| s.embedding.is_none()).count(),
            target_fpir: opts.self_calibrate.as_ref().map(|s| s.target_fpir),
            predicted_fpir: calibrated.mean(&calibrated.predicted),
            predicted_fpir_upper: calibrated.mean(&calibrated.upper),
            own_register_splits: opts.self_calibrate.as_ref().map(|_| calibrated.own),
            household: opts.household,
        },
        identified: tally.identified,
        misidentified: tally.misidentified,
        false_accepts: tally.false_accepts,
        curve: curve
            .iter()
            .zip(&opts.curve)
            .map(|(t, &threshold)| {
                let (dir, fpir, misid) = t.rates();
                CurvePoint {
                    threshold,
                    dir,
                    fpir,
                    misid,
                }
            })
            .collect(),
        strangers_only,
        enrolled_fewer,
        repeated_frames,
        genuine,
        best_impostor,
    })
}

/// What `--self-calibrate` chose in each split.
#[derive(Default)]
struct Calibrated {
    thresholds: Vec<f64>,
    predicted: Vec<f64>,
    upper: Vec<f64>,
    own: usize,
}

impl Calibrated {
    fn mean(&self, v: &[f64]) -> Option<f64> {
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// One frame as the gate judged it: its quality verdict and search result
/// (which the curve re-judges at other thresholds), and the verdict.
type Judged = (Result<(), Rejection>, Option<Ranked>, FrameVerdict);

/// One split's residents grouped into households of `members` (the last may be smaller).
struct Households {
    members: Vec<Vec<ResidentId>>,
    of: HashMap<ResidentId, usize>,
}

fn households_of(
    rng: &mut SplitMix,
    residents: &[(ResidentId, Vec<usize>)],
    members: usize,
) -> Households {
    let mut ids: Vec<ResidentId> = residents.iter().map(|(id, _)| *id).collect();
    rng.shuffle(&mut ids);
    let members: Vec<Vec<ResidentId>> = ids.chunks(members.max(1)).map(<[_]>::to_vec).collect();
    let of = members
        .iter()
        .enumerate()
        .flat_map(|(i, h)| h.iter().map(move |id| (*id, i)))
        .collect();
    Households { members, of }
}

/// The household gate's 1:few check of one face: the best-scoring member,
/// with no second (the members are checked 1:1 each, without a margin).
fn among_members(gallery: &Gallery, members: &[ResidentId], embedding: &[f32]) -> Option<Ranked> {
    let best = members
        .iter()
        .filter_map(|&resident| {
            gallery
                .score_for(resident, embedding)
                .map(|score| IdentityScore { resident, score })
        })
        .max_by(|a, b| a.score.total_cmp(&b.score))?;
    Some(Ranked { best, second: None })
}

/// The frames of one probe through a fresh gate state, as one tracked face:
/// the resident the gate would let in, if any. Frames without a face add nothing.
fn confirm(policy: &MatchPolicy, frames: &[Option<FrameVerdict>]) -> Option<ResidentId> {
    let mut state = GateState::default();
    let now = Instant::now();
    frames
        .iter()
        .flatten()
        .find_map(|v| match state.observe(policy, 0, *v, now) {
            Some(Outcome::Credential(s)) => Some(s.resident),
            _ => None,
        })
}

#[derive(Clone, Copy, Debug, Default)]
struct Tally {
    known: usize,
    unknown: usize,
    identified: usize,
    misidentified: usize,
    false_accepts: usize,
}

impl Tally {
    fn add(&mut self, who: Option<ResidentId>, admitted: Option<ResidentId>) {
        match (who, admitted) {
            (Some(id), Some(got)) => {
                self.known += 1;
                if id == got {
                    self.identified += 1;
                } else {
                    self.misidentified += 1;
                }
            }
            (Some(_), None) => self.known += 1,
            (None, got) => {
                self.unknown += 1;
                if got.is_some() {
                    self.false_accepts += 1;
                }
            }
        }
    }

    /// (DIR, FPIR, misidentification); 0 when there is nothing to divide.
    fn rates(&self) -> (f64, f64, f64) {
        let rate = |n: usize, of: usize| if of == 0 { 0.0 } else { n as f64 / of as f64 };
        (
            rate(self.identified, self.known),
            rate(self.false_accepts, self.unknown),
            rate(self.misidentified, self.known),
        )
    }
}

#[cfg(test)]
mod tests;
