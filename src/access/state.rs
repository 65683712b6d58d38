//! What the decision remembers between credentials: recent unknown
//! credentials and lockouts per reader, the last direction of each person
//! through paired gates (anti-passback), and visitor-pass uses not yet
//! reflected in the register snapshot.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::{AccessAlarm, Credential, Decision, DenyReason, GateContext, Now, Subject};
use crate::config::Direction;
use crate::domain::{GateId, ResidentId};

#[derive(Debug, Default)]
pub struct AccessState {
    unknown: HashMap<GateId, VecDeque<Duration>>,
    locked_until: HashMap<GateId, Duration>,
    /// Keyed by the pair (the smaller gate id of the two) and the person.
    last_direction: HashMap<(GateId, ResidentId), Direction>,
    /// Uses granted since the register snapshot was loaded.
    visitor_uses: HashMap<i64, u32>,
    /// Uses granted but not yet written to the database.
    visitor_pending: HashMap<i64, u32>,
}

fn pair_key(gate: &GateContext) -> GateId {
    match &gate.paired_with {
        Some(peer) if peer < &gate.gate => peer.clone(),
        _ => gate.gate.clone(),
    }
}

impl AccessState {
    pub fn new() -> AccessState {
        AccessState::default()
    }

    pub fn reader_locked(&self, gate: &GateId, now: Duration) -> bool {
        self.locked_until
            .get(gate)
            .is_some_and(|until| now < *until)
    }

    /// When the reader's lockout ends (monotonic), if it is locked out.
    pub fn locked_until(&self, gate: &GateId, now: Duration) -> Option<Duration> {
        self.locked_until
            .get(gate)
            .copied()
            .filter(|until| now < *until)
    }

    /// Unknown credentials at this reader within `window` before `now`.
    pub fn recent_unknown(&self, gate: &GateId, now: Duration, window: Duration) -> usize {
        self.unknown.get(gate).map_or(0, |q| {
            q.iter()
                .filter(|t| now.saturating_sub(**t) < window)
                .count()
        })
    }

    pub fn last_direction(&self, gate: &GateContext, person: ResidentId) -> Option<Direction> {
        self.last_direction.get(&(pair_key(gate), person)).copied()
    }

    pub fn visitor_uses(&self, pass: i64) -> u32 {
        self.visitor_uses.get(&pass).copied().unwrap_or(0)
    }

    /// Records what a decision changes. Call with the arguments given to `decide`.
    pub fn apply(
        &mut self,
        decision: &Decision,
        credential: &Credential,
        gate: &GateContext,
        now: &Now,
    ) {
        let failed_guess = matches!(
            decision.reason(),
            Some(DenyReason::UnknownCredential | DenyReason::FaceMismatch)
        );
        if failed_guess && credential.is_guessable() {
            let window = gate.policy.lockout_window;
            let q = self.unknown.entry(gate.gate.clone()).or_default();
            q.retain(|t| now.mono.saturating_sub(*t) < window);
            q.push_back(now.mono);
        }
        if let Some(AccessAlarm::ReaderLockout { .. }) = decision.alarm {
            self.locked_until
                .insert(gate.gate.clone(), now.mono + gate.policy.lockout_for);
            self.unknown.remove(&gate.gate);
        }
        if !decision.is_granted() {
            return;
        }
        match &decision.subject {
            Some(Subject::Resident { id, .. }) if gate.paired_with.is_some() => {
                self.last_direction
                    .insert((pair_key(gate), *id), gate.direction);
            }
            Some(Subject::Visitor {
                pass,
                limited: true,
                ..
            }) => {
                *self.visitor_uses.entry(*pass).or_default() += 1;
                *self.visitor_pending.entry(*pass).or_default() += 1;
            }
            _ => {}
        }
    }

    /// The use of `pass` granted earlier is now in the database.
    pub fn visitor_use_stored(&mut self, pass: i64) {
        if let Some(n) = self.visitor_pending.get_mut(&pass) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.visitor_pending.remove(&pass);
            }
        }
    }

    /// A fresh register snapshot was loaded while no database write was in
    /// progress: it reflects every stored use, so only pending ones remain.
    pub fn register_reloaded(&mut self) {
        self.visitor_uses = self.visitor_pending.clone();
    }
}
