use super::*;
use crate::domain::CardNumber;
use crate::domain::{PersonStatus, ResidentRole};
use crate::store::people::{self, NewPerson};
use crate::store::{cards, Store};

struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "gh-sitelog-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn store(&self, role: SiteRole) -> Store {
        let store = Store::open(&self.0.join("g.db"), &self.0).unwrap();
        configure(store.conn(), role, "lotus").unwrap();
        store
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.0).ok();
    }
}

fn entries(store: &Store) -> Vec<Entry> {
    store
        .conn()
        .prepare("SELECT body FROM site_log ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|b| serde_json::from_str(&b.unwrap()).unwrap())
        .collect()
}

fn tenant_with_card(store: &Store, card: &str) -> crate::domain::ResidentId {
    let id = people::add(store, "test", &NewPerson::new("张三", ResidentRole::Tenant)).unwrap();
    let card: CardNumber = card.parse().unwrap();
    cards::assign(store, "test", id, &card, None).unwrap();
    id
}

#[test]
fn each_register_change_on_the_registry_appends_one_entry_in_its_transaction() {
    let dir = Scratch::new("reg");
    let store = dir.store(SiteRole::Registry);
    let id = tenant_with_card(&store, "10:12345");
    let log = entries(&store);
    assert_eq!(log.len(), 2, "{log:?}");
    assert_eq!((log[0].seq, log[1].seq), (1, 2));
    assert_eq!(log[0].site, "lotus");
    let Change::Upsert { table, row, .. } = &log[1].changes[0] else {
        panic!("{:?}", log[1].changes);
    };
    assert_eq!(table, "card");
    assert_eq!(row["card_key"], "10:12345");
    assert_eq!(row["person_id"], id.0);
    // Nothing is left pending: the entry committed with the change.
    let pending: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM site_pending", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pending, 0);
    assert_eq!(head(store.conn()).unwrap(), 2);
}

#[test]
fn a_standalone_gateway_keeps_no_log() {
    let dir = Scratch::new("alone");
    let store = dir.store(SiteRole::Standalone);
    tenant_with_card(&store, "10:1");
    assert!(entries(&store).is_empty());
}

#[test]
fn a_gate_refuses_local_register_changes_naming_the_site() {
    let dir = Scratch::new("gate");
    let store = dir.store(SiteRole::Gate);
    let err =
        people::add(&store, "test", &NewPerson::new("李四", ResidentRole::Owner)).unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("gate of site lotus") && text.contains("site registry"),
        "{text}"
    );
    let count: i64 = store
        .conn()
        .query_row("SELECT count(*) FROM person", [], |r| r.get(0))
        .unwrap();
    assert_eq!(count, 0);
}

