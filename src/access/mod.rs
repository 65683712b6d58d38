//! The access decision: a pure function of the register, the access state
//! (lockouts, anti-passback, visitor uses), the credential, the gate and the
//! time. No I/O, so its tests are tables of cases and it runs in microseconds.
//!
//! New credential sources plug in as [`Credential`] variants: the face
//! pipeline presents `Face { resident, score }`, the LPR camera `Plate`, the
//! station's signed command `Remote`. The daemon calls [`decide`], then
//! [`AccessState::apply`] with the same arguments.
//!
//! Architecture Invariant: never denies because the clock is unsynchronised:
//! date and time-window checks are skipped (and the decision flagged) when the
//! clock is not known to be right.

mod register;
mod state;
mod two_factor;

use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Serialize};

pub use register::{
    mask_name, Bound, GroupId, Person, Register, Role, Status, VisitorPass, WatchHit, Window,
};
pub use state::{AccessState, PastEvent, PastKind};
pub use two_factor::{FaceCheck, Required as TwoFactorRequired, TwoFactorRule};

use crate::config::{self, Direction};
use crate::domain::{CardNumber, GateId, Plate, ResidentId};
use crate::store::DeviceSecret;

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
    Card(CardNumber),
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
    Plate(Plate),
    /// A card presented with the face seen at the same gate, checked 1:1
    /// against the card owner's enrolled faces (two-factor gates).
    CardAndFace {
        card: CardNumber,
        face: FaceCheck,
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
            Credential::Face { .. } | Credential::SpoofedFace { .. } => "face",
            Credential::Plate(_) => "plate",
            Credential::CardAndFace { .. } => "card+face",
            Credential::Remote { .. } => "remote",
            Credential::ExitButton => "exit_button",
        }
    }

    /// The event's `credential_masked`: enough to tell apart, not to clone.
    pub fn masked(&self) -> Option<String> {
        match self {
            Credential::Card(c) => Some(c.masked()),
            Credential::Pin(_) => Some("******".into()),
            Credential::Face { resident, .. } | Credential::SpoofedFace { resident, .. } => {
                Some(resident.to_string())
            }
            Credential::Plate(p) => Some(p.masked()),
            Credential::CardAndFace { card, .. } => Some(card.masked()),
            Credential::Remote { officer, .. } => Some(officer.clone()),
            Credential::ExitButton => None,
        }
    }

    /// Guessable credentials, which count towards a reader lockout (a
    /// presentation attack too: trying photos is guessing).
    pub fn is_guessable(&self) -> bool {
        matches!(self, Credential::SpoofedFace { .. }) || Credential::is_guessable_kind(self.kind())
    }

    /// [`Credential::is_guessable`] for a stored event's `credential_kind`
    /// (rebuilding lockouts after a restart).
    pub fn is_guessable_kind(kind: &str) -> bool {
        matches!(kind, "card" | "pin" | "card+face")
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
}

