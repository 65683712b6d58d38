//! What the uplink asks of the rest of the gateway. Opening a gate belongs
//! to the door module and reading the register to the register module; the
//! daemon implements this trait to connect them, so the uplink depends on
//! neither.

use std::future::Future;

use anyhow::Result;
use rusqlite::Connection;
use serde_json::{Map, Value};

use crate::domain::GateId;
use crate::store::station_queries::{self, ResidentKey, ResidentSummary};

/// A remote open ordered by the station; the signature, validity and replay
/// checks have passed and the order is already in the audit log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteOpen {
    pub gate: GateId,
    pub officer: String,
    pub reason: String,
    /// The command's nonce, to tie the access event to the audit row.
    pub nonce: String,
}

pub trait GatewayActions: Send + Sync + 'static {
    /// Opens `gate` once. The implementation drives the relay and writes the
    /// access event (credential kind `remote`, the officer in `detail`); its
    /// `Ok` value is returned to the station as the command's result.
    fn open_gate(&self, order: RemoteOpen) -> impl Future<Output = Result<Value>> + Send;

    /// The minimum summary of a resident. The default reads the registers
    /// through `store::station_queries`.
    fn get_resident(
        &self,
        conn: &Connection,
        key: &ResidentKey,
    ) -> Result<Option<ResidentSummary>> {
        station_queries::find_resident(conn, key)
    }

    /// Called after the station changed the watchlist, so a cache can reload.
    fn watchlist_changed(&self) {}

    /// The process's one writer, when the process has one already (the
    /// daemon); `None` (the default): the uplink is a process of its own
    /// (`gatehouse uplink drain`) and opens its own.
    fn writer(&self) -> Option<crate::store::Writer> {
        None
    }

    /// An event the uplink stored itself (the backlog quota's alarm), so the
    /// daemon can announce it like its own events (the console's live view).
    fn event_stored(&self, _record: &crate::store::events::EventRecord) {}

    /// Health fields for the heartbeat (gates, readers, cameras, model versions).
    fn health(&self) -> Map<String, Value> {
        Map::new()
    }

    /// Whether the clock is synchronised; the default asks the sources
    /// (`crate::clock::reading`).
    fn clock_synced(&self) -> bool {
        super::status::kernel_clock_synced()
    }

    /// The clock commands are judged by (never below the stored trusted
    /// floor, which the dispatcher applies); tests move it.
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now()
    }
}

/// For a process that publishes and answers queries but drives no gate
/// (`gatehouse uplink drain`): `open_gate` is refused with a reason.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoGates;

impl GatewayActions for NoGates {
    async fn open_gate(&self, order: RemoteOpen) -> Result<Value> {
        anyhow::bail!(
            "gate {} cannot be opened from this process: the gates are driven by `gatehouse run`",
            order.gate
        )
    }
}
