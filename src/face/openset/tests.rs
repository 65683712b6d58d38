use std::time::Duration;

use super::*;
use crate::domain::embedding::Combine;

fn policy() -> MatchPolicy {
    MatchPolicy {
        threshold: 0.5,
        verify_threshold: 0.5,
        margin: 0.05,
        confirm_k: 2,
        confirm_m: 3,
        combine: Combine::Best,
        cooldown: Duration::from_secs(5),
        unknown_interval: Duration::from_secs(30),
    }
}

fn unit(v: &[(usize, f32)]) -> Embedding {
    let mut raw = vec![0.0f32; 8];
    for (i, x) in v {
        raw[*i] = *x;
    }
    Embedding::from_raw(raw).unwrap()
}

fn sample(identity: usize, e: Embedding) -> Sample {
    Sample {
        identity,
        embedding: Some(e),
        quality: Ok(()),
    }
}

/// Three identities with two photos each (so they are the residents of
/// every split: half of six is three) and three with one photo (always
/// strangers). With one enrolment photo each, every split is the same case:
/// - A: two identical photos: identified (1.0, next best C at 0.707);
/// - B: two photos at cosine 0.3: missed at threshold 0.5;
/// - C: two photos at cosine 0, each 0.707 from A: misidentified as A;
/// - stranger S1 0.98 from A: falsely accepted; S2 far from all: refused;
///   S3 at 0.806 from both photos of B: falsely accepted.
///
/// So DIR = 1/3, misidentification = 1/3, FPIR = 2/3 at threshold 0.5.
fn constructed() -> (Vec<String>, Vec<Sample>) {
    let names = ["A", "B", "C", "S1", "S2", "S3"].map(String::from).to_vec();
    let r = 0.3f32;
    let beta = (1.0 - r) / (1.0 - r * r).sqrt();
    let samples = vec![
        sample(0, unit(&[(0, 1.0)])),
        sample(0, unit(&[(0, 1.0)])),
        sample(1, unit(&[(1, 1.0)])),
        sample(1, unit(&[(1, r), (2, (1.0 - r * r).sqrt())])),
        sample(2, unit(&[(0, 1.0), (3, 1.0)])),
        sample(2, unit(&[(0, 1.0), (3, -1.0)])),
        sample(3, unit(&[(0, 1.0), (4, 0.2)])),
        sample(4, unit(&[(6, 1.0)])),
        sample(5, unit(&[(1, 1.0), (2, beta)])),
    ];
    (names, samples)
}

