//! Household + face (1:few) at the gates set to `face_mode = "household"`:
//! the resident keys in the household number on the gate's keypad, then
//! looks at the camera, and the face is matched against that household's
//! members only. A 1:few search's false-accept rate does not grow with the
//! register, so a face gate stays safe at thousands of residents.
//!
//! How a household number is keyed (the keypad has only digits, `*` and `#`):
//! - the console's short code for the household (1 to
//!   [`MAX_CODE_DIGITS`] digits, shorter than any visitor PIN) then `#`:
//!   `3251#`;
//! - or its address, parts separated by `*`: `3*2*501#` for 3-2-501 (for
//!   addresses whose parts are digits). At a household gate `*` after a digit
//!   is this separator; `**` clears what was typed.
//!
//! A number that names no household counts like a wrong PIN (reader lockout
//! and the keypad's PIN budget); a member of another household keying this
//! one counts like a card shown with someone else's face.

use std::fmt;

use crate::domain::ResidentId;

/// The longest household code: visitor PINs have at least 6 digits, so a
/// shorter entry at a household gate is a household number.
pub const MAX_CODE_DIGITS: usize = 5;

/// A household's row id (`household.id`).
pub type HouseholdId = i64;

/// A household number as keyed at the gate: a code (`3251`) or an address
/// with `*` between its parts (`3*2*501`). Shown in events as keyed.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HouseholdKey(String);

impl HouseholdKey {
    /// A keypad entry that is a household number: digits with single `*`
    /// between them (an address), or 1..=[`MAX_CODE_DIGITS`] digits (a code).
    /// Anything else (a longer run of digits: a visitor PIN) is `None`.
    pub fn from_keyed(keyed: &str) -> Option<HouseholdKey> {
        if keyed.is_empty() || !keyed.chars().all(|c| c.is_ascii_digit() || c == '*') {
            return None;
        }
        if keyed.contains('*') {
            let parts: Vec<&str> = keyed.split('*').collect();
            return (parts.len() == 3 && parts.iter().all(|p| !p.is_empty()))
                .then(|| HouseholdKey(keyed.to_string()));
        }
        (keyed.len() <= MAX_CODE_DIGITS).then(|| HouseholdKey(keyed.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address as the register writes it (`3-2-501`), when keyed as one.
    pub fn address(&self) -> Option<String> {
        self.0.contains('*').then(|| self.0.replace('*', "-"))
    }

    /// The code, when keyed as one.
    pub fn code(&self) -> Option<&str> {
        (!self.0.contains('*')).then_some(self.0.as_str())
    }
}

impl fmt::Debug for HouseholdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HouseholdKey({})", self.0)
    }
}

impl fmt::Display for HouseholdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether `code` is a household code the console may assign.
pub fn valid_code(code: &str) -> Result<(), String> {
    if code.is_empty() || code.len() > MAX_CODE_DIGITS || !code.chars().all(|c| c.is_ascii_digit())
    {
        return Err(format!(
            "a household code is 1 to {MAX_CODE_DIGITS} digits (what a keypad sends before #; visitor PINs are longer), got {code:?}"
        ));
    }
    Ok(())
}

/// The face seen at the gate after a household number was keyed, matched
/// against that household's members only (`face::recent`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MemberFace {
    /// No usable face was seen before the entry expired.
    NotSeen,
    /// No member of the household has an enrolled face.
    NotEnrolled,
    /// The face is this member's.
    Member { resident: ResidentId, score: f32 },
    /// Faces were seen, none a member's (`score`: the closest member's).
    NotMember { score: f32 },
    /// No camera at this gate is working: refused (there is no other factor).
    Unavailable,
}

