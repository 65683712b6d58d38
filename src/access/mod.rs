//! The access decision: a pure function of the register, the access state
//! (lockouts, anti-passback, visitor uses), the credential, the gate and the
//! time. No I/O, so its tests are tables of cases and it runs in microseconds.
//!
//! New credential sources plug in as [`Credential`] variants: the face
//! pipeline presents `Face { resident, score }`, the LPR camera `Plate`, the
//! station's signed command `Remote`. The daemon calls [`decide`], then
//! [`AccessState::apply`] with the same arguments.
//!
//! Time: `now.wall` is the trusted "now", max(system clock, trusted time
//! floor) (see `crate::clock`), so it never runs backwards past a time the
//! gateway had reason to trust.
//!
//! Architecture Invariant: every expiry in the past of `now.wall` is enforced,
//! synchronised clock or not: lease end, residence-permit end, visitor-pass
//! end, the end of a group's hours (and card + face hours apply as the clock
//! reads). Only "not yet valid" checks (a lease or pass that starts later, a
//! group window that opens later today) are overridden while the clock is
//! unsynchronised (a Pi without a real-time clock boots with an old time),
//! and the decision is flagged (`clock_override`).

mod household;
mod register;
mod state;
mod two_factor;

use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

pub use household::{valid_code as valid_household_code, HouseholdId, HouseholdKey, MemberFace};
pub use register::{Bound, GroupId, PassEntry, PersonEntry, Register, WatchHit, Window};
pub use state::{AccessState, PastEvent, PastKind, SiteEvent, SiteKind};
pub use two_factor::{FaceCheck, Required as TwoFactorRequired, TwoFactorRule};

use crate::config::{self, Direction, FaceMode};
use crate::domain::{CardRead, GateId, PersonStatus, Plate, ResidentId};
use crate::event::EventReason;
use crate::secret::DeviceSecret;

/// The keyed hash of a keypad PIN (`secret.keyed_hash("pin", digits)`); the
/// digits themselves never leave the reader task.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PinHash(pub [u8; 32]);

impl std::fmt::Debug for PinHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinHash(…)")
    }
}

impl PinHash {
    pub fn of(secret: &DeviceSecret, digits: &str) -> PinHash {
        PinHash(secret.keyed_hash("pin", digits.as_bytes()))
    }
}

/// Something presented at a gate.
#[derive(Clone, Debug, PartialEq)]
pub enum Credential {
    /// A card's numbers and the frame format they came in.
    Card(CardRead),
    Pin(PinHash),
    /// A face the pipeline matched to a resident (1:N, after confirmation).
    Face {
        resident: ResidentId,
        score: f32,
    },
    /// A face that matched a resident but failed the liveness check over its
    /// confirming frames: a photo or a screen held up to the camera. Always
    /// refused; counts toward the reader lockout like a guessed card.
    SpoofedFace {
        resident: ResidentId,
        score: f32,
        liveness: f32,
    },
    /// A face the pipeline matched to a resident, whose frames also matched
    /// an entry of the station's face watchlist that asks to refuse entry
    /// (`entry`: the station's reference). Refused, `watchlisted`, like a
    /// listed card; the camera's confirmation raises the alarm with its
    /// snapshot, so the decision raises none.
    WatchlistedFace {
        resident: ResidentId,
        score: f32,
        entry: String,
    },
    /// A face the cameras confirmed as nobody in the register (`score`: the
    /// closest resident's, below the threshold). Always refused, `unknown_face`;
    /// not a guess (a passer-by is no attacker), so no lockout.
    UnknownFace {
        score: Option<f32>,
    },
    Plate(Plate),
    /// A plate reading that two or more registered plates fit within the
    /// camera's OCR tolerance (`read`: the camera's text). Refused,
    /// `ambiguous_plate`: opening for either could be opening for the wrong car.
    AmbiguousPlate {
        read: String,
    },
    /// A card presented with the face seen at the same gate, checked 1:1
    /// against the card owner's enrolled faces (two-factor gates).
    CardAndFace {
        card: CardRead,
        face: FaceCheck,
    },
    /// A household number keyed at a household-mode gate and the face seen
    /// after it, matched against that household's members (1:few).
    HouseholdAndFace {
        keyed: HouseholdKey,
        face: MemberFace,
    },
    /// A manual or remote open: `officer` is the station officer's id, or
    /// `os:<user>` for the property manager's `gatehouse gate open`.
    Remote {
        officer: String,
        reason: String,
    },
    ExitButton,
}