fn options(frames: usize) -> OpenSetOptions {
    OpenSetOptions {
        enrol_per_person: 3,
        frames,
        splits: 5,
        seed: 7,
        quality_floor: true,
        curve: vec![0.0, 0.5, 0.9],
        self_calibrate: None,
        household: None,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn figures_match_the_hand_computed_case() {
    let (names, samples) = constructed();
    let report = evaluate(&names, &samples, &policy(), "m", 8, &options(1)).unwrap();
    let s = &report.summary;
    assert_eq!((s.known_probes, s.unknown_probes), (15, 15));
    assert_eq!(
        (
            report.identified,
            report.misidentified,
            report.false_accepts
        ),
        (5, 5, 10)
    );
    assert!(close(s.dir, 1.0 / 3.0), "{s:?}");
    assert!(close(s.misid, 1.0 / 3.0), "{s:?}");
    assert!(close(s.fpir, 2.0 / 3.0), "{s:?}");
    assert_eq!(
        (s.confirm_k, s.confirm_m),
        (1, 3),
        "one frame: single-frame rule"
    );
    assert_eq!(report.strangers_only, vec!["S1", "S2", "S3"]);
    // K = 3 asked, each resident has two photos: one enrolled, one probe.
    assert_eq!(
        report.enrolled_fewer,
        vec![("A".into(), 1), ("B".into(), 1), ("C".into(), 1)]
    );
    assert_eq!(report.repeated_frames, 0);
}

#[test]
fn the_curve_rejudges_the_same_searches_at_each_threshold() {
    let (names, samples) = constructed();
    let report = evaluate(&names, &samples, &policy(), "m", 8, &options(1)).unwrap();
    let at = |t: f32| *report.curve.iter().find(|p| p.threshold == t).unwrap();
    // 0.0: B's 0.3 now counts; S2 (all scores 0) is a tie, so ambiguous.
    let p = at(0.0);
    assert!(
        close(p.dir, 2.0 / 3.0) && close(p.misid, 1.0 / 3.0) && close(p.fpir, 2.0 / 3.0),
        "{p:?}"
    );
    // The configured threshold gives the headline figures.
    let p = at(0.5);
    assert!(close(p.dir, report.summary.dir) && close(p.fpir, report.summary.fpir));
    // 0.9: only A (1.0) and S1 (0.98) pass.
    let p = at(0.9);
    assert!(
        close(p.dir, 1.0 / 3.0) && close(p.misid, 0.0) && close(p.fpir, 1.0 / 3.0),
        "{p:?}"
    );
}

#[test]
fn two_frames_of_a_lone_probe_photo_repeat_it_and_agree() {
    let (names, samples) = constructed();
    let report = evaluate(&names, &samples, &policy(), "m", 8, &options(2)).unwrap();
    let s = &report.summary;
    assert_eq!((s.confirm_k, s.frames), (2, 2));
    assert!(close(s.dir, 1.0 / 3.0) && close(s.fpir, 2.0 / 3.0) && close(s.misid, 1.0 / 3.0));
    // Every probe list has one photo: each of the 6 per split repeats it.
    assert_eq!(report.repeated_frames, 30);
}

#[test]
fn frames_must_agree_under_the_gates_rule() {
    let r = |id: i64, score: f32| crate::face::IdentityScore {
        resident: ResidentId(id),
        score,
    };
    let m = |id| Some(FrameVerdict::Match(r(id, 0.8)));
    let u = Some(FrameVerdict::Unknown {
        best: Some(r(1, 0.3)),
    });
    let two = policy();
    let one = MatchPolicy {
        confirm_k: 1,
        ..policy()
    };
    // A stranger's two frames that disagree: one matches, one does not.
    assert_eq!(confirm(&one, &[u, m(1)]), Some(ResidentId(1)));
    assert_eq!(confirm(&two, &[u, m(1)]), None);
    assert_eq!(confirm(&two, &[m(1), None, m(1)]), Some(ResidentId(1)));
    // Two residents in one window: never confirmed.
    assert_eq!(confirm(&two, &[m(1), m(2)]), None);
    // The first confirmed resident is the one the gate admits.
    assert_eq!(confirm(&one, &[m(2), m(1)]), Some(ResidentId(2)));
}

#[test]
fn refused_and_faceless_photos_are_never_enrolled_and_give_no_vote() {
    let names = ["R", "Q"].map(String::from).to_vec();
    let blurred = Sample {
        quality: Err(Rejection::Blurred),
        ..sample(0, unit(&[(0, 1.0)]))
    };
    let faceless = Sample {
        identity: 1,
        embedding: None,
        quality: Ok(()),
    };
    let samples = vec![
        blurred.clone(),
        sample(0, unit(&[(0, 1.0)])),
        sample(1, unit(&[(1, 1.0)])),
        faceless,
    ];
    let mut opts = options(1);
    opts.enrol_per_person = 1;
    let report = evaluate(&names, &samples, &policy(), "m", 8, &opts).unwrap();
    // Only R can enrol (Q's second photo has no face, so Q has one usable
    // photo but two photos: it is eligible and may be drawn). Half of two is one.
    let s = &report.summary;
    assert_eq!(s.no_face, 1);
    assert_eq!(s.known_probes + s.unknown_probes, 5 * 3);
    // R's probe, when R is the resident, is the blurred photo: no vote, not identified.
    assert_eq!(report.misidentified + report.false_accepts, 0);
    // Without the floor the blurred photo is judged and identifies R.
    opts.quality_floor = false;
    let lenient = evaluate(&names, &samples, &policy(), "m", 8, &opts).unwrap();
    assert!(
        lenient.identified > report.identified,
        "{:?}",
        lenient.summary
    );
}

#[test]
fn a_set_without_strangers_or_without_probes_is_refused() {
    let one = ["A".to_string()];
    let samples = vec![sample(0, unit(&[(0, 1.0)])), sample(0, unit(&[(0, 1.0)]))];
    let err = evaluate(&one, &samples, &policy(), "m", 8, &options(1)).unwrap_err();
    assert!(err.to_string().contains("two identities"), "{err}");
    let two = ["A".to_string(), "B".to_string()];
    let single = vec![sample(0, unit(&[(0, 1.0)])), sample(1, unit(&[(1, 1.0)]))];
    let err = evaluate(&two, &single, &policy(), "m", 8, &options(1)).unwrap_err();
    assert!(err.to_string().contains("two photos"), "{err}");
}

#[test]
fn labels_parse_with_header_and_name_bad_rows() {
    let rows = parse_labels("file,identity\na/1.jpg,alice\n# note\n\"b/2.jpg\", bob\n").unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1].file, PathBuf::from("b/2.jpg"));
    assert_eq!(rows[1].identity, "bob");
    let err = parse_labels("a.jpg,alice\na.jpg,bob\n").unwrap_err();
    assert!(
        err.to_string().contains("line 2") && err.to_string().contains("line 1"),
        "{err}"
    );
    assert!(parse_labels("a.jpg\n")
        .unwrap_err()
        .to_string()
        .contains("line 1"));
    assert!(parse_labels("a.jpg,\n").is_err());
    assert!(parse_labels("file,identity\n").is_err());
}