impl AccessPolicy {
    pub fn from_config(access: &config::Access) -> AccessPolicy {
        AccessPolicy {
            lockout_attempts: access.lockout_attempts.max(1),
            lockout_window: Duration::from_secs(u64::from(access.lockout_window_s)),
            lockout_for: Duration::from_secs(u64::from(access.lockout_s)),
            anti_passback: access.anti_passback,
            anti_passback_reset: (access.anti_passback_reset_h > 0)
                .then(|| Duration::from_secs(u64::from(access.anti_passback_reset_h) * 3600)),
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
    /// A face failed the liveness check: a photo or screen, not a person.
    PresentationAttack,
}

impl DenyReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DenyReason::UnknownCredential => "unknown_credential",
            DenyReason::Suspended => "suspended",
            DenyReason::MovedOut => "moved_out",
            DenyReason::LeaseEnded => "lease_ended",
            DenyReason::NotYetValid => "not_yet_valid",
            DenyReason::GateNotAllowed => "gate_not_allowed",
            DenyReason::OutsideTimeWindow => "outside_time_window",
            DenyReason::VisitorPassExpired => "visitor_pass_expired",
            DenyReason::VisitorPassNotYetValid => "visitor_pass_not_yet_valid",
            DenyReason::VisitorPassUsedUp => "visitor_pass_used_up",
            DenyReason::VisitorPassWrongGate => "visitor_pass_wrong_gate",
            DenyReason::VisitorPassRevoked => "visitor_pass_revoked",
            DenyReason::HostInactive => "host_inactive",
            DenyReason::AntiPassback => "anti_passback",
            DenyReason::ReaderLockedOut => "reader_locked_out",
            DenyReason::FaceRequired => "face_required",
            DenyReason::FaceMismatch => "face_mismatch",
            DenyReason::FaceNotEnrolled => "face_not_enrolled",
            DenyReason::CardRequired => "card_required",
            DenyReason::FaceUnavailable => "face_unavailable",
            DenyReason::InvalidRecord => "invalid_record",
            DenyReason::Watchlisted => "watchlisted",
            DenyReason::PresentationAttack => "presentation_attack",
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub subject: Option<Subject>,
    pub alarm: Option<AccessAlarm>,
    /// A date or time-window check would have refused, but the clock is not
    /// synchronised, so it was not applied.
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
            clock_override: false,
        }
    }

    fn denied(reason: DenyReason, subject: Option<Subject>) -> Decision {
        Decision {
            outcome: Outcome::Denied(reason),
            subject,
            alarm: None,
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
    let mut decision = decide_register(register, state, credential, gate, now);
    // The station's watchlist overrides nothing silently: a hit always alarms,
    // and refuses only when the station asked for that.
    if let Some(deny) = register.watch_hit(credential, now.wall) {
        if deny {
            decision.outcome = Outcome::Denied(DenyReason::Watchlisted);
        }
        decision.alarm = Some(AccessAlarm::Watchlist { deny });
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
        Credential::Card(card) => match register.cards.get(&card.key()) {
            Some(id) => two_factors(
                resident(register, state, *id, gate, now),
                register,
                state,
                gate,
                now,
                Some(FaceCheck::NotSeen),
            ),
            None => unknown(state, credential, gate, now),
        },
        Credential::CardAndFace { card, face } => match register.cards.get(&card.key()) {
            Some(id) => two_factors(
                resident(register, state, *id, gate, now),
                register,
                state,
                gate,
                now,
                Some(*face),
            ),
            None => unknown(state, credential, gate, now),
        },
        Credential::Face { resident: id, .. } => two_factors(
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

/// At a two-factor gate, a resident the register admits still needs the
/// second factor: `face` is the face check of a card (`None`: the credential
/// was a face alone, which needs the card).
fn two_factors(
    mut granted: Decision,
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
    if required == Required::ByHours && !now.clock_synced {
        // The hours may be wrong: do as outside them, and say so.
        granted.clock_override = true;
        return granted;
    }
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

fn unknown(
    state: &AccessState,
    credential: &Credential,
    gate: &GateContext,
    now: &Now,
) -> Decision {
    let mut d = Decision::denied(DenyReason::UnknownCredential, None);
    if credential.is_guessable() {
        d.alarm = lockout_alarm(state, gate, now);
    }
    d
}

/// Applies a check that depends on the wall clock: with an unsynchronised
/// clock a failing check is overridden and flagged instead of refusing.
fn clock_check(ok: bool, now: &Now, override_flag: &mut bool) -> bool {
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
        Status::Active => {}
        Status::Suspended => return deny(DenyReason::Suspended),
        Status::MovedOut => return deny(DenyReason::MovedOut),
    }
    let mut clock_override = false;
    let offset = register.offset;
    if let Some(from) = person.valid_from {
        if !clock_check(from.started(now.wall, offset), now, &mut clock_override) {
            return deny(DenyReason::NotYetValid);
        }
    }
    if let Some(until) = person.valid_until {
        if !clock_check(until.not_ended(now.wall, offset), now, &mut clock_override) {
            return deny(DenyReason::LeaseEnded);
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
fn schedule(
    register: &Register,
    person: &Person,
    gate: &GateId,
    now: &Now,
    clock_override: &mut bool,
) -> Option<DenyReason> {
    let mut restricted = false;
    let mut gate_listed = false;
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
        }
    }
    if !restricted {
        return None;
    }
    if !gate_listed {
        return Some(DenyReason::GateNotAllowed);
    }
    if clock_check(false, now, clock_override) {
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
        .is_some_and(|h| h.status == Status::Active && h.invalid.is_none());
    if !host_active {
        return deny(DenyReason::HostInactive);
    }
    if let Some(gates) = &pass.gates {
        if !gates.contains(&gate.gate) {
            return deny(DenyReason::VisitorPassWrongGate);
        }
    }
    let mut clock_override = false;
    if !clock_check(
        pass.valid_from.started(now.wall, register.offset),
        now,
        &mut clock_override,
    ) {
        return deny(DenyReason::VisitorPassNotYetValid);
    }
    if !clock_check(
        pass.valid_until.not_ended(now.wall, register.offset),
        now,
        &mut clock_override,
    ) {
        return deny(DenyReason::VisitorPassExpired);
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
