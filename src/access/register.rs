//! The in-memory register the decision reads: people, their cards, plates,
//! visitor passes and access groups, indexed for O(1) lookup. Built from the
//! database by `store::snapshot`, or directly by tests.
//!
//! Holds the least it needs: masked names, never full names or ID numbers.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};

use super::household::{HouseholdId, HouseholdKey};
use crate::domain::{
    CardFormat, CardNumber, GateId, PersonStatus, Plate, ResidentId, ResidentRole,
};

/// A validity bound as the schema stores it: a local calendar date
/// (inclusive) or an instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    Date(NaiveDate),
    Instant(DateTime<Utc>),
}

impl Bound {
    /// `2025-03-01` or an RFC 3339 instant.
    pub fn parse(s: &str) -> Result<Bound, String> {
        let s = s.trim();
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Ok(Bound::Date(d));
        }
        DateTime::parse_from_rfc3339(s)
            .map(|t| Bound::Instant(t.with_timezone(&Utc)))
            .map_err(|_| format!("expected a date YYYY-MM-DD or an RFC 3339 instant, got {s:?}"))
    }

    /// Has this start bound been reached at `now`?
    pub fn started(&self, now: DateTime<Utc>, offset: FixedOffset) -> bool {
        match self {
            Bound::Date(d) => now.with_timezone(&offset).date_naive() >= *d,
            Bound::Instant(t) => now >= *t,
        }
    }

    /// Is this end bound still ahead at `now` (dates are inclusive)?
    pub fn not_ended(&self, now: DateTime<Utc>, offset: FixedOffset) -> bool {
        match self {
            Bound::Date(d) => now.with_timezone(&offset).date_naive() <= *d,
            Bound::Instant(t) => now < *t,
        }
    }
}

/// The register's entry for a resident: what a decision needs and nothing
/// more (masked name, no ID number). The stored record with the full name is
/// `store::people::Person`.
#[derive(Clone, Debug)]
pub struct PersonEntry {
    pub id: ResidentId,
    /// `张*`: what events and displays show.
    pub masked_name: String,
    pub role: ResidentRole,
    pub status: PersonStatus,
    pub valid_from: Option<Bound>,
    pub valid_until: Option<Bound>,
    /// Residence permit expiry (floating population), enforced like a lease end.
    pub permit_until: Option<Bound>,
    /// A row the snapshot could not read fully: refuse rather than guess.
    pub invalid: Option<String>,
}

/// The register's entry for a visitor pass: masked name, window and uses.
/// The stored pass with the visitor's name and phone is
/// `store::visitors::VisitorPass`.
#[derive(Clone, Debug)]
pub struct PassEntry {
    pub id: i64,
    pub host: ResidentId,
    pub masked_name: String,
    /// `None`: every gate.
    pub gates: Option<Vec<GateId>>,
    pub valid_from: Bound,
    pub valid_until: Bound,
    /// `None`: unlimited within the window.
    pub uses_left: Option<u32>,
    pub revoked: bool,
}

/// A weekly window of a group at one gate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub gate: GateId,
    /// Bit 0 = Monday … bit 6 = Sunday.
    pub days: u8,
    /// Minutes after local midnight, `[start, end)`.
    pub start_minute: u16,
    pub end_minute: u16,
}

pub type GroupId = i64;

#[derive(Clone, Debug)]
pub struct Register {
    pub offset: FixedOffset,
    pub(crate) persons: HashMap<ResidentId, PersonEntry>,
    /// Each card (by `card_key`): its holder and the Wiegand format it was
    /// enrolled in, in one map so a swipe hashes its key once.
    pub(crate) cards: HashMap<String, (ResidentId, CardFormat)>,
    pub(crate) plates: HashMap<Plate, ResidentId>,
    pub(crate) passes: HashMap<i64, PassEntry>,
    pub(crate) pass_by_pin: HashMap<[u8; 32], i64>,
    pub(crate) passes_by_plate: HashMap<Plate, Vec<i64>>,
    pub(crate) group_windows: HashMap<GroupId, Vec<Window>>,
    pub(crate) role_groups: HashMap<ResidentRole, Vec<GroupId>>,
    pub(crate) person_groups: HashMap<ResidentId, Vec<GroupId>>,
    /// The station's watchlist: card key or plate → entry.
    pub(crate) watch_cards: HashMap<String, WatchHit>,
    pub(crate) watch_plates: HashMap<Plate, WatchHit>,
    /// Households as a household gate's keypad names them: by the console's
    /// code and by address (`3-2-501`), and each one's members.
    pub(crate) household_codes: HashMap<String, HouseholdId>,
    pub(crate) household_addresses: HashMap<String, HouseholdId>,
    pub(crate) household_of: HashMap<ResidentId, HouseholdId>,
    pub(crate) household_members: HashMap<HouseholdId, Vec<ResidentId>>,
}

