//! What the decision remembers between credentials: recent unknown
//! credentials and lockouts per reader, wrong PINs per keypad over a day
//! (the PIN budget) and when each keypad last raised the guessing alarm, the
//! last direction of each person through paired gates (anti-passback), and
//! visitor-pass uses not yet reflected in the register snapshot. At a site
//! (issue 17) it also holds what the registry redistributed from the other
//! gateways: each person's last passage there, and the failed guesses and
//! wrong PINs there, which count toward every reader's lockout and every
//! keypad's PIN budget here ([`AccessState::fold_site`]).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use super::{
    AccessAlarm, Credential, Decision, DenyReason, GateContext, KeypadAlarm, Now, Subject,
    PIN_BUDGET_WINDOW,
};
use crate::config::Direction;
use crate::domain::{GateId, ResidentId};

#[derive(Debug, Default)]
pub struct AccessState {
    unknown: HashMap<GateId, VecDeque<Duration>>,
    locked_until: HashMap<GateId, Duration>,
    /// Wrong PINs per keypad within [`PIN_BUDGET_WINDOW`], oldest first.
    wrong_pins: HashMap<GateId, VecDeque<Duration>>,
    /// When each keypad last raised the `pin_guessing` alarm.
    pin_alarm_at: HashMap<GateId, Duration>,
    /// Keyed by the pair (the smaller gate id of the two) and the person;
    /// with the monotonic time of the passage.
    last_direction: HashMap<(GateId, ResidentId), (Direction, Duration)>,
    /// Uses granted since the register snapshot was loaded.
    visitor_uses: HashMap<i64, u32>,
    /// Uses granted but not yet written to the database.
    visitor_pending: HashMap<i64, u32>,
    /// Each person's last passage at the site's other gateways.
    site_direction: HashMap<ResidentId, (Direction, Duration)>,
    /// Failed guesses (wrong PINs included) at the site's other gateways, oldest first.
    site_guesses: VecDeque<Duration>,
    /// Wrong PINs at the site's other gateways, oldest first.
    site_wrong_pins: VecDeque<Duration>,
    /// Per reader: the site's failures up to this time were spent by its lockout.
    site_spent: HashMap<GateId, Duration>,
}

/// What happened at another gateway of the site, as its registry
/// redistributed it (see [`AccessState::fold_site`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SiteEvent {
    /// How long before now it happened (by the gateways' trusted wall clocks).
    pub age: Duration,
    pub kind: SiteKind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SiteKind {
    /// A resident was let through a gate of that direction.
    Passed {
        person: ResidentId,
        direction: Direction,
    },
    /// An unknown card, a card with someone else's face, a photo held up…
    FailedGuess,
    /// An unknown PIN (or household number): a failed guess that also spends PIN budgets.
    WrongPin,
}

/// The site's failures are remembered this long (the PIN budget's day), and
/// at most this many of each.
const SITE_MEMORY: Duration = PIN_BUDGET_WINDOW;
const SITE_KEPT: usize = 10_000;

fn insert_sorted(q: &mut VecDeque<Duration>, at: Duration) {
    let i = q.partition_point(|t| *t <= at);
    q.insert(i, at);
    while q.len() > SITE_KEPT {
        q.pop_front();
    }
}

