//! The daemon's side of the uplink: what the station may ask of the gates.

use anyhow::Result;
use serde_json::{json, Map, Value};

use crate::daemon::GateHandle;
use crate::uplink::{GatewayActions, RemoteOpen};

impl GatewayActions for GateHandle {
    async fn open_gate(&self, order: RemoteOpen) -> Result<Value> {
        // `open` audits (officer, reason) and presents a Remote credential,
        // so the access event names the officer like any manual open.
        let actor = format!("officer:{}", order.officer);
        let presented = self.open(&order.gate, &actor, &order.reason).await?;
        Ok(json!({
            "gate": order.gate.as_str(),
            "result": presented.view.result,
            "event_seq": presented.event.as_ref().map(|e| e.seq),
            "event_id": presented.event.as_ref().map(|e| e.id.clone()),
        }))
    }

    fn clock_synced(&self) -> bool {
        self.core().clock.synced()
    }

    /// One writer per process: the uplink writes through the gates' writer.
    fn writer(&self) -> Option<crate::store::Writer> {
        Some(self.core().writer())
    }

    /// The quota's alarm reaches the console and the publisher like any event.
    fn event_stored(&self, record: &crate::store::events::EventRecord) {
        self.core().announce(record.clone());
    }

    /// The gates' trusted clock: max(system clock, running floor).
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.core().clock.now().wall
    }

    fn health(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "gates".into(),
            Value::from(
                self.gates()
                    .iter()
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>(),
            ),
        );
        m.insert(
            "register_people".into(),
            Value::from(self.register().person_count()),
        );
        m
    }
}