impl Credential {
    /// The event's `credential_kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Card(_) => "card",
            Credential::Pin(_) => "pin",
            Credential::Face { .. }
            | Credential::SpoofedFace { .. }
            | Credential::WatchlistedFace { .. }
            | Credential::UnknownFace { .. } => "face",
            Credential::Plate(_) | Credential::AmbiguousPlate { .. } => "plate",
            Credential::CardAndFace { .. } => "card+face",
            Credential::HouseholdAndFace { .. } => "household+face",
            Credential::Remote { .. } => "remote",
            Credential::ExitButton => "exit_button",
        }
    }

    /// The match score the event carries (faces).
    pub fn score(&self) -> Option<f32> {
        match self {
            Credential::Face { score, .. }
            | Credential::SpoofedFace { score, .. }
            | Credential::WatchlistedFace { score, .. } => Some(*score),
            Credential::UnknownFace { score } => *score,
            Credential::CardAndFace { face, .. } => face.score(),
            Credential::HouseholdAndFace { face, .. } => face.score(),
            _ => None,
        }
    }

    /// The event's `credential_masked`: enough to tell apart, not to clone.
    pub fn masked(&self) -> Option<String> {
        match self {
            Credential::Card(c) => Some(c.masked()),
            Credential::Pin(_) => Some("******".into()),
            Credential::Face { resident, .. }
            | Credential::SpoofedFace { resident, .. }
            | Credential::WatchlistedFace { resident, .. } => Some(resident.to_string()),
            Credential::UnknownFace { .. } => None,
            Credential::Plate(p) => Some(p.masked()),
            // As the camera read it (the event has always carried the reading).
            Credential::AmbiguousPlate { read } => Some(read.clone()),
            Credential::CardAndFace { card, .. } => Some(card.masked()),
            // The household number as keyed: an address or a code, no secret.
            Credential::HouseholdAndFace { keyed, .. } => Some(keyed.to_string()),
            Credential::Remote { officer, .. } => Some(officer.clone()),
            Credential::ExitButton => None,
        }
    }

    /// Typed on the gate's keypad: counts toward its PIN budget.
    pub fn is_keyed(&self) -> bool {
        matches!(
            self,
            Credential::Pin(_) | Credential::HouseholdAndFace { .. }
        )
    }

    /// Guessable credentials, which count towards a reader lockout (a
    /// presentation attack too: trying photos is guessing).
    pub fn is_guessable(&self) -> bool {
        matches!(self, Credential::SpoofedFace { .. }) || Credential::is_guessable_kind(self.kind())
    }

    /// [`Credential::is_guessable`] for a stored event's `credential_kind`
    /// (rebuilding lockouts after a restart).
    pub fn is_guessable_kind(kind: &str) -> bool {
        matches!(kind, "card" | "pin" | "card+face" | "household+face")
    }
}

/// The settings the decision needs from `[access]`.
#[derive(Clone, Copy, Debug)]
pub struct AccessPolicy {
    pub lockout_attempts: u32,
    pub lockout_window: Duration,
    pub lockout_for: Duration,
    pub anti_passback: bool,
    /// A remembered direction older than this no longer refuses (`None`: never expires).
    pub anti_passback_reset: Option<Duration>,
    /// Wrong PINs per keypad within [`PIN_BUDGET_WINDOW`] before PIN entry
    /// there is suspended (`None`: no budget).
    pub pin_budget: Option<u32>,
    /// Wrong PINs within `pin_alarm_window` that raise the `pin_guessing`
    /// alarm (`None`: off).
    pub pin_alarm_failures: Option<u32>,
    pub pin_alarm_window: Duration,
    /// A card opens only in the format it was enrolled with.
    pub card_format_strict: bool,
}

/// The long window of the keypad's PIN budget: slow guessing under the
/// per-minute lockout still meets it.
pub const PIN_BUDGET_WINDOW: Duration = Duration::from_secs(24 * 3600);

