//! What crosses the site's broker, and the checks a gate makes before it
//! applies anything: topics, the signed entry and snapshot messages, the
//! catch-up request and its end marker. Pure: bytes and keys in, a verdict out.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::store::site_log::{self, Entry, Snapshot};

/// The last level of a gate's events topic.
pub const EVENTS: &str = "event";

/// The last level of a gate's visitor-use reports topic.
pub const USE_REPORT: &str = "use_report";

/// The topics of one site.
#[derive(Clone, Debug)]
pub struct Topics {
    root: String,
}

impl Topics {
    pub fn new(site: &str) -> Topics {
        Topics {
            root: format!("gatehouse-site/{site}"),
        }
    }

    /// The registry's entries, in order, QoS 1.
    pub fn log(&self) -> String {
        format!("{}/log", self.root)
    }

    /// The registry's newest seq, retained: a gate that missed entries sees it is behind.
    pub fn head(&self) -> String {
        format!("{}/head", self.root)
    }

    /// Gates' catch-up requests.
    pub fn request(&self) -> String {
        format!("{}/request", self.root)
    }

    /// The registry's answers to one gate.
    pub fn catchup(&self, gate: &str) -> String {
        format!("{}/gate/{gate}/catchup", self.root)
    }

    /// The seq a gate has applied, retained.
    pub fn applied(&self, gate: &str) -> String {
        format!("{}/gate/{gate}/applied", self.root)
    }

    /// Visitor-pass uses spent at a gate, for the registry to redistribute.
    pub fn uses(&self, gate: &str) -> String {
        format!("{}/gate/{gate}/uses", self.root)
    }

    pub fn uses_all(&self) -> String {
        format!("{}/gate/+/uses", self.root)
    }

    /// The gate a per-gate topic names.
    pub fn gate_of<'a>(&self, topic: &'a str) -> Option<&'a str> {
        topic
            .strip_prefix(self.root.as_str())?
            .strip_prefix("/gate/")?
            .split('/')
            .next()
    }

    /// Every gate's applied seq (the registry's view of the site).
    pub fn applied_all(&self) -> String {
        format!("{}/gate/+/applied", self.root)
    }

    /// A gate's stored events, in batches, for the registry's log (QoS 1).
    pub fn events(&self, gate: &str) -> String {
        format!("{}/gate/{gate}/{EVENTS}", self.root)
    }

    pub fn events_all(&self) -> String {
        format!("{}/gate/+/{EVENTS}", self.root)
    }

    /// The registry's acknowledgement of a gate's events, retained: where
    /// the gate resumes after a reconnect.
    pub fn events_ack(&self, gate: &str) -> String {
        format!("{}/gate/{gate}/event_ack", self.root)
    }

    /// A gate's visitor-use reports (every use not yet acknowledged), QoS 1.
    pub fn use_report(&self, gate: &str) -> String {
        format!("{}/gate/{gate}/{USE_REPORT}", self.root)
    }

    pub fn use_report_all(&self) -> String {
        format!("{}/gate/+/{USE_REPORT}", self.root)
    }

    /// The registry's acknowledgement of a gate's use report, retained.
    pub fn use_ack(&self, gate: &str) -> String {
        format!("{}/gate/{gate}/use_ack", self.root)
    }

    /// The registry's redistribution of gates' passages and failed guesses
    /// (signed, QoS 1; `shared::SharedState`).
    pub fn shared(&self) -> String {
        format!("{}/shared", self.root)
    }

    /// Gates asking for the last day of the shared state.
    pub fn shared_request(&self) -> String {
        format!("{}/shared_request", self.root)
    }

    /// The registry's answer to one gate's shared-state request.
    pub fn shared_for(&self, gate: &str) -> String {
        format!("{}/gate/{gate}/shared", self.root)
    }

    /// The gate a per-gate topic names, and what the topic carries
    /// (`applied`, `uses`, `event`, …).
    pub fn gate_topic<'a>(&self, topic: &'a str) -> Option<(&'a str, &'a str)> {
        let rest = topic
            .strip_prefix(self.root.as_str())?
            .strip_prefix("/gate/")?;
        rest.split_once('/')
    }
}

/// A gate asking for the entries after `after`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub gate: String,
    pub after: i64,
}

/// The retained head, and a gate's retained applied seq.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub seq: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

/// The message carrying a signed entry or snapshot: the signed body as a JSON
/// value, and the signature over its canonical form.
#[derive(Serialize, Deserialize)]
struct Signed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    entry: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sig: Option<String>,
    /// The end of a catch-up answer: the registry's head when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end: Option<i64>,
}