impl MemberFace {
    pub fn score(&self) -> Option<f32> {
        match self {
            MemberFace::Member { score, .. } | MemberFace::NotMember { score } => Some(*score),
            MemberFace::NotSeen | MemberFace::NotEnrolled | MemberFace::Unavailable => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::TimeZone;

    use super::super::*;
    use super::*;
    use crate::config::{FaceFallback, FaceMode};
    use crate::domain::{masked_name, CardNumber, PersonStatus, ResidentRole};

    fn now() -> Now {
        Now {
            wall: chrono::Utc.with_ymd_and_hms(2025, 3, 12, 2, 0, 0).unwrap(),
            mono: Duration::from_secs(1000),
            clock_synced: true,
        }
    }

    fn person(id: i64, status: PersonStatus) -> PersonEntry {
        PersonEntry {
            id: ResidentId(id),
            masked_name: masked_name("王五"),
            role: ResidentRole::Family,
            status,
            valid_from: None,
            valid_until: None,
            permit_until: None,
            invalid: None,
        }
    }

    /// Household 1 at 3-2-501 (code 3251): R1, R2 (suspended).
    /// Household 2 at 3-2-502 (no code): R3. R4 lives nowhere; R1 holds card 10:1.
    fn register() -> Register {
        let mut r = Register::new(480);
        for (id, status) in [
            (1, PersonStatus::Active),
            (2, PersonStatus::Suspended),
            (3, PersonStatus::Active),
            (4, PersonStatus::Active),
        ] {
            r.add_person(person(id, status));
        }
        r.add_household(1, "3-2-501", Some("3251"));
        r.add_household(2, "3-2-502", None);
        r.add_household_member(1, ResidentId(1));
        r.add_household_member(1, ResidentId(2));
        r.add_household_member(2, ResidentId(3));
        r.add_card("10:1".into(), ResidentId(1));
        r
    }

    fn gate(mode: FaceMode) -> GateContext {
        GateContext {
            gate: "east".parse().unwrap(),
            direction: crate::config::Direction::In,
            paired_with: None,
            policy: AccessPolicy::default(),
            two_factor: TwoFactorRule {
                mode,
                hours: Vec::new(),
                face_wait: Duration::from_secs(10),
                fallback: FaceFallback::Card,
                household_wait: Duration::from_secs(10),
            },
        }
    }

    fn keyed(k: &str, face: MemberFace) -> Credential {
        Credential::HouseholdAndFace {
            keyed: HouseholdKey::from_keyed(k).unwrap(),
            face,
        }
    }

    fn member(id: i64) -> MemberFace {
        MemberFace::Member {
            resident: ResidentId(id),
            score: 0.7,
        }
    }

    #[test]
    fn household_decision_table() {
        let r = register();
        let s = AccessState::new();
        let household = gate(FaceMode::Household);
        let denied = |r| Outcome::Denied(r);
        let card = Credential::Card(
            CardNumber::Formatted {
                facility: 10,
                number: 1,
            }
            .into(),
        );
        let cases: Vec<(&str, Credential, &GateContext, Outcome)> = vec![
            (
                "a member's face after the address",
                keyed("3*2*501", member(1)),
                &household,
                Outcome::Granted,
            ),
            (
                "a member's face after the code",
                keyed("3251", member(1)),
                &household,
                Outcome::Granted,
            ),
            (
                "a household without a code, by address",
                keyed("3*2*502", member(3)),
                &household,
                Outcome::Granted,
            ),
            (
                "another household's member",
                keyed("3*2*501", member(3)),
                &household,
                denied(DenyReason::HouseholdMismatch),
            ),
            (
                "someone living nowhere",
                keyed("3*2*501", member(4)),
                &household,
                denied(DenyReason::HouseholdMismatch),
            ),
            (
                "faces seen, none a member's",
                keyed("3251", MemberFace::NotMember { score: 0.2 }),
                &household,
                denied(DenyReason::HouseholdMismatch),
            ),
            (
                "no face before the number expired",
                keyed("3251", MemberFace::NotSeen),
                &household,
                denied(DenyReason::HouseholdTimeout),
            ),
            (
                "no member has a face",
                keyed("3*2*502", MemberFace::NotEnrolled),
                &household,
                denied(DenyReason::FaceNotEnrolled),
            ),
            (
                "no working camera",
                keyed("3251", MemberFace::Unavailable),
                &household,
                denied(DenyReason::FaceUnavailable),
            ),
            (
                "a number that names no household",
                keyed("9*9*909", member(1)),
                &household,
                denied(DenyReason::UnknownHousehold),
            ),
            (
                "a code nobody has",
                keyed("1234", member(1)),
                &household,
                denied(DenyReason::UnknownHousehold),
            ),
            (
                "the register still refuses a member",
                keyed("3251", member(2)),
                &household,
                denied(DenyReason::Suspended),
            ),
            (
                "a face alone (1:N)",
                Credential::Face {
                    resident: ResidentId(1),
                    score: 0.8,
                },
                &household,
                denied(DenyReason::HouseholdRequired),
            ),
            (
                "a face alone of a suspended member: the register first",
                Credential::Face {
                    resident: ResidentId(2),
                    score: 0.8,
                },
                &household,
                denied(DenyReason::Suspended),
            ),
            (
                "a card opens a household gate alone",
                card.clone(),
                &household,
                Outcome::Granted,
            ),
        ];
        for (name, credential, gate, want) in cases {
            let d = decide(&r, &s, &credential, gate, &now());
            assert_eq!(d.outcome, want, "{name}");
            // Refusals of the number or the face name nobody; the register's
            // refusal of a matched member names that member, as for a card.
            let household_level = matches!(
                d.reason(),
                Some(
                    DenyReason::UnknownHousehold
                        | DenyReason::HouseholdMismatch
                        | DenyReason::HouseholdTimeout
                        | DenyReason::FaceNotEnrolled
                        | DenyReason::FaceUnavailable
                )
            );
            if household_level {
                assert!(d.subject.is_none(), "{name}: a refusal names no member");
            }
        }
        // 1:N and card + face gates are unchanged: a face alone opens 1:N.
        let d = decide(
            &r,
            &s,
            &Credential::Face {
                resident: ResidentId(1),
                score: 0.8,
            },
            &gate(FaceMode::OneToN),
            &now(),
        );
        assert!(d.is_granted());
    }

    #[test]
    fn household_and_face_is_a_keyed_guessable_credential_shown_as_keyed() {
        let c = keyed("3*2*501", member(1));
        assert_eq!(c.kind(), "household+face");
        assert_eq!(c.masked().as_deref(), Some("3*2*501"));
        assert_eq!(c.score(), Some(0.7));
        assert!(c.is_guessable() && c.is_keyed());
        assert!(Credential::is_guessable_kind("household+face"));
        assert_eq!(MemberFace::NotSeen.score(), None);
    }

    #[test]
    fn wrong_household_numbers_lock_the_reader_and_spend_the_pin_budget() {
        let r = register();
        let mut s = AccessState::new();
        let g = gate(FaceMode::Household);
        let at = now();
        let wrong = keyed("9999", member(1));
        let mut alarms = 0;
        for _ in 0..g.policy.lockout_attempts {
            let d = decide(&r, &s, &wrong, &g, &at);
            assert_eq!(d.reason(), Some(DenyReason::UnknownHousehold));
            alarms += usize::from(d.alarm.is_some());
            s.apply(&d, &wrong, &g, &at);
        }
        assert_eq!(alarms, 1, "the last wrong number raises the lockout alarm");
        assert_eq!(
            s.wrong_pins(&g.gate, at.mono, PIN_BUDGET_WINDOW),
            g.policy.lockout_attempts as usize
        );
        let d = decide(&r, &s, &keyed("3251", member(1)), &g, &at);
        assert_eq!(d.reason(), Some(DenyReason::ReaderLockedOut));
    }

    #[test]
    fn other_households_faces_count_toward_the_lockout_and_timeouts_do_not() {
        let r = register();
        let mut s = AccessState::new();
        let g = gate(FaceMode::Household);
        let at = now();
        let late = keyed("3251", MemberFace::NotSeen);
        for _ in 0..8 {
            let d = decide(&r, &s, &late, &g, &at);
            assert_eq!(d.reason(), Some(DenyReason::HouseholdTimeout));
            assert!(d.alarm.is_none() && d.keypad_alarm.is_none());
            s.apply(&d, &late, &g, &at);
        }
        let neighbour = keyed("3251", member(3));
        let mut last = None;
        for _ in 0..g.policy.lockout_attempts {
            let d = decide(&r, &s, &neighbour, &g, &at);
            s.apply(&d, &neighbour, &g, &at);
            last = Some(d);
        }
        assert!(matches!(
            last.unwrap().alarm,
            Some(AccessAlarm::ReaderLockout { .. })
        ));
        assert_eq!(s.wrong_pins(&g.gate, at.mono, PIN_BUDGET_WINDOW), 0);
    }

    #[test]
    fn a_spent_pin_budget_suspends_household_numbers_too() {
        let r = register();
        let mut s = AccessState::new();
        let mut g = gate(FaceMode::Household);
        // A budget smaller than the lockout, so the budget is what stops it.
        g.policy.pin_budget = Some(2);
        g.policy.lockout_attempts = 100;
        let at = now();
        for _ in 0..2 {
            let c = keyed("8888", member(1));
            let d = decide(&r, &s, &c, &g, &at);
            s.apply(&d, &c, &g, &at);
        }
        let d = decide(&r, &s, &keyed("3251", member(1)), &g, &at);
        assert_eq!(d.reason(), Some(DenyReason::PinEntrySuspended));
    }

    #[test]
    fn keyed_addresses_and_short_codes_are_household_numbers_and_pins_are_not() {
        let k = HouseholdKey::from_keyed("3*2*501").unwrap();
        assert_eq!(k.address().as_deref(), Some("3-2-501"));
        assert_eq!(k.code(), None);
        let k = HouseholdKey::from_keyed("3251").unwrap();
        assert_eq!((k.code(), k.address()), (Some("3251"), None));
        assert_eq!(k.to_string(), "3251");
        for not in [
            "", "246810", "3*2", "3**501", "*3*2*501", "3*2*501*", "3-2-501", "3*2*5*1",
        ] {
            assert!(HouseholdKey::from_keyed(not).is_none(), "{not:?}");
        }
        assert!(valid_code("3251").is_ok());
        for bad in ["", "123456", "32a", "3-2"] {
            assert!(
                valid_code(bad).unwrap_err().contains("1 to 5 digits"),
                "{bad:?}"
            );
        }
    }
}
