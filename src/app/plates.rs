//! The vehicle gate's side of the LPR adapter: a plate reading becomes a
//! `Plate` credential presented at the gate, like a card at a reader.
//!
//! The station's watchlist takes part in choosing the candidate: a listed
//! reading is presented as read (never swapped to a resident's plate), and a
//! listed OCR candidate the gate did not decide on still raises a
//! `watchlist_match` alarm, because the car may be the listed one misread.

use anyhow::Result;
use serde_json::json;

use crate::access::{Credential, Subject};
use crate::daemon::{GateHandle, Presentation};
use crate::domain::Plate;
use crate::event::EventReason;
use crate::lpr::{listed_alternatives, PlateOutcome, PlateReading, PlateSink, Resolution, Verdict};
use crate::store::events::{EventKind, EventRecord};

impl PlateSink for GateHandle {
    async fn present(&self, reading: PlateReading) -> Result<PlateOutcome> {
        let register = self.register();
        // The trusted time, as the decision will see it.
        let now = self.core().clock.now().wall;
        let listed = |p: &Plate| register.plate_watched(p, now).is_some();
        let resolution = reading.resolve(|p| register.plate_registered(p) || listed(p));
        // The decision itself alarms for the plate presented; the others here.
        let (outcome, presented) = match resolution {
            Resolution::Present(candidate) => (
                self.decide_plate(&reading, candidate.plate.clone()).await?,
                Some(&candidate.plate),
            ),
            Resolution::Ambiguous(candidates) => (
                self.refuse_ambiguous(&reading, candidates[0].plate.clone())
                    .await?,
                None,
            ),
        };
        for other in listed_alternatives(&reading.read, presented, listed) {
            let deny = register.plate_watched(&other.plate, now) == Some(true);
            // The gate has acted already: a failed write (kept for a retry)
            // must not turn the camera's answer into an error.
            if let Err(e) = self
                .possible_watch_match(&reading, &other.plate, deny, &outcome)
                .await
            {
                tracing::error!(gate = %reading.gate, "watchlist alarm not stored yet: {e:#}");
            }
        }
        Ok(outcome)
    }
}

impl GateHandle {
    async fn decide_plate(&self, reading: &PlateReading, chosen: Plate) -> Result<PlateOutcome> {
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
            reason: match decision.reason() {
                Some(refused) => refused.into(),
                None if subject.is_some() => EventReason::RegisteredVehicle,
                None => EventReason::Granted,
            },
            subject,
            event_seq: presented.event.map(|e| e.seq),
        })
    }

    /// Two known plates fit the same reading: open for neither (the gate's
    /// decision, `ambiguous_plate`), tell the station.
    async fn refuse_ambiguous(&self, reading: &PlateReading, plate: Plate) -> Result<PlateOutcome> {
        let presented = self
            .submit(
                &reading.gate,
                Presentation {
                    credential: Credential::AmbiguousPlate {
                        read: reading.read.text.clone(),
                    },
                    snapshot: reading.snapshot.clone(),
                    detail: Some(reading.event_detail(&plate)),
                },
            )
            .await?;
        Ok(PlateOutcome {
            verdict: if presented.decision.is_granted() {
                Verdict::Open
            } else {
                Verdict::Refused
            },
            plate,
            reason: match presented.decision.reason() {
                Some(refused) => refused.into(),
                None => EventReason::Granted,
            },
            subject: None,
            event_seq: presented.event.map(|e| e.seq),
        })
    }

    /// A listed candidate the gate did not decide on: the alarm the station
    /// would have had if the camera had read that plate.
    async fn possible_watch_match(
        &self,
        reading: &PlateReading,
        listed: &Plate,
        deny: bool,
        outcome: &PlateOutcome,
    ) -> Result<EventRecord> {
        let mut event = self.event(EventKind::Alarm);
        event.gate = Some(reading.gate.clone());
        event.reason = Some(EventReason::WatchlistMatch);
        event.snapshot = reading.snapshot.clone();
        let substitution = reading
            .read
            .candidate(listed)
            .and_then(|c| c.substitution)
            .map(|s| json!({"position": s.position, "read": s.read, "tried": s.tried}));
        event.detail = Some(json!({
            "credential_kind": "plate",
            "credential": listed.as_str(),
            "possible": true,
            "read": reading.read.text,
            "ocr_substitution": substitution,
            "action": if deny { "deny" } else { "alert" },
            "denied": outcome.verdict == Verdict::Refused,
            "decided_plate": outcome.plate.as_str(),
            "access_event_seq": outcome.event_seq,
        }));
        self.record(event).await
    }
}