/// A watchlist entry as the decision needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchHit {
    /// Refuse entry (else alarm only).
    pub deny: bool,
    /// The entry lapses at this instant, if ever.
    pub expires_at: Option<DateTime<Utc>>,
}

impl WatchHit {
    fn live_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_none_or(|t| t > now)
    }
}

impl Register {
    /// An empty register for a site `utc_offset_minutes` east of UTC.
    pub fn new(utc_offset_minutes: i32) -> Register {
        let offset = FixedOffset::east_opt(utc_offset_minutes * 60)
            .unwrap_or_else(|| FixedOffset::east_opt(0).expect("zero offset is valid"));
        Register {
            offset,
            persons: HashMap::new(),
            cards: HashMap::new(),
            plates: HashMap::new(),
            passes: HashMap::new(),
            pass_by_pin: HashMap::new(),
            passes_by_plate: HashMap::new(),
            group_windows: HashMap::new(),
            role_groups: HashMap::new(),
            person_groups: HashMap::new(),
            watch_cards: HashMap::new(),
            watch_plates: HashMap::new(),
            household_codes: HashMap::new(),
            household_addresses: HashMap::new(),
            household_of: HashMap::new(),
            household_members: HashMap::new(),
        }
    }

    /// A household at `address` (`3-2-501`) with the console's `code`, if
    /// any. Of several households at one address, the first added is the
    /// one its address names (the register's own rule, `household_at`).
    pub fn add_household(&mut self, id: HouseholdId, address: &str, code: Option<&str>) {
        self.household_addresses
            .entry(address.to_string())
            .or_insert(id);
        if let Some(code) = code {
            self.household_codes.insert(code.to_string(), id);
        }
        self.household_members.entry(id).or_default();
    }

    /// `person` lives in `household`.
    pub fn add_household_member(&mut self, household: HouseholdId, person: ResidentId) {
        self.household_of.insert(person, household);
        self.household_members
            .entry(household)
            .or_default()
            .push(person);
    }

    /// The household a keyed number names.
    pub fn household_by_key(&self, key: &HouseholdKey) -> Option<HouseholdId> {
        match (key.code(), key.address()) {
            (Some(code), _) => self.household_codes.get(code).copied(),
            (None, Some(address)) => self.household_addresses.get(&address).copied(),
            (None, None) => None,
        }
    }

    /// The household `person` lives in.
    pub fn household_of(&self, person: ResidentId) -> Option<HouseholdId> {
        self.household_of.get(&person).copied()
    }

    /// The members of `household` (the few a household gate's face is matched against).
    pub fn household_members(&self, household: HouseholdId) -> &[ResidentId] {
        self.household_members
            .get(&household)
            .map_or(&[], Vec::as_slice)
    }

    pub fn add_watched_card(&mut self, card_key: String, hit: WatchHit) {
        self.watch_cards.insert(card_key, hit);
    }

    pub fn add_watched_plate(&mut self, plate: Plate, hit: WatchHit) {
        self.watch_plates.insert(plate, hit);
    }

    /// `Some(deny)` when the credential is on a live watchlist entry.
    pub fn watch_hit(&self, credential: &super::Credential, now: DateTime<Utc>) -> Option<bool> {
        use super::Credential;
        let hit = match credential {
            // A card shown with a face at a card + face gate is still that card.
            // No listed card (the common case): no key to format on the swipe's path.
            Credential::Card(_) | Credential::CardAndFace { .. } if self.watch_cards.is_empty() => {
                return None
            }
            Credential::Card(card) | Credential::CardAndFace { card, .. } => {
                self.watch_cards.get(&card.key())
            }
            Credential::Plate(plate) => return self.plate_watched(plate, now),
            // A listed face is found by the cameras (`face::watch`); the
            // candidates of an ambiguous reading by `daemon::plates`.
            Credential::Pin(_)
            | Credential::HouseholdAndFace { .. }
            | Credential::Face { .. }
            | Credential::SpoofedFace { .. }
            | Credential::WatchlistedFace { .. }
            | Credential::UnknownFace { .. }
            | Credential::AmbiguousPlate { .. }
            | Credential::Remote { .. }
            | Credential::ExitButton => None,
        }?;
        hit.live_at(now).then_some(hit.deny)
    }

