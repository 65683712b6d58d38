//! Arguments of each remote command, shared by the gateway (which parses
//! them) and the officer's CLI (which builds them). Unknown fields are
//! refused so a typo never silently widens a query.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::store::events::{AccessResult, EventKind};
use crate::store::station_queries::{WatchEntry, WatchKind};

/// Most events one `query_events` reply carries; page on with `after_seq`.
pub const MAX_PAGE: u32 = 200;
/// Most bytes of events one reply carries (MQTT packets stay small).
pub const MAX_PAGE_BYTES: usize = 192 * 1024;
/// Most entries one `watchlist_set` may push.
pub const MAX_WATCH_ENTRIES: usize = 1000;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryEventsArgs {
    /// Inclusive, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Exclusive, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    /// `R42`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<AccessResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<EventKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_kind: Option<String>,
    /// Pagination cursor: only events with a larger seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<i64>,
    /// At most this many (capped at [`MAX_PAGE`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Exactly one of the three.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetResidentArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resident: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenGateArgs {
    pub gate: String,
    /// Why the officer opens it (kept in the audit log).
    pub reason: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchlistSetArgs {
    pub entries: Vec<WatchEntry>,
}

/// No kind: clear everything; a kind without values: all of that kind.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchlistClearArgs {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<WatchKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}