/// Signs a canonical body (as stored in `site_log.body`).
pub fn sign(key: &SigningKey, body: &str) -> String {
    B64.encode(key.sign(body.as_bytes()).to_bytes())
}

/// The wire form of a stored, signed entry.
pub fn entry_message(body: &str, sig: &str) -> Vec<u8> {
    signed_message("entry", body, sig)
}

/// The wire form of a signed snapshot.
pub fn snapshot_message(body: &str, sig: &str) -> Vec<u8> {
    signed_message("snapshot", body, sig)
}

fn signed_message(kind: &str, body: &str, sig: &str) -> Vec<u8> {
    // The body is our own canonical JSON: splicing it keeps the signed bytes exact.
    format!("{{\"{kind}\":{body},\"sig\":\"{sig}\"}}").into_bytes()
}

/// The end of a catch-up answer.
pub fn end_message(head: i64) -> Vec<u8> {
    serde_json::json!({ "end": head }).to_string().into_bytes()
}

/// A message a gate accepted as coming from its registry.
#[derive(Clone, Debug, PartialEq)]
pub enum Incoming {
    Entry(Entry),
    Snapshot(Snapshot),
    /// A catch-up answer ended; the registry's head then.
    End(i64),
}

/// Why a message was refused (the `site_log_rejected` alarm's reason).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    Malformed(String),
    Unsigned,
    BadSignature,
    WrongSite {
        site: String,
    },
    /// Not the next entry: some are missing before it.
    Gap {
        expected: i64,
        got: i64,
    },
    /// A gate's report from a gate whose key the registry does not pin.
    UnknownGate {
        gate: String,
    },
    /// A gate's report signed for another gate's or another kind's topic.
    Misplaced {
        signed: String,
    },
}

impl Rejection {
    /// The alarm detail's `why`.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::Unsigned => "unsigned",
            Rejection::BadSignature => "bad_signature",
            Rejection::WrongSite { .. } => "wrong_site",
            Rejection::Gap { .. } => "gap",
            Rejection::UnknownGate { .. } => "unknown_gate",
            Rejection::Misplaced { .. } => "misplaced",
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Malformed(why) => write!(f, "not a site log message: {why}"),
            Rejection::Unsigned => write!(f, "not signed"),
            Rejection::BadSignature => {
                write!(f, "signature does not verify with the pinned key")
            }
            Rejection::WrongSite { site } => write!(f, "entry of another site ({site:?})"),
            Rejection::Gap { expected, got } => {
                write!(f, "entry {got} arrived while {expected} is the next")
            }
            Rejection::UnknownGate { gate } => {
                write!(f, "no key pinned for gate {gate:?} in site.gate_keys")
            }
            Rejection::Misplaced { signed } => {
                write!(f, "a report signed for {signed} on another topic")
            }
        }
    }
}

/// Checks a message from the registry: well formed, signed by the pinned
/// key over its canonical body, of this site. Order is the caller's check.
pub fn open(payload: &[u8], site: &str, key: &VerifyingKey) -> Result<Incoming, Rejection> {
    let signed: Signed =
        serde_json::from_slice(payload).map_err(|e| Rejection::Malformed(e.to_string()))?;
    if let Some(head) = signed.end {
        return Ok(Incoming::End(head));
    }
    let (body, is_entry) = match (signed.entry, signed.snapshot) {
        (Some(entry), None) => (entry, true),
        (None, Some(snapshot)) => (snapshot, false),
        _ => {
            return Err(Rejection::Malformed(
                "expected one of entry, snapshot or end".into(),
            ))
        }
    };
    let sig = signed.sig.ok_or(Rejection::Unsigned)?;
    verify(key, &body, &sig)?;
    let incoming = if is_entry {
        let entry: Entry =
            serde_json::from_value(body).map_err(|e| Rejection::Malformed(e.to_string()))?;
        check_site(&entry.site, site)?;
        Incoming::Entry(entry)
    } else {
        let snapshot: Snapshot =
            serde_json::from_value(body).map_err(|e| Rejection::Malformed(e.to_string()))?;
        check_site(&snapshot.site, site)?;
        Incoming::Snapshot(snapshot)
    };
    Ok(incoming)
}

fn check_site(got: &str, site: &str) -> Result<(), Rejection> {
    if got != site {
        return Err(Rejection::WrongSite {
            site: got.to_string(),
        });
    }
    Ok(())
}