#[test]
fn a_gate_applies_entries_in_order_idempotently_and_matches_the_registry() {
    let reg_dir = Scratch::new("reg2");
    let registry = reg_dir.store(SiteRole::Registry);
    let gate_dir = Scratch::new("gate2");
    let gate = gate_dir.store(SiteRole::Gate);
    let id = tenant_with_card(&registry, "10:777");
    people::set_status(&registry, "test", id, PersonStatus::MovedOut).unwrap();
    let log = entries(&registry);
    assert_eq!(log.len(), 3);
    // Out of order: refused, nothing applied.
    assert!(apply_entry(gate.conn(), &log[1]).is_err());
    assert_eq!(applied_seq(gate.conn()).unwrap(), 0);
    for entry in &log {
        apply_entry(gate.conn(), entry).unwrap();
    }
    assert_eq!(applied_seq(gate.conn()).unwrap(), 3);
    assert_eq!(
        register_hash(gate.conn()).unwrap(),
        register_hash(registry.conn()).unwrap()
    );
    // The same entry again is not the next one: the caller skips it.
    assert!(apply_entry(gate.conn(), &log[2]).is_err());
    let holder = cards::lookup(gate.conn(), &"10:777".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(holder.status, PersonStatus::MovedOut);
    // Removing the person deletes the card with it at the gate too.
    people::remove(&registry, "test", id).unwrap();
    for entry in entries(&registry).iter().skip(3) {
        apply_entry(gate.conn(), entry).unwrap();
    }
    assert!(cards::lookup(gate.conn(), &"10:777".parse().unwrap())
        .unwrap()
        .is_none());
    assert_eq!(
        register_hash(gate.conn()).unwrap(),
        register_hash(registry.conn()).unwrap()
    );
}

#[test]
fn a_snapshot_brings_a_gate_to_the_registrys_register() {
    let reg_dir = Scratch::new("reg3");
    let registry = reg_dir.store(SiteRole::Registry);
    let gate_dir = Scratch::new("gate3");
    let gate = gate_dir.store(SiteRole::Gate);
    for n in 0..5 {
        tenant_with_card(&registry, &format!("10:{}", 100 + n));
    }
    assert_eq!(compact(registry.conn(), 2).unwrap(), 8);
    assert_eq!(
        entries_after(registry.conn(), 0, 100).unwrap().len(),
        0,
        "unsigned entries are not served"
    );
    let (snapshot, body) = snapshot(registry.conn()).unwrap();
    assert_eq!(snapshot.seq, 10);
    assert_eq!(canonical(&snapshot).unwrap(), body);
    apply_snapshot(gate.conn(), &snapshot).unwrap();
    assert_eq!(applied_seq(gate.conn()).unwrap(), 10);
    assert_eq!(
        register_hash(gate.conn()).unwrap(),
        register_hash(registry.conn()).unwrap()
    );
    // The ID-number hash never leaves the registry.
    let hashes: i64 = gate
        .conn()
        .query_row(
            "SELECT count(*) FROM person WHERE id_hash IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(hashes, 0);
}

#[test]
fn a_household_code_set_on_the_registry_reaches_the_gates_register() {
    use crate::access::HouseholdKey;
    use crate::store::addresses::{self, Address};
    let reg_dir = Scratch::new("hh-reg");
    let registry = reg_dir.store(SiteRole::Registry);
    let gate_dir = Scratch::new("hh-gate");
    let gate = gate_dir.store(SiteRole::Gate);
    let address: Address = "3-2-501".parse().unwrap();
    let mut new = NewPerson::new("王五", ResidentRole::Owner);
    new.address = Some(address.clone());
    let id = people::add(&registry, "test", &new).unwrap();
    let before = head(registry.conn()).unwrap();
    crate::store::atomic::atomically(registry.conn(), |c| {
        addresses::set_household_code(c, "test", &address, Some("3251"))
    })
    .unwrap();
    let log = entries(&registry);
    assert_eq!(log.len() as i64, before + 1, "one entry for the code");
    let Change::Upsert { table, row, .. } = &log.last().unwrap().changes[0] else {
        panic!("{log:?}");
    };
    assert_eq!(
        (table.as_str(), &row["code"]),
        ("household", &serde_json::json!("3251"))
    );
    for entry in &log {
        apply_entry(gate.conn(), entry).unwrap();
    }
    // A gate cannot assign codes itself: it applies the registry's.
    let err = crate::store::atomic::atomically(gate.conn(), |c| {
        addresses::set_household_code(c, "test", &address, Some("1111"))
    })
    .unwrap_err();
    assert!(format!("{err:#}").contains("site registry"), "{err:#}");
    let (register, _) = crate::store::snapshot::load(gate.conn(), 480).unwrap();
    let h = register
        .household_by_key(&HouseholdKey::from_keyed("3251").unwrap())
        .expect("the code names the household at the gate");
    assert_eq!(
        register.household_by_key(&HouseholdKey::from_keyed("3*2*501").unwrap()),
        Some(h)
    );
    assert_eq!(register.household_members(h), &[id]);
    assert_eq!(register.household_of(id), Some(h));
}

#[test]
fn unsigned_entries_are_found_through_the_partial_index_not_a_scan_of_the_log() {
    let dir = Scratch::new("unsigned");
    let store = dir.store(SiteRole::Registry);
    tenant_with_card(&store, "10:4242");
    let plan: Vec<String> = store
        .conn()
        .prepare(
            "EXPLAIN QUERY PLAN SELECT seq, body, sig FROM site_log \
             WHERE sig IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .unwrap()
        .query_map(params![0, i64::MAX], |r| r.get::<_, String>(3))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert!(
        plan.iter().any(|step| step.contains("site_log_unsigned")),
        "{plan:?}"
    );
    // And it finds what it should: both entries are unsigned until signed.
    assert_eq!(unsigned(store.conn()).unwrap().len(), 2);
    set_signature(store.conn(), 1, "sig").unwrap();
    let left: Vec<i64> = unsigned(store.conn())
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(left, [2]);
}
