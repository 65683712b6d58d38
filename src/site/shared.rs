//! The state a site's gates share through the registry (issue 17): each
//! person's passages (anti-passback across gateways) and the failed guesses
//! and wrong PINs (lockouts and PIN budgets across gateways). Gates do not
//! send anything new for it: their events already reach the registry, which
//! reads what each new one means for the access state (as a daemon does at
//! start-up, `daemon::past_event`) — and so for its own gates' events, when
//! the registry is a gateway too — and sends it to every gate on `shared`,
//! signed with its key like the log; a gate asks for the last day of it on
//! connect (`shared_request`, answered on `gate/<gw>/shared`), so a restart
//! or an outage does not forget what happened elsewhere meanwhile.
//!
//! Window: a passage or failure at gate A counts at gate B once A's event
//! reached the registry and its redistribution reached B (A sends its events
//! every 100 ms: well under a second online). While the broker or the
//! registry is down each gate decides on what it last knew. Times are the
//! gateways' trusted wall clocks: the site's gateways must keep their clocks
//! synchronised (NTP) for the order of passages to hold.

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::wire::{self, Rejection};
use crate::access::{PastKind, SiteEvent, SiteKind};
use crate::config::Direction;
use crate::domain::ResidentId;
use crate::store::events::EventRecord;

/// The version of [`SharedState`].
pub const VERSION: u32 = 1;

/// How far back a gate's catch-up reaches (the PIN budget's day).
pub const CATCHUP: chrono::Duration = chrono::Duration::hours(24);

/// Most failures in one catch-up answer (the latest are kept).
const CATCHUP_FAILURES: usize = 10_000;

/// One thing that happened at a gate of the site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteItem {
    /// The event it was read from (a gate folds each once).
    pub id: String,
    pub gateway: String,
    pub gate: String,
    /// The gate's trusted time of it (RFC 3339).
    pub at: String,
    pub what: Shared,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Shared {
    /// A resident let through a gate of `direction`.
    Passed { person: i64, direction: Direction },
    /// An unknown card, a card with someone else's face, a photo held up…
    FailedGuess,
    /// An unknown PIN or household number.
    WrongPin,
}

/// What the registry signs and sends: the items, for its site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedState {
    pub v: u32,
    pub site: String,
    /// When the registry sent it.
    pub at: String,
    pub items: Vec<SiteItem>,
}

/// A gate asking for the last day of the site's shared state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedRequest {
    pub gate: String,
}

/// What `gateway`'s events mean for the other gates' access state.
pub fn items_of(gateway: &str, events: &[EventRecord]) -> Vec<SiteItem> {
    let now = Utc::now();
    events
        .iter()
        .filter_map(|e| {
            let past = crate::daemon::past_event(e, now).ok()??;
            let what = match past.kind {
                PastKind::Passed { person } => Shared::Passed {
                    person: person.0,
                    direction: match e.direction.as_deref()? {
                        "in" => Direction::In,
                        "out" => Direction::Out,
                        _ => return None,
                    },
                },
                PastKind::FailedGuess => Shared::FailedGuess,
                PastKind::WrongPin => Shared::WrongPin,
                PastKind::PinGuessingAlarm | PastKind::LockedOut => return None,
            };
            Some(SiteItem {
                id: e.id.clone(),
                gateway: gateway.to_string(),
                gate: past.gate.to_string(),
                at: e.at.clone(),
                what,
            })
        })
        .collect()
}

/// The gateway that sent an event the registry stored for it, if one did.
fn gateway_of(e: &EventRecord) -> Option<&str> {
    e.detail
        .as_ref()
        .and_then(|d| d.get("site_gateway"))
        .and_then(Value::as_str)
}

/// Registry: whether a stored event is a gate's (not this gateway's own).
pub fn from_a_gate(e: &EventRecord) -> bool {
    gateway_of(e).is_some()
}

/// Registry: the last day of the site's shared state from the events stored
/// here, the gates' (`store::site_gates` names their gate `<gateway>/<gate>`)
/// and its `own` gateway's: each person's last passage, and the latest failures.
pub fn recent(records: &[EventRecord], own: &str) -> Vec<SiteItem> {
    let mut items = Vec::new();
    for e in records {
        let Some(gateway) = gateway_of(e) else {
            items.extend(items_of(own, std::slice::from_ref(e)));
            continue;
        };
        let mut plain = e.clone();
        plain.gate = e
            .gate
            .as_deref()
            .and_then(|g| g.split_once('/'))
            .map(|(_, g)| g.to_string());
        items.extend(items_of(gateway, std::slice::from_ref(&plain)));
    }
    // Oldest first: the last passage of each person wins; the latest failures are kept.
    let mut last_passage: HashMap<i64, usize> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        if let Shared::Passed { person, .. } = item.what {
            last_passage.insert(person, i);
        }
    }
    let failures = items
        .iter()
        .filter(|i| !matches!(i.what, Shared::Passed { .. }))
        .count();
    let mut skip_failures = failures.saturating_sub(CATCHUP_FAILURES);
    items
        .into_iter()
        .enumerate()
        .filter(|(i, item)| match item.what {
            Shared::Passed { person, .. } => last_passage.get(&person) == Some(i),
            _ if skip_failures > 0 => {
                skip_failures -= 1;
                false
            }
            _ => true,
        })
        .map(|(_, item)| item)
        .collect()
}