impl AccessPolicy {
    pub fn from_config(access: &config::Access) -> AccessPolicy {
        AccessPolicy {
            lockout_attempts: access.lockout_attempts.max(1),
            lockout_window: Duration::from_secs(u64::from(access.lockout_window_s)),
            lockout_for: Duration::from_secs(u64::from(access.lockout_s)),
            anti_passback: access.anti_passback,
            anti_passback_reset: (access.anti_passback_reset_h > 0)
                .then(|| Duration::from_secs(u64::from(access.anti_passback_reset_h) * 3600)),
            pin_budget: (access.pin_failures_per_day > 0).then_some(access.pin_failures_per_day),
            pin_alarm_failures: (access.pin_alarm_failures > 0)
                .then_some(access.pin_alarm_failures),
            pin_alarm_window: Duration::from_secs(u64::from(access.pin_alarm_window_min) * 60),
            card_format_strict: access.card_format_strict,
        }
    }
}

impl Default for AccessPolicy {
    fn default() -> Self {
        AccessPolicy::from_config(&config::Access::default())
    }
}

/// What the decision knows about the gate.
#[derive(Clone, Debug)]
pub struct GateContext {
    pub gate: GateId,
    pub direction: Direction,
    pub paired_with: Option<GateId>,
    pub policy: AccessPolicy,
    /// Card + face at this gate (at all or some hours).
    pub two_factor: TwoFactorRule,
}

impl GateContext {
    pub fn from_config(gate: &config::Gate, access: &config::Access) -> GateContext {
        GateContext {
            gate: gate.id.clone(),
            direction: gate.direction,
            paired_with: gate.paired_with.clone(),
            policy: AccessPolicy::from_config(access),
            two_factor: TwoFactorRule::from_config(gate),
        }
    }
}

/// The time of a decision: wall clock for dates and windows, monotonic for
/// lockouts (immune to clock steps), and whether the wall clock is trusted.
#[derive(Clone, Copy, Debug)]
pub struct Now {
    /// max(system clock, trusted time floor): expiries before it are enforced.
    pub wall: DateTime<Utc>,
    pub mono: Duration,
    pub clock_synced: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DenyReason {
    UnknownCredential,
    Suspended,
    MovedOut,
    /// `valid_until` (lease end) has passed.
    LeaseEnded,
    /// The residence permit (`residence_permit_until`) has expired.
    PermitEnded,
    NotYetValid,
    /// None of the person's groups has this gate.
    GateNotAllowed,
    OutsideTimeWindow,
    VisitorPassExpired,
    VisitorPassNotYetValid,
    VisitorPassUsedUp,
    VisitorPassWrongGate,
    VisitorPassRevoked,
    /// The visitor's host is suspended or moved out.
    HostInactive,
    AntiPassback,
    ReaderLockedOut,
    /// A two-factor gate: the card's owner must show their face too.
    FaceRequired,
    /// A two-factor gate: the face seen is not the card owner's.
    FaceMismatch,
    /// A two-factor gate: the card's owner has no enrolled face.
    FaceNotEnrolled,
    /// A two-factor gate: a face alone does not open; present the card too.
    CardRequired,
    /// A two-factor gate set to refuse without a working camera (`face_unavailable = "refuse"`).
    FaceUnavailable,
    /// The register row could not be read; refused rather than guessed.
    InvalidRecord,
    /// The station watches this card or plate and asked for entry to be refused.
    Watchlisted,
    /// A card's numbers in another Wiegand format than the card enrolled
    /// (a 34-bit frame carrying a 26-bit card's numbers): not that card.
    CardFormatMismatch,
    /// Too many wrong PINs at this keypad within a day: PIN entry is
    /// suspended there (cards and faces still work).
    PinEntrySuspended,
    /// A face failed the liveness check: a photo or screen, not a person.
    PresentationAttack,
    /// A face the cameras confirmed as nobody in the register.
    UnknownFace,
    /// Two registered plates fit the camera's reading: open for neither.
    AmbiguousPlate,
    /// A household gate: a face alone does not open; key the household number first.
    HouseholdRequired,
    /// A household gate: the keyed number names no household (counts like a wrong PIN).
    UnknownHousehold,
    /// A household gate: the face seen is no member of the keyed household.
    HouseholdMismatch,
    /// A household gate: no face was seen before the keyed number expired.
    HouseholdTimeout,
}

impl DenyReason {
    /// The event's `reason` string.
    pub fn as_str(self) -> &'static str {
        EventReason::from(self).as_str()
    }
}

