//! The event vocabulary: why an event was written, as one type.
//!
//! Every reason an event row, an MQTT payload, a CSV export or the console
//! can carry is a variant here, spelled once. The strings are the wire
//! format (the station, `schemas/event.schema.json` and stored rows depend
//! on them), so a variant's string never changes; a new reason is a new
//! variant and shows up everywhere that matches on this type.
//!
//! A leaf module: `access`, `door`, `store` and the daemon all use it, it
//! uses none of them (`access::DenyReason` maps into it from `access`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $variant:ident => $s:literal,)*) => {
        /// Why an event was written: a refusal, an alarm, a device change or a note.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum EventReason {
            $($(#[doc = $doc])* $variant,)*
        }

        impl EventReason {
            /// Every reason, in declaration order.
            pub const ALL: &'static [EventReason] = &[$(EventReason::$variant,)*];

            /// The reason as stored and published.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventReason::$variant => $s,)*
                }
            }
        }

        impl FromStr for EventReason {
            type Err = UnknownReason;
            /// Exactly the stored strings; anything else is an error, never a guess.
            fn from_str(s: &str) -> Result<Self, UnknownReason> {
                match s {
                    $($s => Ok(EventReason::$variant),)*
                    _ => Err(UnknownReason(s.to_string())),
                }
            }
        }
    };
}

reasons! {
    // Refusals: `access::DenyReason` (access events, result `denied`).
    UnknownCredential => "unknown_credential",
    Suspended => "suspended",
    MovedOut => "moved_out",
    LeaseEnded => "lease_ended",
    PermitEnded => "permit_ended",
    NotYetValid => "not_yet_valid",
    GateNotAllowed => "gate_not_allowed",
    OutsideTimeWindow => "outside_time_window",
    VisitorPassExpired => "visitor_pass_expired",
    VisitorPassNotYetValid => "visitor_pass_not_yet_valid",
    VisitorPassUsedUp => "visitor_pass_used_up",
    VisitorPassWrongGate => "visitor_pass_wrong_gate",
    VisitorPassRevoked => "visitor_pass_revoked",
    HostInactive => "host_inactive",
    AntiPassback => "anti_passback",
    ReaderLockedOut => "reader_locked_out",
    FaceRequired => "face_required",
    FaceMismatch => "face_mismatch",
    FaceNotEnrolled => "face_not_enrolled",
    CardRequired => "card_required",
    /// A refusal at a card + face gate without a camera, and the alarm that
    /// face recognition could not start.
    FaceUnavailable => "face_unavailable",
    InvalidRecord => "invalid_record",
    Watchlisted => "watchlisted",
    CardFormatMismatch => "card_format_mismatch",
    /// A refused PIN, and the keypad alarm that the day's budget is spent.
    PinEntrySuspended => "pin_entry_suspended",
    /// A refused spoofed face, and the alarm when attacks repeat.
    PresentationAttack => "presentation_attack",
    UnknownFace => "unknown_face",
    AmbiguousPlate => "ambiguous_plate",
    /// A household gate: a face alone does not open.
    HouseholdRequired => "household_required",
    /// A household gate: the keyed number names no household.
    UnknownHousehold => "unknown_household",
    /// A household gate: the face is no member of the keyed household.
    HouseholdMismatch => "household_mismatch",
    /// A household gate: the keyed number expired before a face was seen.
    HouseholdTimeout => "household_timeout",
    // Grant notes (the LPR camera's answer).
    RegisteredVehicle => "registered_vehicle",
    Granted => "granted",
    // Alarms.
    ReaderLockout => "reader_lockout",
    PinGuessing => "pin_guessing",
    WatchlistMatch => "watchlist_match",
    ForcedOpen => "forced_open",
    HeldOpen => "held_open",
    Tamper => "tamper",
    CameraLost => "camera_lost",
    FaceModelFailed => "face_model_failed",
    RecurringStranger => "recurring_stranger",
    GateHardwareFailed => "gate_hardware_failed",
    UplinkBacklogDropped => "uplink_backlog_dropped",
    /// Events could not be stored when they happened (kept and retried).
    EventStoreFailed => "event_store_failed",
    /// A site register change refused by a gate (unsigned, forged, out of order, wrong site).
    SiteLogRejected => "site_log_rejected",
    // Device events.
    ForcedOpenCleared => "forced_open_cleared",
    HeldOpenCleared => "held_open_cleared",
    TamperCleared => "tamper_cleared",
    ReaderFault => "reader_fault",
    ReaderRecovered => "reader_recovered",
    CameraStreaming => "camera_streaming",
    CameraEnded => "camera_ended",
    FaceModelRecovered => "face_model_recovered",
    DaemonStarted => "daemon_started",
    DaemonStopped => "daemon_stopped",
    ConfigReloaded => "config_reloaded",
    ConfigReloadFailed => "config_reload_failed",
}

/// A stored or received reason this build does not know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownReason(pub String);

impl fmt::Display for UnknownReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown event reason {:?}", self.0)
    }
}

impl std::error::Error for UnknownReason {}

impl fmt::Display for EventReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventReason {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_through_its_string() {
        for r in EventReason::ALL {
            assert_eq!(r.as_str().parse::<EventReason>(), Ok(*r), "{r:?}");
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<EventReason>(&json).unwrap(), *r);
        }
    }

    #[test]
    fn no_two_reasons_share_a_string() {
        let mut seen = std::collections::HashMap::new();
        for r in EventReason::ALL {
            if let Some(other) = seen.insert(r.as_str(), *r) {
                panic!("{other:?} and {r:?} are both {:?}", r.as_str());
            }
        }
        assert_eq!(seen.len(), EventReason::ALL.len());
    }

    #[test]
    fn an_unknown_string_is_an_error_not_a_guess() {
        assert_eq!(
            "no_such_reason".parse::<EventReason>(),
            Err(UnknownReason("no_such_reason".into()))
        );
        assert!("Unknown_Credential".parse::<EventReason>().is_err());
        assert!(serde_json::from_str::<EventReason>("\"nope\"").is_err());
    }

    #[test]
    fn reasons_fit_the_published_schema() {
        // schemas/event.schema.json: reason is a string of at most 64 characters.
        for r in EventReason::ALL {
            let s = r.as_str();
            assert!(s.len() <= 64 && !s.is_empty(), "{s}");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{s}"
            );
        }
    }
}