/// The items as the access state folds them, at `now` (the daemon's
/// trusted time); one with a time that does not parse is skipped.
pub fn to_access(items: &[SiteItem], now: DateTime<Utc>) -> Vec<SiteEvent> {
    items
        .iter()
        .filter_map(|item| {
            let at = DateTime::parse_from_rfc3339(&item.at).ok()?;
            let age = (now - at.with_timezone(&Utc)).to_std().unwrap_or_default();
            let kind = match item.what {
                Shared::Passed { person, direction } => SiteKind::Passed {
                    person: ResidentId(person),
                    direction,
                },
                Shared::FailedGuess => SiteKind::FailedGuess,
                Shared::WrongPin => SiteKind::WrongPin,
            };
            Some(SiteEvent { age, kind })
        })
        .collect()
}

/// The wire form of a signed state: `{"shared": <body>, "sig": …}`.
pub fn message(body: &str, sig: &str) -> Vec<u8> {
    // The body is our own canonical JSON: splicing it keeps the signed bytes exact.
    format!("{{\"shared\":{body},\"sig\":\"{sig}\"}}").into_bytes()
}

/// The canonical body the registry signs.
pub fn body(state: &SharedState) -> String {
    serde_json::to_value(state)
        .map(|v| crate::signing::canonical::to_string(&v))
        .unwrap_or_default()
}

#[derive(Deserialize)]
struct SignedShared {
    shared: Value,
    #[serde(default)]
    sig: Option<String>,
}

/// Checks a state from the registry: signed by the pinned key over its
/// canonical body, of this site.
pub fn open(payload: &[u8], site: &str, key: &VerifyingKey) -> Result<SharedState, Rejection> {
    let signed: SignedShared =
        serde_json::from_slice(payload).map_err(|e| Rejection::Malformed(e.to_string()))?;
    let sig = signed.sig.ok_or(Rejection::Unsigned)?;
    wire::verify(key, &signed.shared, &sig)?;
    let state: SharedState =
        serde_json::from_value(signed.shared).map_err(|e| Rejection::Malformed(e.to_string()))?;
    if state.site != site {
        return Err(Rejection::WrongSite { site: state.site });
    }
    Ok(state)
}

/// A gate's memory of the items it folded, so a live one and the same one
/// in a catch-up answer count once.
#[derive(Debug, Default)]
pub struct Seen {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

/// Items remembered (a day of a busy site's failures and passages).
const SEEN_KEPT: usize = 50_000;

impl Seen {
    /// The items not seen before (and not of `own` gateway: its own events
    /// are counted where they happened), now remembered.
    pub fn fresh(&mut self, own: &str, items: Vec<SiteItem>) -> Vec<SiteItem> {
        items
            .into_iter()
            .filter(|i| i.gateway != own)
            .filter(|i| {
                if !self.ids.insert(i.id.clone()) {
                    return false;
                }
                self.order.push_back(i.id.clone());
                if self.order.len() > SEEN_KEPT {
                    if let Some(old) = self.order.pop_front() {
                        self.ids.remove(&old);
                    }
                }
                true
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn item(id: &str, gateway: &str, what: Shared) -> SiteItem {
        SiteItem {
            id: id.into(),
            gateway: gateway.into(),
            gate: "east".into(),
            at: "2026-12-03T10:00:00.000Z".into(),
            what,
        }
    }

    fn state(site: &str) -> SharedState {
        SharedState {
            v: VERSION,
            site: site.into(),
            at: "2026-12-03T10:00:01.000Z".into(),
            items: vec![item(
                "e1",
                "north",
                Shared::Passed {
                    person: 4,
                    direction: Direction::In,
                },
            )],
        }
    }

    #[test]
    fn a_signed_state_of_this_site_opens_and_a_forged_or_foreign_one_does_not() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let b = body(&state("lotus"));
        let msg = message(&b, &super::super::wire::sign(&key, &b));
        assert_eq!(
            open(&msg, "lotus", &key.verifying_key()),
            Ok(state("lotus"))
        );
        let stranger = SigningKey::from_bytes(&[2; 32]);
        let forged = message(&b, &super::super::wire::sign(&stranger, &b));
        assert_eq!(
            open(&forged, "lotus", &key.verifying_key()),
            Err(Rejection::BadSignature)
        );
        assert!(matches!(
            open(&msg, "peony", &key.verifying_key()),
            Err(Rejection::WrongSite { .. })
        ));
        let unsigned = format!("{{\"shared\":{b}}}").into_bytes();
        assert_eq!(
            open(&unsigned, "lotus", &key.verifying_key()),
            Err(Rejection::Unsigned)
        );
    }

    #[test]
    fn a_gate_folds_each_item_of_another_gateway_once() {
        let mut seen = Seen::default();
        let items = vec![
            item("e1", "north", Shared::FailedGuess),
            item("e2", "south", Shared::FailedGuess),
        ];
        let fresh = seen.fresh("south", items.clone());
        assert_eq!(fresh, vec![items[0].clone()]);
        assert!(seen.fresh("south", items).is_empty());
    }

    #[test]
    fn ages_are_counted_from_the_daemons_trusted_time() {
        let now = DateTime::parse_from_rfc3339("2026-12-03T10:01:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let events = to_access(&[item("e1", "north", Shared::WrongPin)], now);
        assert_eq!(
            events,
            vec![SiteEvent {
                age: std::time::Duration::from_secs(60),
                kind: SiteKind::WrongPin
            }]
        );
    }
}