/// Every refusal is an event reason; spelled once, in [`EventReason`].
impl From<DenyReason> for EventReason {
    fn from(r: DenyReason) -> EventReason {
        match r {
            DenyReason::UnknownCredential => EventReason::UnknownCredential,
            DenyReason::Suspended => EventReason::Suspended,
            DenyReason::MovedOut => EventReason::MovedOut,
            DenyReason::LeaseEnded => EventReason::LeaseEnded,
            DenyReason::PermitEnded => EventReason::PermitEnded,
            DenyReason::NotYetValid => EventReason::NotYetValid,
            DenyReason::GateNotAllowed => EventReason::GateNotAllowed,
            DenyReason::OutsideTimeWindow => EventReason::OutsideTimeWindow,
            DenyReason::VisitorPassExpired => EventReason::VisitorPassExpired,
            DenyReason::VisitorPassNotYetValid => EventReason::VisitorPassNotYetValid,
            DenyReason::VisitorPassUsedUp => EventReason::VisitorPassUsedUp,
            DenyReason::VisitorPassWrongGate => EventReason::VisitorPassWrongGate,
            DenyReason::VisitorPassRevoked => EventReason::VisitorPassRevoked,
            DenyReason::HostInactive => EventReason::HostInactive,
            DenyReason::AntiPassback => EventReason::AntiPassback,
            DenyReason::ReaderLockedOut => EventReason::ReaderLockedOut,
            DenyReason::FaceRequired => EventReason::FaceRequired,
            DenyReason::FaceMismatch => EventReason::FaceMismatch,
            DenyReason::FaceNotEnrolled => EventReason::FaceNotEnrolled,
            DenyReason::CardRequired => EventReason::CardRequired,
            DenyReason::FaceUnavailable => EventReason::FaceUnavailable,
            DenyReason::InvalidRecord => EventReason::InvalidRecord,
            DenyReason::Watchlisted => EventReason::Watchlisted,
            DenyReason::CardFormatMismatch => EventReason::CardFormatMismatch,
            DenyReason::PinEntrySuspended => EventReason::PinEntrySuspended,
            DenyReason::PresentationAttack => EventReason::PresentationAttack,
            DenyReason::UnknownFace => EventReason::UnknownFace,
            DenyReason::AmbiguousPlate => EventReason::AmbiguousPlate,
            DenyReason::HouseholdRequired => EventReason::HouseholdRequired,
            DenyReason::UnknownHousehold => EventReason::UnknownHousehold,
            DenyReason::HouseholdMismatch => EventReason::HouseholdMismatch,
            DenyReason::HouseholdTimeout => EventReason::HouseholdTimeout,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "reason")]
pub enum Outcome {
    Granted,
    Denied(DenyReason),
}

/// Who the credential belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Subject {
    Resident {
        id: ResidentId,
        masked_name: String,
    },
    Visitor {
        pass: i64,
        masked_name: String,
        host: ResidentId,
        /// Whether this grant uses up one of a limited number of uses.
        limited: bool,
    },
}

/// An alarm the decision raises alongside its outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum AccessAlarm {
    /// The Nth unknown credential within the window: the reader is locked out.
    ReaderLockout { attempts: u32, lockout_s: u64 },
    /// The card or plate is on the station's watchlist: raise an alarm at once.
    Watchlist { deny: bool },
}

/// An alarm of the keypad's long-window PIN budget. Separate from
/// [`AccessAlarm`] because one wrong PIN can also lock the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum KeypadAlarm {
    /// Wrong PINs keep coming at a rate that is no typo: someone is guessing.
    PinGuessing { wrong_pins: u32, window_min: u64 },
    /// The day's budget of wrong PINs is spent: PIN entry is suspended at this
    /// keypad until the oldest of them is a day old.
    PinEntrySuspended {
        wrong_pins: u32,
        window_h: u64,
        resumes_in_s: u64,
    },
}

impl KeypadAlarm {
    /// The alarm event's `reason`.
    pub fn reason(&self) -> EventReason {
        match self {
            KeypadAlarm::PinGuessing { .. } => EventReason::PinGuessing,
            KeypadAlarm::PinEntrySuspended { .. } => EventReason::PinEntrySuspended,
        }
    }
}