/// What a gate does with an entry given the seq it has applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// The next one: apply it.
    Next,
    /// Already applied: skip it quietly (a redelivery, or a catch-up overlap).
    Applied,
    /// Entries are missing before it.
    Gap,
}

pub fn order(applied: i64, seq: i64) -> Order {
    match seq.cmp(&(applied + 1)) {
        std::cmp::Ordering::Equal => Order::Next,
        std::cmp::Ordering::Less => Order::Applied,
        std::cmp::Ordering::Greater => Order::Gap,
    }
}

/// An entry's canonical form, the bytes its signature covers (as `site_log` stores them).
pub fn canonical_body(entry: &Entry) -> String {
    site_log::canonical(entry).unwrap_or_default()
}

// ---- Gates' reports: each gate signs what it sends the registry ----------
//
// A report (a batch of events, the applied seq, a visitor use, …) travels as
// `{"report":{"site":…,"gate":…,"kind":…,"body":…},"sig":…}`, signed with the
// gate's own key over the canonical form of `report`. The registry checks the
// signature with the key it pins for the gate the topic names, and that the
// site, gate and kind signed are the topic's, so a report cannot be moved to
// another gate's or another kind's topic. A replayed report is harmless: events
// are stored once by their id, uses and applied seqs only ever move one way.

/// The wire form of a gate's report of `kind` (the topic's last level).
pub fn report_message<T: Serialize>(
    key: &SigningKey,
    site: &str,
    gate: &str,
    kind: &str,
    body: &T,
) -> Result<Vec<u8>, serde_json::Error> {
    let report = serde_json::json!({
        "site": site,
        "gate": gate,
        "kind": kind,
        "body": serde_json::to_value(body)?,
    });
    let canonical = crate::signing::canonical::to_string(&report);
    let sig = sign(key, &canonical);
    // Our own canonical JSON: splicing it keeps the signed bytes exact.
    Ok(format!("{{\"report\":{canonical},\"sig\":\"{sig}\"}}").into_bytes())
}

#[derive(Deserialize)]
struct SignedReport {
    report: Option<Value>,
    sig: Option<String>,
}

#[derive(Deserialize)]
struct ReportHead {
    site: String,
    gate: String,
    kind: String,
    body: Value,
}

