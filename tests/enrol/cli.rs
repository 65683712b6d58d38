//! The property manager's commands against a real SQLite register, through
//! the real binary: resident, card, vehicle, visitor, group.

use crate::enrol_support;

use enrol_support::Site;
use gatehouse::domain::{CardNumber, PersonStatus, Plate, ResidentId, ResidentRole};
use gatehouse::store::visitors::{self, Pin};
use gatehouse::store::{cards, events, people, vehicles};

const ID: &str = "510105199001011237";

fn add_zhang(site: &Site) -> String {
    site.ok(&[
        "resident",
        "add",
        "--name",
        "张三",
        "--id-number",
        ID,
        "--phone",
        "13800000000",
        "--address",
        "3-2-501",
        "--role",
        "tenant",
        "--valid-until",
        "2027-06-30",
    ])
    .trim()
    .to_string()
}

#[test]
fn resident_add_prints_the_new_id_and_stores_masked_id_and_lease_end() {
    let site = Site::new("add");
    assert_eq!(add_zhang(&site), "R1");
    let store = site.store();
    let p = people::get(store.conn(), ResidentId(1)).unwrap();
    assert_eq!(p.name, "张三");
    assert_eq!(p.id_masked.as_deref(), Some("******************"));
    assert_eq!(p.valid_until.unwrap().to_string(), "2027-06-30");
    assert_eq!(p.address.unwrap().to_string(), "3-2-501");
    assert_eq!(p.created_by, "os:manager");
    let audit: (String, String) = store
        .conn()
        .query_row(
            "SELECT actor, action FROM audit WHERE subject = 'R1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(audit, ("os:manager".into(), "person.add".into()));
}

#[test]
fn resident_add_rejects_each_invalid_field_with_exit_2_and_stores_nothing() {
    let site = Site::new("add-invalid");
    let cases: &[(&[&str], &str)] = &[
        (
            &["--id-number", "510105199001011238"],
            "checksum digit should be 7",
        ),
        (&["--phone", "12800000000"], "start with 13 to 19"),
        (&["--valid-until", "2027-02-30"], "not a real date"),
        (&["--address", "3-2"], "not an address"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["resident", "add", "--name", "李四", "--role", "tenant"];
        args.extend_from_slice(extra);
        let (code, err) = site.fails(&args);
        assert_eq!(code, 2, "{extra:?}: {err}");
        assert!(err.contains(expected), "{extra:?}: {err}");
    }
    let (code, err) = site.fails(&["resident", "add", "--name", "李四", "--role", "landlord"]);
    assert_eq!(code, 2);
    assert!(err.contains("unknown role"), "{err}");
    assert!(
        site.ok(&["resident", "list", "--format", "csv"])
            .lines()
            .count()
            == 1
    );
}

#[test]
fn the_same_id_number_cannot_be_registered_twice() {
    let site = Site::new("dup-id");
    add_zhang(&site);
    let (code, err) = site.fails(&[
        "resident",
        "add",
        "--name",
        "张三丰",
        "--id-number",
        ID,
        "--role",
        "owner",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("this resident_id number is already registered to R1"),
        "{err}"
    );
    assert!(!err.contains(ID), "the error must not echo the ID number");
}

#[test]
fn resident_list_searches_by_name_address_card_plate_and_id_number() {
    let site = Site::new("list");
    add_zhang(&site);
    site.ok(&[
        "resident",
        "add",
        "--name",
        "欧阳娜娜",
        "--role",
        "owner",
        "--address",
        "5-1-101",
    ]);
    site.ok(&["card", "assign", "R1", "--card", "10:12345"]);
    site.ok(&["vehicle", "add", "川A12345", "--resident", "R2"]);
    let ids = |args: &[&str]| -> Vec<String> {
        let mut a = vec!["resident", "list", "--format", "csv"];
        a.extend_from_slice(args);
        site.ok(&a)
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&[]), ["R1", "R2"]);
    assert_eq!(ids(&["--name", "娜"]), ["R2"]);
    assert_eq!(ids(&["--address", "3"]), ["R1"]);
    assert_eq!(ids(&["--address", "5-1-101"]), ["R2"]);
    assert_eq!(ids(&["--card", "10:12345"]), ["R1"]);
    assert_eq!(ids(&["--plate", "川a 12345"]), ["R2"]);
    assert_eq!(ids(&["--id-number", ID]), ["R1"]);
    assert_eq!(ids(&["--role", "owner"]), ["R2"]);
    assert!(
        ids(&["--name", "%"]).is_empty(),
        "LIKE wildcards are literal"
    );
    // The search is audited without the values searched for.
    let detail: String = site
        .store()
        .conn()
        .query_row(
            "SELECT detail FROM audit WHERE action = 'person.search' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        detail.contains("\"name\"") && !detail.contains('%'),
        "{detail}"
    );
}

#[test]
fn resident_list_table_aligns_chinese_names_and_masks_phones() {
    let site = Site::new("table");
    add_zhang(&site);
    site.ok(&["resident", "add", "--name", "Li Si", "--role", "owner"]);
    let out = site.ok(&["resident", "list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    // The role column starts at the same display column on every line.
    let col =
        |l: &str, word: &str| unicode_width::UnicodeWidthStr::width(&l[..l.find(word).unwrap()]);
    assert_eq!(col(lines[0], "role"), col(lines[1], "tenant"), "{out}");
    assert_eq!(col(lines[0], "role"), col(lines[2], "owner"), "{out}");
    assert!(
        out.contains("138****0000") && !out.contains("13800000000"),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&site.ok(&["resident", "list", "--format", "json"])).unwrap();
    assert_eq!(json[0]["name"], "张三");
    assert_eq!(json[0]["phone"], "138****0000");
}

#[test]
fn resident_show_masks_personal_data_and_audits_reads_and_reveals() {
    let site = Site::new("show");
    add_zhang(&site);
    let out = site.ok(&["resident", "show", "R1"]);
    assert!(out.contains("******************"), "{out}");
    assert!(
        out.contains("138****0000") && !out.contains("13800000000"),
        "{out}"
    );
    let out = site.ok(&[
        "resident",
        "show",
        "R1",
        "--reveal-phone",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["phone"], "13800000000");
    assert_eq!(v["id_masked"], "******************");
    let actions: Vec<String> = site
        .store()
        .conn()
        .prepare("SELECT action FROM audit WHERE subject = 'R1' ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        actions,
        [
            "person.add",
            "person.read",
            "person.read",
            "person.read_phone"
        ]
    );
    let (code, err) = site.fails(&["resident", "show", "R9"]);
    assert_eq!(code, 1);
    assert!(err.contains("no resident R9"), "{err}");
}

#[test]
fn resident_update_changes_and_clears_fields_and_reports_what_changed() {
    let site = Site::new("update");
    add_zhang(&site);
    let out = site.ok(&[
        "resident",
        "update",
        "R1",
        "--valid-until",
        "none",
        "--phone",
        "13912345678",
        "--address",
        "4-1-101",
        "--notes",
        "换房",
    ]);
    assert!(
        out.contains("updated phone, valid_until, notes, address"),
        "{out}"
    );
    let p = people::get(site.store().conn(), ResidentId(1)).unwrap();
    assert_eq!(p.valid_until, None);
    assert_eq!(p.phone.unwrap().as_str(), "13912345678");
    assert_eq!(p.address.unwrap().to_string(), "4-1-101");
    assert!(site
        .ok(&["resident", "update", "R1", "--phone", "13912345678"])
        .contains("nothing changed"));
    let (code, err) = site.fails(&[
        "resident",
        "update",
        "R1",
        "--valid-from",
        "2028-01-01",
        "--valid-until",
        "2027-01-01",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("before valid_from"), "{err}");
}

#[test]
fn suspend_resume_and_move_out_change_status_seen_by_the_gate_lookup() {
    let site = Site::new("status");
    add_zhang(&site);
    site.ok(&["card", "assign", "R1", "--card", "10:12345"]);
    let status = || {
        cards::lookup(site.store().conn(), &"10:12345".parse().unwrap())
            .unwrap()
            .unwrap()
            .status
    };
    assert_eq!(status(), PersonStatus::Active);
    assert!(site
        .ok(&["resident", "suspend", "R1"])
        .contains("active -> suspended"));
    assert_eq!(status(), PersonStatus::Suspended);
    site.ok(&["resident", "resume", "R1"]);
    assert_eq!(status(), PersonStatus::Active);
    site.ok(&["resident", "move-out", "R1"]);
    assert_eq!(status(), PersonStatus::MovedOut);
}

#[test]
fn resident_remove_needs_yes_deletes_credentials_and_keeps_events_pseudonymous() {
    let site = Site::new("remove");
    add_zhang(&site);
    site.ok(&["card", "assign", "R1", "--card", "10:12345"]);
    site.ok(&["vehicle", "add", "川A12345", "--resident", "R1"]);
    site.ok(&[
        "visitor",
        "pass",
        "--host",
        "R1",
        "--name",
        "李四",
        "--valid-for",
        "4h",
    ]);
    {
        let mut store = site.store();
        let mut e = events::NewEvent::now(events::EventKind::Access, true);
        e.subject_id = Some(ResidentId(1));
        e.subject_name = Some(gatehouse::domain::masked_name("张三"));
        e.credential_kind = Some("card".into());
        events::append(store.conn_mut(), &e).unwrap();
    }
    let (code, err) = site.fails(&["resident", "remove", "R1"]);
    assert_eq!(code, 2);
    assert!(err.contains("--yes"), "{err}");
    let out = site.ok(&["resident", "remove", "R1", "--yes"]);
    assert!(
        out.contains("removed R1 (张*): 1 card(s), 1 vehicle(s), 1 visitor pass(es)"),
        "{out}"
    );
    let store = site.store();
    let count = |t: &str| -> i64 {
        store
            .conn()
            .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    };
    assert_eq!(
        (
            count("person"),
            count("card"),
            count("vehicle"),
            count("visitor_pass")
        ),
        (0, 0, 0, 0)
    );
    let (subject, name): (i64, String) = store
        .conn()
        .query_row("SELECT subject_id, subject_name FROM event", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((subject, name.as_str()), (1, "张*"));
    assert!(cards::lookup(store.conn(), &"10:12345".parse().unwrap())
        .unwrap()
        .is_none());
}

#[test]
fn card_assign_and_revoke_with_format_checks_and_duplicates_refused() {
    let site = Site::new("card");
    add_zhang(&site);
    site.ok(&["resident", "add", "--name", "王五", "--role", "owner"]);
    let out = site.ok(&[
        "card",
        "assign",
        "R1",
        "--card",
        "10:12345",
        "--format",
        "wiegand26",
    ]);
    assert_eq!(out.trim(), "assigned card 10:12345 (wiegand26) to R1");
    let (code, err) = site.fails(&["card", "assign", "R2", "--card", "10:12345"]);
    assert_eq!(code, 1);
    assert!(err.contains("already assigned to R1"), "{err}");
    let (code, err) = site.fails(&[
        "card",
        "assign",
        "R2",
        "--card",
        "300:1",
        "--format",
        "wiegand26",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("facility code 300 does not fit wiegand26"),
        "{err}"
    );
    let (code, _) = site.fails(&["card", "assign", "R2", "--card", "10:abc"]);
    assert_eq!(code, 2);
    site.ok(&["card", "assign", "R2", "--card", "raw:1011001110"]);
    let holder = cards::lookup(site.store().conn(), &"raw:1011001110".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        (holder.person, holder.masked_name.as_str()),
        (ResidentId(2), "王*")
    );
    assert!(site
        .ok(&["card", "revoke", "10:12345"])
        .contains("was R1's"));
    assert!(cards::owner(
        site.store().conn(),
        &CardNumber::Formatted {
            facility: 10,
            number: 12345
        }
    )
    .unwrap()
    .is_none());
    let (code, err) = site.fails(&["card", "revoke", "10:12345"]);
    assert_eq!(code, 1);
    assert!(err.contains("not in the register"), "{err}");
}

#[test]
fn vehicle_add_and_remove_validate_plates_and_owners() {
    let site = Site::new("vehicle");
    add_zhang(&site);
    assert!(site
        .ok(&[
            "vehicle",
            "add",
            "川AD12345",
            "--resident",
            "R1",
            "--colour",
            "白"
        ])
        .contains("川AD12345"));
    let plate: Plate = "川AD12345".parse().unwrap();
    assert_eq!(
        vehicles::lookup(site.store().conn(), &plate)
            .unwrap()
            .unwrap()
            .person,
        ResidentId(1)
    );
    let (code, err) = site.fails(&["vehicle", "add", "XA12345", "--resident", "R1"]);
    assert_eq!(code, 2);
    assert!(err.contains("province character"), "{err}");
    let (code, err) = site.fails(&["vehicle", "add", "川A12345", "--resident", "R7"]);
    assert_eq!(code, 1);
    assert!(err.contains("no resident R7"), "{err}");
    site.ok(&["vehicle", "remove", "川AD12345"]);
    assert!(vehicles::lookup(site.store().conn(), &plate)
        .unwrap()
        .is_none());
}

#[test]
fn visitor_pass_prints_a_pin_and_qr_payload_and_stores_only_the_pin_hash() {
    let site = Site::new("visitor");
    add_zhang(&site);
    let out = site.ok(&[
        "visitor",
        "pass",
        "--host",
        "R1",
        "--name",
        "李四",
        "--valid-for",
        "4h",
        "--gates",
        "east",
        "--uses",
        "2",
    ]);
    let pin = out
        .lines()
        .find_map(|l| l.strip_prefix("PIN:"))
        .expect("a PIN line")
        .trim()
        .to_string();
    assert_eq!(pin.len(), 6);
    assert!(
        out.contains(&format!("QR:    GH1;site=qingbo;pass=V1;pin={pin}")),
        "{out}"
    );
    let store = site.store();
    let stored: Vec<u8> = store
        .conn()
        .query_row("SELECT pin_hash FROM visitor_pass", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        stored,
        store.secret().keyed_hash("pin", pin.as_bytes()).to_vec()
    );
    let pass = visitors::lookup_pin(&store, &pin.parse::<Pin>().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(pass.gates, Some(vec!["east".to_string()]));
    assert_eq!(pass.uses_left, Some(2));
    // The gate's lookup carries the masked name only (and no phone).
    assert_eq!(pass.masked_name, "李*");
    assert!(pass.is_usable_at(chrono::Utc::now()));
    assert!(visitors::consume_use(store.conn(), pass.id).unwrap());
    assert!(visitors::consume_use(store.conn(), pass.id).unwrap());
    assert!(
        !visitors::consume_use(store.conn(), pass.id).unwrap(),
        "used up"
    );
    let listed = site.ok(&["visitor", "list", "--all"]);
    assert!(listed.contains("used up"), "{listed}");
}

#[test]
fn visitor_vehicle_pass_is_found_by_plate_and_unknown_gates_are_refused() {
    let site = Site::new("visitor-plate");
    add_zhang(&site);
    let out = site.ok(&[
        "visitor",
        "pass",
        "--host",
        "R1",
        "--name",
        "李四",
        "--plate",
        "川B54321",
        "--valid-for",
        "1d",
        "--from",
        "2030-01-01 09:00",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["valid_from"], "2030-01-01T01:00:00Z",
        "site offset +08:00"
    );
    let passes = visitors::for_plate(site.store().conn(), &"川B54321".parse().unwrap()).unwrap();
    assert_eq!(passes.len(), 1);
    assert_eq!(passes[0].masked_name, "李*");
    assert!(!passes[0].is_usable_at(chrono::Utc::now()), "not yet valid");
    let (code, err) = site.fails(&[
        "visitor",
        "pass",
        "--host",
        "R1",
        "--name",
        "李四",
        "--valid-for",
        "4h",
        "--gates",
        "north",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("no gate \"north\""), "{err}");
    site.ok(&["resident", "suspend", "R1"]);
    let (code, err) = site.fails(&[
        "visitor",
        "pass",
        "--host",
        "R1",
        "--name",
        "李四",
        "--valid-for",
        "4h",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("host R1 is suspended"), "{err}");
}

#[test]
fn visitor_pins_are_unique_among_many_passes() {
    let site = Site::new("pins");
    add_zhang(&site);
    let store = site.store();
    let now = chrono::Utc::now();
    let mut pins = std::collections::HashSet::new();
    for _ in 0..300 {
        let pass = visitors::NewPass {
            host: ResidentId(1),
            visitor_name: "访客".into(),
            phone: None,
            plate: None,
            gates: None,
            valid_from: now,
            valid_until: now + chrono::Duration::hours(1),
            uses: Some(1),
        };
        let issued = visitors::issue(&store, "test", &pass, "qingbo").unwrap();
        assert!(pins.insert(issued.pin.as_str().to_string()));
    }
}

#[test]
fn access_groups_record_windows_and_members() {
    let site = Site::new("groups");
    add_zhang(&site);
    site.ok(&["group", "add", "租户"]);
    site.ok(&[
        "group",
        "window",
        "租户",
        "--gate",
        "east",
        "--days",
        "mon-fri",
        "--time",
        "07:00-22:00",
    ]);
    site.ok(&["group", "member", "租户", "--role", "tenant"]);
    site.ok(&["group", "member", "租户", "--resident", "R1"]);
    let out = site.ok(&["group", "list"]);
    assert!(
        out.contains("east mon-fri 07:00-22:00") && out.contains("role tenant, R1"),
        "{out}"
    );
    let (code, err) = site.fails(&[
        "group",
        "window",
        "租户",
        "--gate",
        "east",
        "--time",
        "22:00-06:00",
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("overnight"), "{err}");
    let (code, _) = site.fails(&["group", "member", "租户", "--role", "tenant"]);
    assert_eq!(code, 1);
    let store = site.store();
    let windows =
        gatehouse::store::groups::windows_for(store.conn(), ResidentId(1), ResidentRole::Tenant)
            .unwrap()
            .expect("R1 is bound by a group");
    assert_eq!(windows.len(), 1);
    assert_eq!(
        (
            windows[0].days,
            windows[0].start_minute,
            windows[0].end_minute
        ),
        (0x1f, 420, 1320)
    );
    let unbound =
        gatehouse::store::groups::windows_for(store.conn(), ResidentId(9), ResidentRole::Owner)
            .unwrap();
    assert_eq!(unbound, None, "an owner in no group is not restricted");
    drop(store);
    let shown = site.ok(&["resident", "show", "R1", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(v["groups"], serde_json::json!(["租户"]));
    site.ok(&["group", "member", "租户", "--resident", "R1", "--remove"]);
    site.ok(&["group", "window", "租户", "--clear"]);
    assert!(site
        .ok(&["group", "list", "--format", "json"])
        .contains("\"windows\": []"));
}
