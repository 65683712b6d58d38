//! The vehicle gate's side of the LPR adapter: a plate reading becomes a
//! `Plate` credential presented at the gate, like a card at a reader.

use anyhow::Result;

use super::{GateHandle, Presentation};
use crate::access::{Credential, Subject};
use crate::lpr::{PlateOutcome, PlateReading, PlateSink, Resolution, Verdict};
use crate::store::events::{AccessResult, EventKind, NewEvent};

impl PlateSink for GateHandle {
    async fn present(&self, reading: PlateReading) -> Result<PlateOutcome> {
        let register = self.register();
        let chosen = match reading.resolve(|p| {
            register.plates.contains_key(p) || register.passes_by_plate.contains_key(p)
        }) {
            Resolution::Present(candidate) => candidate.plate.clone(),
            Resolution::Ambiguous(candidates) => {
                // Two registered plates fit the same reading: open for neither, tell the station.
                let plate = candidates[0].plate.clone();
                let mut event = NewEvent::now(EventKind::Access, crate::clock::is_synchronised());
                event.gate = Some(reading.gate.clone());
                event.credential_kind = Some("plate".into());
                event.credential_masked = Some(reading.read.text.clone());
                event.result = Some(AccessResult::Denied);
                event.reason = Some("ambiguous_plate".into());
                event.snapshot = reading.snapshot.clone();
                event.detail = Some(reading.event_detail(&plate));
                let stored = self.record(event).await?;
                return Ok(PlateOutcome {
                    verdict: Verdict::Refused,
                    plate,
                    reason: "ambiguous_plate".into(),
                    subject: None,
                    event_seq: Some(stored.seq),
                });
            }
        };
        let presented = self
            .submit(
                &reading.gate,
                Presentation {
                    credential: Credential::Plate(chosen.clone()),
                    snapshot: reading.snapshot.clone(),
                    detail: Some(reading.event_detail(&chosen)),
                },
            )
            .await?;
        let decision = &presented.decision;
        let subject = match &decision.subject {
            Some(Subject::Resident { id, .. }) => Some(*id),
            Some(Subject::Visitor { host, .. }) => Some(*host),
            _ => None,
        };
        Ok(PlateOutcome {
            verdict: if decision.is_granted() {
                Verdict::Open
            } else {
                Verdict::Refused
            },
            plate: chosen,
            reason: decision
                .reason()
                .map(|r| r.as_str().to_string())
                .unwrap_or_else(|| {
                    if subject.is_some() {
                        "registered_vehicle".into()
                    } else {
                        "granted".into()
                    }
                }),
            subject,
            event_seq: presented.event.map(|e| e.seq),
        })
    }
}