    /// `Some(deny)` when `plate` is on a live watchlist entry (the LPR
    /// resolution asks this of every OCR candidate, not only the one presented).
    pub fn plate_watched(&self, plate: &Plate, now: DateTime<Utc>) -> Option<bool> {
        let hit = self.watch_plates.get(plate)?;
        hit.live_at(now).then_some(hit.deny)
    }

    /// Whether `plate` is registered to a resident's vehicle or a visitor pass.
    pub fn plate_registered(&self, plate: &Plate) -> bool {
        self.plates.contains_key(plate) || self.passes_by_plate.contains_key(plate)
    }

    pub fn add_person(&mut self, person: PersonEntry) {
        self.persons.insert(person.id, person);
    }

    /// `card_key` as in `card.card_key` (`CardNumber::key`), in the format
    /// an enrolment without `--format` gives it (the smallest that fits).
    pub fn add_card(&mut self, card_key: String, person: ResidentId) {
        let format = card_key
            .parse::<CardNumber>()
            .ok()
            .and_then(|c| CardFormat::infer(&c).ok())
            .unwrap_or(CardFormat::Raw);
        self.add_card_in(card_key, format, person);
    }

    /// A card enrolled in `format` (`card.format`).
    pub fn add_card_in(&mut self, card_key: String, format: CardFormat, person: ResidentId) {
        self.cards.insert(card_key, (person, format));
    }

    /// The holder of a card and the format it was enrolled in.
    pub fn card_holder(&self, card_key: &str) -> Option<(ResidentId, CardFormat)> {
        self.cards.get(card_key).copied()
    }

    pub fn add_plate(&mut self, plate: Plate, person: ResidentId) {
        self.plates.insert(plate, person);
    }

    pub fn add_pass(&mut self, pass: PassEntry, pin_hash: [u8; 32], plate: Option<Plate>) {
        self.pass_by_pin.insert(pin_hash, pass.id);
        if let Some(plate) = plate {
            self.passes_by_plate.entry(plate).or_default().push(pass.id);
        }
        self.passes.insert(pass.id, pass);
    }

    pub fn add_window(&mut self, group: GroupId, window: Window) {
        self.group_windows.entry(group).or_default().push(window);
    }

    /// Declares a group (so a group with no windows still restricts its members).
    pub fn add_group(&mut self, group: GroupId) {
        self.group_windows.entry(group).or_default();
    }

    pub fn add_role_member(&mut self, group: GroupId, role: ResidentRole) {
        self.role_groups.entry(role).or_default().push(group);
    }

    pub fn add_person_member(&mut self, group: GroupId, person: ResidentId) {
        self.person_groups.entry(person).or_default().push(group);
    }

    pub fn person(&self, id: ResidentId) -> Option<&PersonEntry> {
        self.persons.get(&id)
    }

    pub fn pass(&self, id: i64) -> Option<&PassEntry> {
        self.passes.get(&id)
    }

    pub fn person_count(&self) -> usize {
        self.persons.len()
    }

    pub fn card_owner(&self, card_key: &str) -> Option<ResidentId> {
        self.cards.get(card_key).map(|(id, _)| *id)
    }

    /// The groups that restrict this person (direct and through their role).
    pub fn groups_of(&self, person: &PersonEntry) -> impl Iterator<Item = GroupId> + '_ {
        let direct = self.person_groups.get(&person.id).into_iter().flatten();
        let by_role = self.role_groups.get(&person.role).into_iter().flatten();
        direct.chain(by_role).copied()
    }

    pub fn windows(&self, group: GroupId) -> &[Window] {
        self.group_windows.get(&group).map_or(&[], Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_parse_dates_and_instants() {
        assert!(matches!(Bound::parse("2025-03-01"), Ok(Bound::Date(_))));
        assert!(matches!(
            Bound::parse("2025-03-01T08:00:00.000Z"),
            Ok(Bound::Instant(_))
        ));
        assert!(Bound::parse("March").is_err());
    }
}
