//! Card + face at the gates (or hours) where a 1:N face search is not safe
//! enough for the register's size: the card names the person, and the face
//! seen at the gate must match *that* person's enrolled faces (a 1:1 check,
//! whose false-accept rate does not grow with the register). There a card
//! alone waits for, or is refused without, its owner's face, and a face
//! alone does not open. PINs, plates, remote opens and the exit button are
//! not affected.

use std::time::Duration;

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};

use crate::config::{self, FaceFallback, FaceMode, WeeklyHours};

/// The face seen with a card, checked 1:1 against the card owner's enrolled
/// faces by the face policy (`face::MatchPolicy::verify`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FaceCheck {
    /// No usable face was seen at the gate in time.
    NotSeen,
    /// The card owner has no enrolled face to compare with.
    NotEnrolled,
    /// The face matches the card owner.
    Match { score: f32 },
    /// The face is not the card owner's.
    Mismatch { score: f32 },
    /// No camera at this gate is working (lost, or face recognition out of
    /// service): the gate does as its `face_unavailable` setting says (by
    /// default the card alone opens, flagged in the event).
    Unavailable,
}

impl FaceCheck {
    pub fn score(&self) -> Option<f32> {
        match self {
            FaceCheck::Match { score } | FaceCheck::Mismatch { score } => Some(*score),
            FaceCheck::NotSeen | FaceCheck::NotEnrolled | FaceCheck::Unavailable => None,
        }
    }
}

/// A gate's face mode and its settings (`face_mode`, or `two_factor`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TwoFactorRule {
    /// 1:N (a face alone opens), household + face, or card + face.
    pub mode: FaceMode,
    /// Card + face only at these hours; empty: at all hours.
    pub hours: Vec<WeeklyHours>,
    /// How long the gate may hold a card for its owner's face
    /// (`face::recent::RecentFaces::check_owner` over that time) before
    /// deciding with [`FaceCheck::NotSeen`].
    pub face_wait: Duration,
    /// What a card does when no camera works.
    pub fallback: FaceFallback,
    /// How long a household number keyed at a household gate waits for a
    /// member's face before it expires.
    pub household_wait: Duration,
}

/// Whether a gate needs two factors now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Required {
    No,
    Yes,
    /// Only because of the hours, which depend on the wall clock: with an
    /// unsynchronised clock a refusal on these grounds is overridden and flagged.
    ByHours,
}

impl TwoFactorRule {
    pub fn from_config(gate: &config::Gate) -> TwoFactorRule {
        TwoFactorRule {
            mode: gate.face_mode(),
            hours: gate.two_factor_hours.clone(),
            face_wait: Duration::from_secs(u64::from(gate.face_wait_s)),
            fallback: gate.face_unavailable,
            household_wait: Duration::from_secs(u64::from(gate.household_wait_s)),
        }
    }