/// Checks a gate's report that arrived on `gate`'s topic of `kind`: signed by
/// `key` (the gate's pinned key; `None` when none is pinned), over this site,
/// gate and kind. Returns its body.
/// Checks `sig` (base64 Ed25519) over the RFC 8785 canonical form of `body`
/// with `key`: the one signature check of every signed site message.
pub fn verify(key: &VerifyingKey, body: &Value, sig: &str) -> Result<(), Rejection> {
    let sig: [u8; 64] = B64
        .decode(sig.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(Rejection::BadSignature)?;
    let canonical = crate::signing::canonical::to_string(body);
    key.verify(canonical.as_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| Rejection::BadSignature)
}

pub fn open_report(
    payload: &[u8],
    site: &str,
    gate: &str,
    kind: &str,
    key: Option<&VerifyingKey>,
) -> Result<Value, Rejection> {
    let signed: SignedReport =
        serde_json::from_slice(payload).map_err(|e| Rejection::Malformed(e.to_string()))?;
    // Plain JSON, as gates sent before reports were signed, is unsigned.
    let sig = signed.sig.ok_or(Rejection::Unsigned)?;
    let report = signed
        .report
        .ok_or_else(|| Rejection::Malformed("expected a signed report".into()))?;
    let key = key.ok_or_else(|| Rejection::UnknownGate {
        gate: gate.to_string(),
    })?;
    verify(key, &report, &sig)?;
    let head: ReportHead =
        serde_json::from_value(report).map_err(|e| Rejection::Malformed(e.to_string()))?;
    check_site(&head.site, site)?;
    if head.gate != gate || head.kind != kind {
        return Err(Rejection::Misplaced {
            signed: format!("{}/{}", head.gate, head.kind),
        });
    }
    Ok(head.body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(site: &str, seq: i64) -> Entry {
        Entry {
            v: site_log::VERSION,
            site: site.into(),
            seq,
            at: "2026-12-03T00:00:00.000Z".into(),
            changes: vec![site_log::Change::Delete {
                table: "card".into(),
                id: 4,
            }],
        }
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn a_signed_entry_of_this_site_opens() {
        let body = canonical_body(&entry("lotus", 3));
        let msg = entry_message(&body, &sign(&key(1), &body));
        assert_eq!(
            open(&msg, "lotus", &key(1).verifying_key()),
            Ok(Incoming::Entry(entry("lotus", 3)))
        );
    }

    #[test]
    fn refuses_forged_unsigned_tampered_and_foreign_entries() {
        let pinned = key(1).verifying_key();
        let body = canonical_body(&entry("lotus", 3));
        let forged = entry_message(&body, &sign(&key(2), &body));
        assert_eq!(
            open(&forged, "lotus", &pinned),
            Err(Rejection::BadSignature)
        );
        let unsigned = format!("{{\"entry\":{body}}}").into_bytes();
        assert_eq!(open(&unsigned, "lotus", &pinned), Err(Rejection::Unsigned));
        let tampered = entry_message(&body.replace("\"id\":4", "\"id\":5"), &sign(&key(1), &body));
        assert_eq!(
            open(&tampered, "lotus", &pinned),
            Err(Rejection::BadSignature)
        );
        let other = canonical_body(&entry("peony", 3));
        let foreign = entry_message(&other, &sign(&key(1), &other));
        assert_eq!(
            open(&foreign, "lotus", &pinned),
            Err(Rejection::WrongSite {
                site: "peony".into()
            })
        );
        assert!(matches!(
            open(b"{}", "lotus", &pinned),
            Err(Rejection::Malformed(_))
        ));
    }

    #[test]
    fn a_gates_report_opens_only_with_its_key_on_its_own_topic() {
        let north = key(3);
        let mark = Mark { seq: 7, at: None };
        let msg = report_message(&north, "lotus", "north", "applied", &mark).unwrap();
        let pinned = north.verifying_key();
        let body = open_report(&msg, "lotus", "north", "applied", Some(&pinned)).unwrap();
        assert_eq!(serde_json::from_value::<Mark>(body).unwrap(), mark);
        // Forged: another key; unknown: no key pinned for the gate.
        let forged = report_message(&key(4), "lotus", "north", "applied", &mark).unwrap();
        assert_eq!(
            open_report(&forged, "lotus", "north", "applied", Some(&pinned)),
            Err(Rejection::BadSignature)
        );
        assert_eq!(
            open_report(&msg, "lotus", "north", "applied", None),
            Err(Rejection::UnknownGate {
                gate: "north".into()
            })
        );
        // Moved to another gate's or kind's topic, or another site's.
        assert_eq!(
            open_report(&msg, "lotus", "south", "applied", Some(&pinned)),
            Err(Rejection::Misplaced {
                signed: "north/applied".into()
            })
        );
        assert!(matches!(
            open_report(&msg, "lotus", "north", "uses", Some(&pinned)),
            Err(Rejection::Misplaced { .. })
        ));
        assert!(matches!(
            open_report(&msg, "peony", "north", "applied", Some(&pinned)),
            Err(Rejection::WrongSite { .. })
        ));
        // Unsigned (today's plain JSON, or a report without its signature), and tampered.
        assert_eq!(
            open_report(b"{\"seq\":7}", "lotus", "north", "applied", Some(&pinned)),
            Err(Rejection::Unsigned)
        );
        assert!(matches!(
            open_report(b"not json", "lotus", "north", "applied", Some(&pinned)),
            Err(Rejection::Malformed(_))
        ));
        let text = String::from_utf8(msg).unwrap();
        let unsigned = text.split(",\"sig\"").next().unwrap().to_string() + "}";
        assert_eq!(
            open_report(
                unsigned.as_bytes(),
                "lotus",
                "north",
                "applied",
                Some(&pinned)
            ),
            Err(Rejection::Unsigned)
        );
        let tampered = text.replace("\"seq\":7", "\"seq\":9");
        assert_eq!(
            open_report(
                tampered.as_bytes(),
                "lotus",
                "north",
                "applied",
                Some(&pinned)
            ),
            Err(Rejection::BadSignature)
        );
    }

    #[test]
    fn names_the_gate_and_the_kind_of_a_per_gate_topic() {
        let t = Topics::new("lotus");
        assert_eq!(t.gate_topic(&t.events("north")), Some(("north", EVENTS)));
        assert_eq!(
            t.gate_topic(&t.applied("south")),
            Some(("south", "applied"))
        );
        assert_eq!(t.gate_topic("gatehouse-site/peony/gate/north/event"), None);
        assert_eq!(t.gate_topic(&t.log()), None);
    }

    #[test]
    fn orders_entries_against_the_applied_seq() {
        assert_eq!(order(4, 5), Order::Next);
        assert_eq!(order(4, 4), Order::Applied);
        assert_eq!(order(4, 7), Order::Gap);
    }
}