/// A stored event as the access state sees it (see [`AccessState::restore`]).
#[derive(Clone, Debug, PartialEq)]
pub struct PastEvent {
    pub gate: GateId,
    /// How long before now it happened.
    pub age: Duration,
    pub kind: PastKind,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PastKind {
    /// A resident was let through.
    Passed { person: ResidentId },
    /// An unknown card, or a card with someone else's face.
    FailedGuess,
    /// An unknown PIN: a failed guess that also spends the keypad's budget.
    WrongPin,
    /// The keypad raised the `pin_guessing` alarm.
    PinGuessingAlarm,
    /// The reader was locked out.
    LockedOut,
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

    /// Unknown credentials at this reader within `window` before `now`, and
    /// the site's other gateways' failed guesses since its last lockout.
    pub fn recent_unknown(&self, gate: &GateId, now: Duration, window: Duration) -> usize {
        let within = |t: &&Duration| now.saturating_sub(**t) < window;
        let local = self
            .unknown
            .get(gate)
            .map_or(0, |q| q.iter().filter(within).count());
        let spent = self.site_spent.get(gate).copied();
        let site = self
            .site_guesses
            .iter()
            .filter(within)
            .filter(|t| spent.is_none_or(|s| **t > s))
            .count();
        local + site
    }

    /// The direction `person` last passed `gate`'s pair — or, with
    /// anti-passback on, any gate of the site's other gateways, whichever was
    /// later — unless that is older than the policy's reset.
    pub fn last_direction(
        &self,
        gate: &GateContext,
        person: ResidentId,
        now: Duration,
    ) -> Option<Direction> {
        let local = self.last_direction.get(&(pair_key(gate), person)).copied();
        let site = gate
            .policy
            .anti_passback
            .then(|| self.site_direction.get(&person).copied())
            .flatten();
        let (direction, at) = match (local, site) {
            (Some(l), Some(s)) if s.1 > l.1 => s,
            (Some(l), _) => l,
            (None, s) => s?,
        };
        match gate.policy.anti_passback_reset {
            Some(reset) if now.saturating_sub(at) >= reset => None,
            _ => Some(direction),
        }
    }

    /// Wrong PINs at this keypad, and at the site's other gateways, within
    /// `window` before `now`, oldest first.
    fn live_wrong_pins(&self, gate: &GateId, now: Duration, window: Duration) -> Vec<Duration> {
        let mut live: Vec<Duration> = self
            .wrong_pins
            .get(gate)
            .into_iter()
            .flatten()
            .chain(self.site_wrong_pins.iter())
            .filter(|t| now.saturating_sub(**t) < window)
            .copied()
            .collect();
        live.sort();
        live
    }

    /// Wrong PINs at this keypad (and the site's other gateways) within `window` before `now`.
    pub fn wrong_pins(&self, gate: &GateId, now: Duration, window: Duration) -> usize {
        self.live_wrong_pins(gate, now, window).len()
    }

    /// The oldest wrong PIN at this keypad (or the site's other gateways) within `window` before `now`.
    pub fn oldest_wrong_pin(
        &self,
        gate: &GateId,
        now: Duration,
        window: Duration,
    ) -> Option<Duration> {
        self.live_wrong_pins(gate, now, window).first().copied()
    }

    /// Whether the keypad has spent its day's budget of wrong PINs.
    pub fn pin_entry_suspended(&self, gate: &GateContext, now: Duration) -> bool {
        gate.policy.pin_budget.is_some_and(|budget| {
            self.wrong_pins(&gate.gate, now, PIN_BUDGET_WINDOW) >= budget as usize
        })
    }

    /// When PIN entry at a suspended keypad resumes (monotonic).
    pub fn pin_entry_resumes(&self, gate: &GateContext, now: Duration) -> Option<Duration> {
        if !self.pin_entry_suspended(gate, now) {
            return None;
        }
        let budget = gate.policy.pin_budget? as usize;
        // Resumes when all but budget - 1 of the wrong PINs have aged out.
        let live = self.live_wrong_pins(&gate.gate, now, PIN_BUDGET_WINDOW);
        live.get(live.len().checked_sub(budget)?)
            .map(|t| *t + PIN_BUDGET_WINDOW)
    }

    /// Whether the keypad raised the `pin_guessing` alarm within `window`.
    pub fn pin_alarm_raised_within(&self, gate: &GateId, now: Duration, window: Duration) -> bool {
        self.pin_alarm_at
            .get(gate)
            .is_some_and(|t| now.saturating_sub(*t) < window)
    }

    fn wrong_pin(&mut self, gate: &GateId, at: Duration) {
        let q = self.wrong_pins.entry(gate.clone()).or_default();
        q.retain(|t| at.saturating_sub(*t) < PIN_BUDGET_WINDOW);
        q.push_back(at);
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
            Some(
                DenyReason::UnknownCredential
                    | DenyReason::FaceMismatch
                    | DenyReason::CardFormatMismatch
                    | DenyReason::PresentationAttack
                    | DenyReason::UnknownHousehold
                    | DenyReason::HouseholdMismatch
            )
        );
        if failed_guess && credential.is_guessable() {
            let window = gate.policy.lockout_window;
            let q = self.unknown.entry(gate.gate.clone()).or_default();
            q.retain(|t| now.mono.saturating_sub(*t) < window);
            q.push_back(now.mono);
        }
        // A wrong PIN, or a household number that names no household.
        if matches!(
            decision.reason(),
            Some(DenyReason::UnknownCredential | DenyReason::UnknownHousehold)
        ) && credential.is_keyed()
        {
            self.wrong_pin(&gate.gate, now.mono);
        }
        if let Some(KeypadAlarm::PinGuessing { .. }) = decision.keypad_alarm {
            self.pin_alarm_at.insert(gate.gate.clone(), now.mono);
        }
        if let Some(AccessAlarm::ReaderLockout { .. }) = decision.alarm {
            self.locked_until
                .insert(gate.gate.clone(), now.mono + gate.policy.lockout_for);
            self.unknown.remove(&gate.gate);
            self.site_spent.insert(gate.gate.clone(), now.mono);
        }
        if !decision.is_granted() {
            return;
        }
        match &decision.subject {
            Some(Subject::Resident { id, .. }) if gate.paired_with.is_some() => {
                self.last_direction
                    .insert((pair_key(gate), *id), (gate.direction, now.mono));
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

    /// Rebuilds lockouts, failed-guess counts, the keypads' PIN budgets and
    /// anti-passback directions from stored events (oldest first) after a
    /// restart, so pulling the power neither clears a reader lockout or a
    /// spent PIN budget nor lets a card in twice.
    /// `now` is the monotonic time; each event happened `age` before it.
    pub fn restore(&mut self, past: &[PastEvent], gates: &[GateContext], now: Duration) {
        for event in past {
            let Some(gate) = gates.iter().find(|g| g.gate == event.gate) else {
                continue;
            };
            let Some(at) = now.checked_sub(event.age) else {
                continue;
            };
            match event.kind {
                PastKind::Passed { person } if gate.paired_with.is_some() => {
                    self.last_direction
                        .insert((pair_key(gate), person), (gate.direction, at));
                }
                PastKind::Passed { .. } => {}
                PastKind::FailedGuess | PastKind::WrongPin => {
                    if now.saturating_sub(at) < gate.policy.lockout_window {
                        self.unknown
                            .entry(gate.gate.clone())
                            .or_default()
                            .push_back(at);
                    }
                    if event.kind == PastKind::WrongPin
                        && now.saturating_sub(at) < PIN_BUDGET_WINDOW
                    {
                        self.wrong_pin(&gate.gate, at);
                    }
                }
                PastKind::PinGuessingAlarm => {
                    self.pin_alarm_at.insert(gate.gate.clone(), at);
                }
                PastKind::LockedOut => {
                    let until = at + gate.policy.lockout_for;
                    if until > now {
                        self.locked_until.insert(gate.gate.clone(), until);
                    }
                    self.unknown.remove(&gate.gate);
                    self.site_spent.insert(gate.gate.clone(), at);
                }
            }
        }
    }

    /// Folds in what happened at the site's other gateways (the registry
    /// redistributes their passages and failed guesses): a person's later
    /// passage there counts for anti-passback at every paired gate here that
    /// has it on; failed guesses there count toward each reader's lockout
    /// (those before its last lockout excepted) and wrong PINs toward each
    /// keypad's PIN budget. Events may come twice or out of order: a passage
    /// counts only when later than the one known; a repeated failure is the
    /// caller's to drop (the registry sends each once).
    pub fn fold_site(&mut self, events: &[SiteEvent], now: Duration) {
        for e in events {
            let Some(at) = now.checked_sub(e.age) else {
                continue;
            };
            match e.kind {
                SiteKind::Passed { person, direction } => {
                    let known_later =
                        matches!(self.site_direction.get(&person), Some((_, t)) if *t >= at);
                    if !known_later {
                        self.site_direction.insert(person, (direction, at));
                    }
                }
                SiteKind::FailedGuess => insert_sorted(&mut self.site_guesses, at),
                SiteKind::WrongPin => {
                    insert_sorted(&mut self.site_guesses, at);
                    insert_sorted(&mut self.site_wrong_pins, at);
                }
            }
        }
        for q in [&mut self.site_guesses, &mut self.site_wrong_pins] {
            while q
                .front()
                .is_some_and(|t| now.saturating_sub(*t) >= SITE_MEMORY)
            {
                q.pop_front();
            }
        }
    }

    /// A fresh register snapshot was loaded while no database write was in
    /// progress: it reflects every stored use, so only pending ones remain.
    pub fn register_reloaded(&mut self) {
        self.visitor_uses = self.visitor_pending.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::AccessPolicy;

    const HOUR: Duration = Duration::from_secs(3600);

    fn gate(id: &str, peer: &str, direction: Direction) -> GateContext {
        GateContext {
            gate: id.parse().unwrap(),
            direction,
            paired_with: Some(peer.parse().unwrap()),
            policy: AccessPolicy {
                anti_passback: true,
                ..AccessPolicy::default()
            },
            two_factor: Default::default(),
        }
    }

    fn past(gate: &str, age: Duration, kind: PastKind) -> PastEvent {
        PastEvent {
            gate: gate.parse().unwrap(),
            age,
            kind,
        }
    }

    #[test]
    fn a_remembered_direction_expires_after_the_reset() {
        let entry = gate("east", "east-out", Direction::In);
        let now = 10 * HOUR;
        let mut s = AccessState::new();
        s.restore(
            &[past(
                "east",
                HOUR,
                PastKind::Passed {
                    person: ResidentId(1),
                },
            )],
            std::slice::from_ref(&entry),
            now,
        );
        assert_eq!(
            s.last_direction(&entry, ResidentId(1), now),
            Some(Direction::In)
        );
        // The default reset is 4 h: three hours later it is forgotten.
        assert_eq!(
            s.last_direction(&entry, ResidentId(1), now + 3 * HOUR),
            None
        );
    }

    #[test]
    fn restore_keeps_a_lockout_still_running_and_drops_an_ended_one() {
        let g = gate("east", "east-out", Direction::In);
        let now = 10 * HOUR;
        let lockout = g.policy.lockout_for;
        let mut s = AccessState::new();
        s.restore(
            &[past("east", lockout / 2, PastKind::LockedOut)],
            std::slice::from_ref(&g),
            now,
        );
        assert_eq!(s.locked_until(&g.gate, now), Some(now + lockout / 2));
        let mut s = AccessState::new();
        s.restore(
            &[past("east", lockout * 2, PastKind::LockedOut)],
            std::slice::from_ref(&g),
            now,
        );
        assert!(!s.reader_locked(&g.gate, now));
        // Failed guesses inside the window count; older ones do not; unknown gates are skipped.
        let mut s = AccessState::new();
        s.restore(
            &[
                past("east", g.policy.lockout_window * 2, PastKind::FailedGuess),
                past("east", Duration::from_secs(5), PastKind::FailedGuess),
                past("gone", Duration::from_secs(5), PastKind::FailedGuess),
            ],
            std::slice::from_ref(&g),
            now,
        );
        assert_eq!(s.recent_unknown(&g.gate, now, g.policy.lockout_window), 1);
    }

    #[test]
    fn restore_keeps_a_spent_pin_budget_for_a_day_and_the_guessing_alarm_quiet() {
        let g = gate("east", "east-out", Direction::In);
        let now = 30 * HOUR;
        let budget = g.policy.pin_budget.unwrap();
        // One wrong PIN an hour for the last `budget` hours, plus the PIN alarm.
        let mut events: Vec<PastEvent> = (1..=budget)
            .rev()
            .map(|h| past("east", HOUR * h, PastKind::WrongPin))
            .collect();
        events.push(past_alarm());
        let mut s = AccessState::new();
        s.restore(&events, std::slice::from_ref(&g), now);
        assert!(s.pin_entry_suspended(&g, now));
        assert_eq!(
            s.pin_entry_resumes(&g, now),
            Some(now - HOUR * budget + PIN_BUDGET_WINDOW)
        );
        assert!(s.pin_alarm_raised_within(&g.gate, now, g.policy.pin_alarm_window));
        // A wrong PIN older than a day is not counted.
        let mut s = AccessState::new();
        let mut events: Vec<PastEvent> = (1..budget)
            .rev()
            .map(|h| past("east", HOUR * h, PastKind::WrongPin))
            .collect();
        events.insert(0, past("east", HOUR * 25, PastKind::WrongPin));
        s.restore(&events, std::slice::from_ref(&g), now);
        assert!(!s.pin_entry_suspended(&g, now));
        assert_eq!(
            s.wrong_pins(&g.gate, now, PIN_BUDGET_WINDOW),
            budget as usize - 1
        );
    }

    fn past_alarm() -> PastEvent {
        past("east", 2 * HOUR / 3, PastKind::PinGuessingAlarm)
    }
}