    /// Whether card + face is needed at `now` (site local time from `offset`).
    pub fn required(&self, now: DateTime<Utc>, offset: FixedOffset) -> Required {
        if self.mode != FaceMode::CardAndFace {
            return Required::No;
        }
        if self.hours.is_empty() {
            return Required::Yes;
        }
        let local = now.with_timezone(&offset);
        let day = local.weekday().num_days_from_monday();
        let minute = (local.hour() * 60 + local.minute()) as u16;
        if self.hours.iter().any(|h| h.contains(day, minute)) {
            Required::ByHours
        } else {
            Required::No
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::*;
    use super::*;
    use crate::domain::{
        masked_name, CardNumber, CardRead, PersonStatus, ResidentId, ResidentRole,
    };

    const OFFSET: i32 = 480;

    fn now(local: &str, synced: bool) -> Now {
        let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
        Now {
            wall: chrono::FixedOffset::east_opt(OFFSET * 60)
                .unwrap()
                .from_local_datetime(&naive)
                .unwrap()
                .with_timezone(&Utc),
            mono: Duration::from_secs(1000),
            clock_synced: synced,
        }
    }

    fn person(id: i64, status: PersonStatus) -> PersonEntry {
        PersonEntry {
            id: ResidentId(id),
            masked_name: masked_name("张三"),
            role: ResidentRole::Owner,
            status,
            valid_from: None,
            valid_until: None,
            permit_until: None,
            invalid: None,
        }
    }

    /// R1 (card 1) and R2 (card 2) active, R3 (card 3) suspended.
    fn register() -> Register {
        let mut r = Register::new(OFFSET);
        r.add_person(person(1, PersonStatus::Active));
        r.add_person(person(2, PersonStatus::Active));
        r.add_person(person(3, PersonStatus::Suspended));
        for i in 1..=3 {
            r.add_card(format!("10:{i}"), ResidentId(i));
        }
        r
    }

    fn card(n: u64) -> CardRead {
        CardNumber::Formatted {
            facility: 10,
            number: n,
        }
        .into()
    }

    fn gate(mode: FaceMode, hours: &[&str]) -> GateContext {
        GateContext {
            gate: "east".parse().unwrap(),
            direction: config::Direction::In,
            paired_with: None,
            policy: AccessPolicy::default(),
            two_factor: TwoFactorRule {
                mode,
                hours: hours.iter().map(|h| h.parse().unwrap()).collect(),
                face_wait: Duration::from_secs(10),
                fallback: FaceFallback::Card,
                household_wait: Duration::from_secs(10),
            },
        }
    }

    fn with_face(n: u64, face: FaceCheck) -> Credential {
        Credential::CardAndFace {
            card: card(n),
            face,
        }
    }

    fn face_of(id: i64) -> Credential {
        Credential::Face {
            resident: ResidentId(id),
            score: 0.8,
        }
    }

    #[test]
    fn two_factor_decision_table() {
        let r = register();
        let s = AccessState::new();
        let always = gate(FaceMode::CardAndFace, &[]);
        let nights = gate(FaceMode::CardAndFace, &["daily 22:00-06:00"]);
        let off = gate(FaceMode::OneToN, &[]);
        let day = "2025-03-12 10:00";
        let night = "2025-03-12 23:30";
        let good = FaceCheck::Match { score: 0.71 };
        let other = FaceCheck::Mismatch { score: 0.12 };
        let denied = |r| Outcome::Denied(r);
        let cases: Vec<(&str, Credential, &GateContext, &str, Outcome)> = vec![
            (
                "card alone at a card+face gate",
                Credential::Card(card(1)),
                &always,
                day,
                denied(DenyReason::FaceRequired),
            ),
            (
                "card with its owner's face",
                with_face(1, good),
                &always,
                day,
                Outcome::Granted,
            ),
            (
                "card with someone else's face",
                with_face(1, other),
                &always,
                day,
                denied(DenyReason::FaceMismatch),
            ),
            (
                "card, no face seen in time",
                with_face(1, FaceCheck::NotSeen),
                &always,
                day,
                denied(DenyReason::FaceRequired),
            ),
            (
                "card of a person with no enrolled face",
                with_face(2, FaceCheck::NotEnrolled),
                &always,
                day,
                denied(DenyReason::FaceNotEnrolled),
            ),
            (
                "face alone (1:N) at a card+face gate",
                face_of(1),
                &always,
                day,
                denied(DenyReason::CardRequired),
            ),
            (
                "the register still refuses first",
                with_face(3, good),
                &always,
                day,
                denied(DenyReason::Suspended),
            ),
            (
                "unknown card with a face",
                with_face(9, good),
                &always,
                day,
                denied(DenyReason::UnknownCredential),
            ),
            (
                "card alone by day at a night gate",
                Credential::Card(card(1)),
                &nights,
                day,
                Outcome::Granted,
            ),
            (
                "face alone by day at a night gate",
                face_of(1),
                &nights,
                day,
                Outcome::Granted,
            ),
            (
                "card alone at night",
                Credential::Card(card(1)),
                &nights,
                night,
                denied(DenyReason::FaceRequired),
            ),
            (
                "card alone at 05:00, still night",
                Credential::Card(card(1)),
                &nights,
                "2025-03-13 05:00",
                denied(DenyReason::FaceRequired),
            ),
            (
                "card + face at night",
                with_face(1, good),
                &nights,
                night,
                Outcome::Granted,
            ),
            (
                "face alone at night",
                face_of(2),
                &nights,
                night,
                denied(DenyReason::CardRequired),
            ),
            (
                "a gate without two factors ignores the face",
                with_face(1, other),
                &off,
                day,
                Outcome::Granted,
            ),
            (
                "card alone where two factors are off",
                Credential::Card(card(1)),
                &off,
                night,
                Outcome::Granted,
            ),
        ];
        for (name, credential, gate, at, want) in cases {
            let d = decide(&r, &s, &credential, gate, &now(at, true));
            assert_eq!(d.outcome, want, "{name}");
            if want != denied(DenyReason::UnknownCredential) {
                assert!(d.subject.is_some(), "{name}: names the card owner");
            }
        }
    }

    #[test]
    fn an_unsynchronised_clock_applies_the_hours_as_the_trusted_clock_reads() {
        let r = register();
        let s = AccessState::new();
        let nights = gate(FaceMode::CardAndFace, &["daily 22:00-06:00"]);
        let d = decide(
            &r,
            &s,
            &Credential::Card(card(1)),
            &nights,
            &now("2025-03-12 23:30", false),
        );
        assert_eq!(d.reason(), Some(DenyReason::FaceRequired), "{d:?}");
        assert!(!d.clock_override);
        let d = decide(
            &r,
            &s,
            &Credential::Card(card(1)),
            &nights,
            &now("2025-03-12 12:00", false),
        );
        assert!(d.is_granted() && !d.clock_override, "{d:?}");
        let always = gate(FaceMode::CardAndFace, &[]);
        let d = decide(
            &r,
            &s,
            &Credential::Card(card(1)),
            &always,
            &now("2025-03-12 23:30", false),
        );
        assert_eq!(d.reason(), Some(DenyReason::FaceRequired));
        assert!(!d.clock_override);
    }

    #[test]
    fn card_and_face_is_reported_as_one_guessable_credential() {
        let c = with_face(1, FaceCheck::Match { score: 0.7 });
        assert_eq!(c.kind(), "card+face");
        assert_eq!(c.masked(), Credential::Card(card(1)).masked());
        assert!(c.is_guessable());
        assert_eq!(FaceCheck::Mismatch { score: 0.2 }.score(), Some(0.2));
        assert_eq!(FaceCheck::NotSeen.score(), None);
    }

    #[test]
    fn unknown_cards_with_a_face_still_count_towards_the_lockout() {
        let r = register();
        let mut s = AccessState::new();
        let always = gate(FaceMode::CardAndFace, &[]);
        let at = now("2025-03-12 10:00", true);
        let c = with_face(99, FaceCheck::NotEnrolled);
        let mut last = None;
        for _ in 0..5 {
            let d = decide(&r, &s, &c, &always, &at);
            s.apply(&d, &c, &always, &at);
            last = Some(d);
        }
        assert!(last.unwrap().alarm.is_some());
        let d = decide(
            &r,
            &s,
            &with_face(1, FaceCheck::Match { score: 0.9 }),
            &always,
            &at,
        );
        assert_eq!(d.reason(), Some(DenyReason::ReaderLockedOut));
    }

    #[test]
    fn a_card_shown_again_and_again_with_someone_elses_face_locks_the_reader() {
        let r = register();
        let mut s = AccessState::new();
        let always = gate(FaceMode::CardAndFace, &[]);
        let at = now("2025-03-12 10:00", true);
        let stranger = with_face(1, FaceCheck::Mismatch { score: 0.1 });
        let mut alarms = 0;
        for _ in 0..5 {
            let d = decide(&r, &s, &stranger, &always, &at);
            assert_eq!(d.reason(), Some(DenyReason::FaceMismatch));
            alarms += usize::from(d.alarm.is_some());
            s.apply(&d, &stranger, &always, &at);
        }
        assert_eq!(alarms, 1, "the fifth attempt raises the lockout alarm");
        let owner = with_face(1, FaceCheck::Match { score: 0.9 });
        let d = decide(&r, &s, &owner, &always, &at);
        assert_eq!(d.reason(), Some(DenyReason::ReaderLockedOut));
    }

    #[test]
    fn a_face_not_seen_in_time_does_not_count_toward_the_lockout() {
        let r = register();
        let mut s = AccessState::new();
        let always = gate(FaceMode::CardAndFace, &[]);
        let at = now("2025-03-12 10:00", true);
        let looked_away = with_face(1, FaceCheck::NotSeen);
        for _ in 0..8 {
            let d = decide(&r, &s, &looked_away, &always, &at);
            assert_eq!(d.reason(), Some(DenyReason::FaceRequired));
            assert!(d.alarm.is_none());
            s.apply(&d, &looked_away, &always, &at);
        }
    }

    #[test]
    fn without_a_working_camera_the_card_alone_opens_but_the_register_still_refuses() {
        let r = register();
        let s = AccessState::new();
        let always = gate(FaceMode::CardAndFace, &[]);
        let at = now("2025-03-12 10:00", true);
        let d = decide(&r, &s, &with_face(1, FaceCheck::Unavailable), &always, &at);
        assert!(d.is_granted(), "{d:?}");
        let d = decide(&r, &s, &with_face(3, FaceCheck::Unavailable), &always, &at);
        assert_eq!(d.reason(), Some(DenyReason::Suspended));
        assert_eq!(FaceCheck::Unavailable.score(), None);
        // A site that prefers to refuse says so per gate.
        let mut strict = always.clone();
        strict.two_factor.fallback = FaceFallback::Refuse;
        let d = decide(&r, &s, &with_face(1, FaceCheck::Unavailable), &strict, &at);
        assert_eq!(d.reason(), Some(DenyReason::FaceUnavailable));
        assert!(d.alarm.is_none(), "a dead camera is not a guessing attempt");
    }
}