#[test]
fn the_same_seed_gives_the_same_splits() {
    let mut a = SplitMix(3);
    let mut b = SplitMix(3);
    let mut x: Vec<u32> = (0..20).collect();
    let mut y = x.clone();
    a.shuffle(&mut x);
    b.shuffle(&mut y);
    assert_eq!(x, y);
    assert_ne!(x, (0..20).collect::<Vec<u32>>());
}

#[test]
fn household_mode_matches_each_probe_against_one_household_only() {
    let (names, samples) = constructed();
    let one_to_n = evaluate(&names, &samples, &policy(), "m", 8, &options(1)).unwrap();
    // Households of one: C's probe (0.707 from A, 0 from C) no longer
    // finds A, so nobody is misidentified; a stranger meets one resident.
    let mut opts = options(1);
    opts.household = Some(1);
    let alone = evaluate(&names, &samples, &policy(), "m", 8, &opts).unwrap();
    let s = &alone.summary;
    assert_eq!(s.household, Some(1));
    assert_eq!((s.known_probes, s.unknown_probes), (15, 15));
    assert!(close(s.dir, 1.0 / 3.0) && close(s.misid, 0.0), "{s:?}");
    // S2 is refused whatever the household; S1 passes only A's and C's, S3 only B's.
    assert!(s.fpir < one_to_n.summary.fpir, "{s:?}");
    assert!(s.fpir > 0.0, "{s:?}");
    // One household of all three: the same comparisons as 1:N (no tie to be ambiguous here).
    opts.household = Some(3);
    let together = evaluate(&names, &samples, &policy(), "m", 8, &opts).unwrap();
    assert!(
        close(together.summary.fpir, 2.0 / 3.0) && close(together.summary.dir, 1.0 / 3.0),
        "{:?}",
        together.summary
    );
    opts.household = Some(0);
    assert!(evaluate(&names, &samples, &policy(), "m", 8, &opts).is_err());
}
