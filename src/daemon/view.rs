//! What the daemon reports to callers: decisions, gate status and notices,
//! serialisable for the control socket and the CLI.

use serde::{Deserialize, Serialize};

use crate::access::{Decision, Subject};
use crate::config::{Backend, Direction, GateKind};
use crate::door::{DoorAlarm, Position};
use crate::face::recent::GateFaceStatus;
use crate::store::events::{AccessResult, EventRecord, NewEvent};
use crate::wiegand::{ReaderHealth, Rejection};

/// A decision as callers see it: the fields of its event row (one record,
/// [`NewEvent`], built once by the gate), plus what the row does not carry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DecisionView {
    pub gate: String,
    pub credential_kind: String,
    pub credential_masked: Option<String>,
    pub result: AccessResult,
    pub reason: Option<String>,
    pub subject_id: Option<i64>,
    pub subject_name: Option<String>,
    pub alarm: Option<String>,
    /// Granted although a "not yet valid" check failed, because the clock is not synchronised.
    pub clock_override: bool,
    /// The stored event's sequence number (absent if it could not be written yet).
    pub event_seq: Option<i64>,
    /// The event could not be stored when decided (disk full, I/O error): the
    /// door acted, the event waits for the next write, an alarm was raised.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub event_unsaved: bool,
}

impl DecisionView {
    /// The view of decision `d`, whose access event is `event`; `stored` once
    /// it is written.
    pub fn new(event: &NewEvent, d: &Decision, stored: Option<&EventRecord>) -> DecisionView {
        DecisionView {
            gate: event
                .gate
                .as_ref()
                .map(|g| g.to_string())
                .unwrap_or_default(),
            credential_kind: event.credential_kind.clone().unwrap_or_default(),
            credential_masked: event.credential_masked.clone(),
            result: event.result.unwrap_or(AccessResult::Denied),
            reason: event.reason.map(|r| r.as_str().to_string()),
            subject_id: event.subject_id.map(|r| r.0),
            subject_name: event.subject_name.clone(),
            alarm: d
                .alarm
                .map(|a| a.reason())
                .or_else(|| d.keypad_alarm.map(|a| a.reason()))
                .map(|r| r.as_str().to_string()),
            clock_override: d.clock_override,
            event_seq: stored.map(|e| e.seq),
            event_unsaved: stored.is_none(),
        }
    }

    /// One line for people: `east: GRANTED card 10:***45 R1 张*`.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{}: {} {}",
            self.gate,
            match self.result {
                AccessResult::Granted => "GRANTED",
                AccessResult::Denied => "DENIED",
            },
            self.credential_kind
        );
        if let Some(m) = &self.credential_masked {
            s.push_str(&format!(" {m}"));
        }
        if let Some(id) = self.subject_id {
            s.push_str(&format!(" R{id}"));
        }
        if let Some(n) = &self.subject_name {
            s.push_str(&format!(" {n}"));
        }
        if let Some(r) = &self.reason {
            s.push_str(&format!(" ({r})"));
        }
        if let Some(a) = &self.alarm {
            s.push_str(&format!(" ALARM {a}"));
        }
        if self.clock_override {
            s.push_str(" [clock not synchronised: start date not checked]");
        }
        if self.event_unsaved {
            s.push_str(" [event NOT stored yet: kept for the next write]");
        }
        s
    }
}

/// (subject_id, masked name) for events: residents by id; visitors by name only.
pub(crate) fn subject_fields(subject: Option<&Subject>) -> (Option<i64>, Option<String>) {
    match subject {
        Some(Subject::Resident { id, masked_name }) => (Some(id.0), Some(masked_name.clone())),
        Some(Subject::Visitor { masked_name, .. }) => (None, Some(masked_name.clone())),
        None => (None, None),
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ReaderStatus {
    #[serde(flatten)]
    pub health: ReaderHealth,
    /// Seconds left of a lockout after too many unknown credentials.
    pub locked_out_s: Option<u64>,
    /// Seconds until PIN entry resumes after the day's budget of wrong PINs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_suspended_s: Option<u64>,
}

/// One gate in `gatehouse gate status`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GateStatus {
    pub id: String,
    pub name: String,
    pub kind: GateKind,
    pub direction: Direction,
    pub backend: Backend,
    /// `locked` or `released` (barrier down / up).
    pub lock: String,
    pub door: Position,
    pub vehicle_present: Option<bool>,
    pub alarms: Vec<DoorAlarm>,
    pub tamper: bool,
    pub reader: Option<ReaderStatus>,
    /// Why the gate is not running (its hardware could not be opened).
    pub out_of_service: Option<String>,
    /// `card+face` (with its hours, if limited), or absent when off.
    #[serde(default)]
    pub two_factor: Option<String>,
    /// Whether a card needs its owner's face at this moment.
    #[serde(default)]
    pub two_factor_now: bool,
    /// The gate's cameras and the stranger false-accept rate of the face
    /// search at today's register size (absent: no camera at this gate).
    #[serde(default)]
    pub face: Option<GateFaceStatus>,
}

/// What a gate task announces as it works (the simulator waits on these).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "notice")]
pub enum GateNotice {
    Decided(DecisionView),
    FrameRejected {
        rejection: Rejection,
    },
    KeyBuffered {
        digits: usize,
    },
    /// A card was handed to an enrolment capture instead of being decided on.
    CardCaptured {
        card_masked: String,
    },
    /// A card at a card + face gate waits up to `wait_s` for its owner's face
    /// ("请看摄像头" on a display).
    FaceWanted {
        card_masked: String,
        wait_s: u64,
    },
    /// A household number keyed at a household gate waits up to `wait_s`
    /// for a member's face (`keyed`: as typed, e.g. `3*2*501`).
    HouseholdKeyed {
        keyed: String,
        wait_s: u64,
    },
}