impl AccessAlarm {
    /// The alarm event's `reason`.
    pub fn reason(&self) -> EventReason {
        match self {
            AccessAlarm::ReaderLockout { .. } => EventReason::ReaderLockout,
            AccessAlarm::Watchlist { .. } => EventReason::WatchlistMatch,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub subject: Option<Subject>,
    pub alarm: Option<AccessAlarm>,
    /// The keypad's PIN budget alarm, if this wrong PIN raised one.
    pub keypad_alarm: Option<KeypadAlarm>,
    /// A "not yet valid" check (a start date, a window that opens later
    /// today) would have refused, but the clock is not synchronised, so it was
    /// not applied. Expiries are never overridden.
    pub clock_override: bool,
}

impl Decision {
    pub fn is_granted(&self) -> bool {
        self.outcome == Outcome::Granted
    }

    pub fn reason(&self) -> Option<DenyReason> {
        match self.outcome {
            Outcome::Granted => None,
            Outcome::Denied(r) => Some(r),
        }
    }

    fn granted(subject: Option<Subject>) -> Decision {
        Decision {
            outcome: Outcome::Granted,
            subject,
            alarm: None,
            keypad_alarm: None,
            clock_override: false,
        }
    }

    fn denied(reason: DenyReason, subject: Option<Subject>) -> Decision {
        Decision {
            outcome: Outcome::Denied(reason),
            subject,
            alarm: None,
            keypad_alarm: None,
            clock_override: false,
        }
    }
}

/// Decides whether `credential` opens `gate` at `now`.
pub fn decide(
    register: &Register,
    state: &AccessState,
    credential: &Credential,
    gate: &GateContext,
    now: &Now,
) -> Decision {
    if credential.is_guessable() && state.reader_locked(&gate.gate, now.mono) {
        return Decision::denied(DenyReason::ReaderLockedOut, None);
    }
    if credential.is_keyed() && state.pin_entry_suspended(gate, now.mono) {
        return Decision::denied(DenyReason::PinEntrySuspended, None);
    }
    let mut decision = decide_register(register, state, credential, gate, now);
    // The station's watchlist overrides nothing silently: a hit always alarms,
    // and refuses only when the station asked for that.
    if let Some(deny) = register.watch_hit(credential, now.wall) {
        if deny {
            decision.outcome = Outcome::Denied(DenyReason::Watchlisted);
        }
        decision.alarm = Some(AccessAlarm::Watchlist { deny });
    }
    if let Credential::WatchlistedFace { .. } = credential {
        // Whoever it matched, and whatever the register says: refused. The
        // face's alarm came from the cameras, with the face's snapshot.
        decision.outcome = Outcome::Denied(DenyReason::Watchlisted);
    }
    decision
}

fn decide_register(
    register: &Register,
    state: &AccessState,
    credential: &Credential,
    gate: &GateContext,
    now: &Now,
) -> Decision {
    match credential {
        Credential::ExitButton | Credential::Remote { .. } => Decision::granted(None),
        Credential::Card(card) => match card_holder(register, card, gate) {
            Ok(id) => two_factors(
                resident(register, state, id, gate, now),
                register,
                state,
                gate,
                now,
                Some(FaceCheck::NotSeen),
            ),
            Err(reason) => guess_failed(reason, state, credential, gate, now),
        },
        Credential::CardAndFace { card, face } => match card_holder(register, card, gate) {
            Ok(id) => two_factors(
                resident(register, state, id, gate, now),
                register,
                state,
                gate,
                now,
                Some(*face),
            ),
            Err(reason) => guess_failed(reason, state, credential, gate, now),
        },
        Credential::Face { resident: id, .. }
        | Credential::WatchlistedFace { resident: id, .. } => two_factors(
            resident(register, state, *id, gate, now),
            register,
            state,
            gate,
            now,
            None,
        ),
        Credential::SpoofedFace { resident: id, .. } => {
            // Whose photo it was is named (the station wants to know); the
            // attempt counts toward the lockout like a guessed card.
            let subject = register.persons.get(id).map(|p| Subject::Resident {
                id: *id,
                masked_name: p.masked_name.clone(),
            });
            let mut d = Decision::denied(DenyReason::PresentationAttack, subject);
            d.alarm = lockout_alarm(state, gate, now);
            d
        }
        Credential::UnknownFace { .. } => Decision::denied(DenyReason::UnknownFace, None),
        Credential::HouseholdAndFace { keyed, face } => {
            household_and_face(register, state, credential, keyed, *face, gate, now)
        }
        Credential::AmbiguousPlate { .. } => Decision::denied(DenyReason::AmbiguousPlate, None),
        Credential::Pin(hash) => match register.pass_by_pin.get(&hash.0) {
            Some(pass) => visitor(register, state, *pass, gate, now),
            None => unknown(state, credential, gate, now),
        },
        Credential::Plate(plate) => {
            if let Some(id) = register.plates.get(plate) {
                return resident(register, state, *id, gate, now);
            }
            let passes = register
                .passes_by_plate
                .get(plate)
                .map_or(&[][..], Vec::as_slice);
            // Several passes for one car: the first that admits wins, else the
            // last refusal explains why.
            let mut last = None;
            for pass in passes {
                let d = visitor(register, state, *pass, gate, now);
                if d.is_granted() {
                    return d;
                }
                last = Some(d);
            }
            last.unwrap_or_else(|| unknown(state, credential, gate, now))
        }
    }
}

/// A household number and the face seen after it: the number must name a
/// household, the face must be one of its members, and the register must
/// admit that member. Refusals name nobody (the household's members are not
/// the business of whoever keyed its number).
fn household_and_face(
    register: &Register,
    state: &AccessState,
    credential: &Credential,
    keyed: &HouseholdKey,
    face: MemberFace,
    gate: &GateContext,
    now: &Now,
) -> Decision {
    let Some(household) = register.household_by_key(keyed) else {
        return guess_failed(DenyReason::UnknownHousehold, state, credential, gate, now);
    };
    let refusal = match face {
        MemberFace::Member { resident: id, .. } if register.household_of(id) == Some(household) => {
            return resident(register, state, id, gate, now);
        }
        // Matched against a member list that changed since: not a member now.
        MemberFace::Member { .. } | MemberFace::NotMember { .. } => DenyReason::HouseholdMismatch,
        MemberFace::NotSeen => DenyReason::HouseholdTimeout,
        MemberFace::NotEnrolled => DenyReason::FaceNotEnrolled,
        MemberFace::Unavailable => DenyReason::FaceUnavailable,
    };
    let mut d = Decision::denied(refusal, None);
    if refusal == DenyReason::HouseholdMismatch {
        // Someone else's face behind a household's number, again and again,
        // is a stranger trying numbers: it counts toward the reader lockout.
        d.alarm = lockout_alarm(state, gate, now);
    }
    d
}

/// At a two-factor gate, a resident the register admits still needs the
/// second factor: `face` is the face check of a card (`None`: the credential
/// was a face alone, which needs the card).
fn two_factors(
    granted: Decision,
    register: &Register,
    state: &AccessState,
    gate: &GateContext,
    now: &Now,
    face: Option<FaceCheck>,
) -> Decision {
    use two_factor::Required;
    if !granted.is_granted() {
        return granted;
    }
    match gate.two_factor.mode {
        FaceMode::OneToN => return granted,
        // Cards, plates and PINs open a household gate as anywhere; a face
        // alone (a 1:N search) does not.
        FaceMode::Household if face.is_none() => {
            return Decision::denied(DenyReason::HouseholdRequired, granted.subject)
        }
        FaceMode::Household => return granted,
        FaceMode::CardAndFace => {}
    }
    let required = gate.two_factor.required(now.wall, register.offset);
    if required == Required::No {
        return granted;
    }
    let refusal = match face {
        Some(FaceCheck::Match { .. }) => return granted,
        Some(FaceCheck::Unavailable) => match gate.two_factor.fallback {
            config::FaceFallback::Card => return granted,
            config::FaceFallback::Refuse => DenyReason::FaceUnavailable,
        },
        Some(FaceCheck::NotSeen) => DenyReason::FaceRequired,
        Some(FaceCheck::NotEnrolled) => DenyReason::FaceNotEnrolled,
        Some(FaceCheck::Mismatch { .. }) => DenyReason::FaceMismatch,
        None => DenyReason::CardRequired,
    };
    // Card + face hours apply as the trusted clock reads, synchronised or
    // not: skipping them would turn an unsynchronised clock into a way past
    // the second factor.
    let mut d = Decision::denied(refusal, granted.subject);
    if refusal == DenyReason::FaceMismatch {
        // A card shown with someone else's face, again and again, is a card
        // being tried by a stranger: it counts toward the reader lockout.
        d.alarm = lockout_alarm(state, gate, now);
    }
    d
}

/// The lockout alarm if one more failed guessable attempt reaches the limit.
fn lockout_alarm(state: &AccessState, gate: &GateContext, now: &Now) -> Option<AccessAlarm> {
    let attempts = state.recent_unknown(&gate.gate, now.mono, gate.policy.lockout_window) + 1;
    (attempts >= gate.policy.lockout_attempts as usize).then_some(AccessAlarm::ReaderLockout {
        attempts: attempts as u32,
        lockout_s: gate.policy.lockout_for.as_secs(),
    })
}

/// Who holds the card as read: its numbers and (unless the site opted out)
/// the format it was enrolled in. The refusal says which failed; neither
/// names the holder.
fn card_holder(
    register: &Register,
    card: &CardRead,
    gate: &GateContext,
) -> Result<ResidentId, DenyReason> {
    let (id, enrolled) = register
        .card_holder(&card.key())
        .ok_or(DenyReason::UnknownCredential)?;
    if gate.policy.card_format_strict && enrolled != card.format {
        return Err(DenyReason::CardFormatMismatch);
    }
    Ok(id)
}

fn unknown(
    state: &AccessState,
    credential: &Credential,
    gate: &GateContext,
    now: &Now,
) -> Decision {
    guess_failed(DenyReason::UnknownCredential, state, credential, gate, now)
}

/// A guessable credential that names nobody (`reason`): refused, counted
/// toward the reader lockout (and, for a PIN, the keypad's budget).
fn guess_failed(
    reason: DenyReason,
    state: &AccessState,
    credential: &Credential,
    gate: &GateContext,
    now: &Now,
) -> Decision {
    let mut d = Decision::denied(reason, None);
    if credential.is_guessable() {
        d.alarm = lockout_alarm(state, gate, now);
    }
    if credential.is_keyed() {
        d.keypad_alarm = keypad_alarm(state, gate, now);
    }
    d
}

/// The PIN budget's alarm if one more wrong PIN spends the day's budget or
/// reaches the guessing rate (once per alarm window).
fn keypad_alarm(state: &AccessState, gate: &GateContext, now: &Now) -> Option<KeypadAlarm> {
    let policy = &gate.policy;
    if let Some(budget) = policy.pin_budget {
        let today = state.wrong_pins(&gate.gate, now.mono, PIN_BUDGET_WINDOW) + 1;
        if today >= budget as usize {
            let oldest = state
                .oldest_wrong_pin(&gate.gate, now.mono, PIN_BUDGET_WINDOW)
                .unwrap_or(now.mono);
            let resumes = (oldest + PIN_BUDGET_WINDOW).saturating_sub(now.mono);
            return Some(KeypadAlarm::PinEntrySuspended {
                wrong_pins: today as u32,
                window_h: PIN_BUDGET_WINDOW.as_secs() / 3600,
                resumes_in_s: resumes.as_secs(),
            });
        }
    }
    let limit = policy.pin_alarm_failures?;
    let window = policy.pin_alarm_window;
    let recent = state.wrong_pins(&gate.gate, now.mono, window) + 1;
    (recent >= limit as usize && !state.pin_alarm_raised_within(&gate.gate, now.mono, window))
        .then_some(KeypadAlarm::PinGuessing {
            wrong_pins: recent as u32,
            window_min: window.as_secs() / 60,
        })
}

/// Applies a "not yet valid" check: with an unsynchronised clock the true
/// time may be later than `now.wall`, so a failing check is overridden and
/// flagged instead of refusing. Expiry checks never come through here: the
/// true time is never earlier than `now.wall` (the trusted floor).
fn started_check(ok: bool, now: &Now, override_flag: &mut bool) -> bool {
    if ok {
        return true;
    }
    if !now.clock_synced {
        *override_flag = true;
        return true;
    }
    false
}

fn resident(
    register: &Register,
    state: &AccessState,
    id: ResidentId,
    gate: &GateContext,
    now: &Now,
) -> Decision {
    let Some(person) = register.persons.get(&id) else {
        // A face or card of someone removed since: nobody we know.
        return Decision::denied(DenyReason::UnknownCredential, None);
    };
    let subject = Some(Subject::Resident {
        id,
        masked_name: person.masked_name.clone(),
    });
    let deny = |reason| Decision::denied(reason, subject.clone());
    if person.invalid.is_some() {
        return deny(DenyReason::InvalidRecord);
    }
    match person.status {
        PersonStatus::Active => {}
        PersonStatus::Suspended => return deny(DenyReason::Suspended),
        PersonStatus::MovedOut => return deny(DenyReason::MovedOut),
    }
    let mut clock_override = false;
    let offset = register.offset;
    if let Some(until) = person.valid_until {
        if !until.not_ended(now.wall, offset) {
            return deny(DenyReason::LeaseEnded);
        }
    }
    if let Some(until) = person.permit_until {
        if !until.not_ended(now.wall, offset) {
            return deny(DenyReason::PermitEnded);
        }
    }
    if let Some(from) = person.valid_from {
        if !started_check(from.started(now.wall, offset), now, &mut clock_override) {
            return deny(DenyReason::NotYetValid);
        }
    }
    if let Some(reason) = schedule(register, person, &gate.gate, now, &mut clock_override) {
        return deny(reason);
    }
    if gate.policy.anti_passback
        && gate.paired_with.is_some()
        && state.last_direction(gate, id, now.mono) == Some(gate.direction)
    {
        return deny(DenyReason::AntiPassback);
    }
    let mut d = Decision::granted(subject);
    d.clock_override = clock_override;
    d
}

/// Access groups: a person in no group may use every gate at any time;
/// otherwise some window of one of their groups must cover this gate now.
/// Outside every window, only "opens later today" may be overridden while the
/// clock is unsynchronised; hours that have ended today (or a day without
/// hours) refuse.
fn schedule(
    register: &Register,
    person: &PersonEntry,
    gate: &GateId,
    now: &Now,
    clock_override: &mut bool,
) -> Option<DenyReason> {
    let mut restricted = false;
    let mut gate_listed = false;
    let mut opens_later_today = false;
    let local = now.wall.with_timezone(&register.offset);
    let day_bit = 1u8 << local.weekday().num_days_from_monday();
    let minute = (local.hour() * 60 + local.minute()) as u16;
    for group in register.groups_of(person) {
        restricted = true;
        for w in register.windows(group) {
            if &w.gate != gate {
                continue;
            }
            gate_listed = true;
            if w.days & day_bit != 0 && w.start_minute <= minute && minute < w.end_minute {
                return None;
            }
            if w.days & day_bit != 0 && minute < w.start_minute {
                opens_later_today = true;
            }
        }
    }
    if !restricted {
        return None;
    }
    if !gate_listed {
        return Some(DenyReason::GateNotAllowed);
    }
    if opens_later_today && started_check(false, now, clock_override) {
        return None;
    }
    Some(DenyReason::OutsideTimeWindow)
}

fn visitor(
    register: &Register,
    state: &AccessState,
    pass_id: i64,
    gate: &GateContext,
    now: &Now,
) -> Decision {
    let Some(pass) = register.passes.get(&pass_id) else {
        return Decision::denied(DenyReason::UnknownCredential, None);
    };
    let subject = Some(Subject::Visitor {
        pass: pass.id,
        masked_name: pass.masked_name.clone(),
        host: pass.host,
        limited: pass.uses_left.is_some(),
    });
    let deny = |reason| Decision::denied(reason, subject.clone());
    if pass.revoked {
        return deny(DenyReason::VisitorPassRevoked);
    }
    let host_active = register
        .persons
        .get(&pass.host)
        .is_some_and(|h| h.status == PersonStatus::Active && h.invalid.is_none());
    if !host_active {
        return deny(DenyReason::HostInactive);
    }
    if let Some(gates) = &pass.gates {
        if !gates.contains(&gate.gate) {
            return deny(DenyReason::VisitorPassWrongGate);
        }
    }
    if !pass.valid_until.not_ended(now.wall, register.offset) {
        return deny(DenyReason::VisitorPassExpired);
    }
    let mut clock_override = false;
    if !started_check(
        pass.valid_from.started(now.wall, register.offset),
        now,
        &mut clock_override,
    ) {
        return deny(DenyReason::VisitorPassNotYetValid);
    }
    if let Some(left) = pass.uses_left {
        if left <= state.visitor_uses(pass.id) {
            return deny(DenyReason::VisitorPassUsedUp);
        }
    }
    let mut d = Decision::granted(subject);
    d.clock_override = clock_override;
    d
}

#[cfg(test)]
mod tests;
