use std::time::Duration;

use chrono::TimeZone;

use super::*;

const OFFSET: i32 = 480;

fn at(local: &str) -> DateTime<Utc> {
    // Local China time → UTC.
    let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M").unwrap();
    chrono::FixedOffset::east_opt(OFFSET * 60)
        .unwrap()
        .from_local_datetime(&naive)
        .unwrap()
        .with_timezone(&Utc)
}

fn now(local: &str) -> Now {
    Now {
        wall: at(local),
        mono: Duration::from_secs(1000),
        clock_synced: true,
    }
}

fn person(id: i64, name: &str) -> Person {
    Person {
        id: ResidentId(id),
        masked_name: mask_name(name),
        role: Role::Owner,
        status: Status::Active,
        valid_from: None,
        valid_until: None,
        invalid: None,
    }
}

fn gate(id: &str) -> GateContext {
    GateContext {
        gate: id.parse().unwrap(),
        direction: Direction::In,
        paired_with: None,
        policy: AccessPolicy::default(),
        two_factor: TwoFactorRule::default(),
    }
}

fn card(n: u64) -> Credential {
    Credential::Card(CardNumber::Formatted {
        facility: 10,
        number: n,
    })
}

fn pin(d: &str) -> PinHash {
    let mut h = [0u8; 32];
    h[..d.len()].copy_from_slice(d.as_bytes());
    PinHash(h)
}

/// Zhang (R1, card 1, owner), Li (R2, card 2, suspended), Wang (R3, card 3,
/// tenant whose lease ended 2025-01-31), Zhao (R4, card 4, moved out), Qian
/// (R5, card 5, cleaner: east on weekdays 08:00-18:00), Sun (R6, card 6,
/// lease starts 2025-04-01). Visitor passes: 111111 (R1's guest, 2 uses, east
/// only, March 2025), 222222 (used up), 333333 (revoked).
fn register() -> Register {
    let mut r = Register::new(OFFSET);
    r.add_person(person(1, "张三"));
    r.add_person(Person {
        status: Status::Suspended,
        ..person(2, "李四")
    });
    r.add_person(Person {
        role: Role::Tenant,
        valid_until: Some(Bound::parse("2025-01-31").unwrap()),
        ..person(3, "王五")
    });
    r.add_person(Person {
        status: Status::MovedOut,
        ..person(4, "赵六")
    });
    r.add_person(Person {
        role: Role::Staff,
        ..person(5, "钱七")
    });
    r.add_person(Person {
        valid_from: Some(Bound::parse("2025-04-01").unwrap()),
        ..person(6, "孙八")
    });
    for i in 1..=6 {
        r.add_card(format!("10:{i}"), ResidentId(i));
    }
    r.add_plate("川A12345".parse().unwrap(), ResidentId(1));
    r.add_group(7);
    r.add_window(
        7,
        Window {
            gate: "east".parse().unwrap(),
            days: 0b0011111,
            start_minute: 8 * 60,
            end_minute: 18 * 60,
        },
    );
    r.add_person_member(7, ResidentId(5));
    let pass = |id, uses: Option<u32>, revoked| VisitorPass {
        id,
        host: ResidentId(1),
        masked_name: mask_name("周客人"),
        gates: Some(vec!["east".parse().unwrap()]),
        valid_from: Bound::parse("2025-03-01").unwrap(),
        valid_until: Bound::parse("2025-03-31").unwrap(),
        uses_left: uses,
        revoked,
    };
    r.add_pass(
        pass(1, Some(2), false),
        pin("111111").0,
        Some("川B99999".parse().unwrap()),
    );
    r.add_pass(pass(2, Some(0), false), pin("222222").0, None);
    r.add_pass(pass(3, None, true), pin("333333").0, None);
    r
}

#[test]
fn decision_table() {
    let r = register();
    let s = AccessState::new();
    let east = gate("east");
    let west = gate("west");
    // Wednesday 2025-03-12 10:00 local unless stated.
    let wed = "2025-03-12 10:00";
    let sat = "2025-03-15 10:00";
    let cases: Vec<(&str, Credential, &GateContext, &str, Outcome)> = vec![
        ("known card opens", card(1), &east, wed, Outcome::Granted),
        (
            "unknown card",
            card(99),
            &east,
            wed,
            Outcome::Denied(DenyReason::UnknownCredential),
        ),
        (
            "suspended",
            card(2),
            &east,
            wed,
            Outcome::Denied(DenyReason::Suspended),
        ),
        (
            "lease ended",
            card(3),
            &east,
            wed,
            Outcome::Denied(DenyReason::LeaseEnded),
        ),
        (
            "lease last day is still valid",
            card(3),
            &east,
            "2025-01-31 23:59",
            Outcome::Granted,
        ),
        (
            "moved out",
            card(4),
            &east,
            wed,
            Outcome::Denied(DenyReason::MovedOut),
        ),
        (
            "not yet valid",
            card(6),
            &east,
            wed,
            Outcome::Denied(DenyReason::NotYetValid),
        ),
        (
            "cleaner in her window",
            card(5),
            &east,
            wed,
            Outcome::Granted,
        ),
        (
            "cleaner on saturday",
            card(5),
            &east,
            sat,
            Outcome::Denied(DenyReason::OutsideTimeWindow),
        ),
        (
            "cleaner at 18:00 (end exclusive)",
            card(5),
            &east,
            "2025-03-12 18:00",
            Outcome::Denied(DenyReason::OutsideTimeWindow),
        ),
        (
            "cleaner at another gate",
            card(5),
            &west,
            wed,
            Outcome::Denied(DenyReason::GateNotAllowed),
        ),
        (
            "person in no group: any gate, any time",
            card(1),
            &west,
            "2025-03-16 03:00",
            Outcome::Granted,
        ),
        (
            "face of a resident",
            Credential::Face {
                resident: ResidentId(1),
                score: 0.7,
            },
            &east,
            wed,
            Outcome::Granted,
        ),
        (
            "face of someone removed",
            Credential::Face {
                resident: ResidentId(42),
                score: 0.7,
            },
            &east,
            wed,
            Outcome::Denied(DenyReason::UnknownCredential),
        ),
        (
            "resident plate",
            Credential::Plate("川A12345".parse().unwrap()),
            &east,
            wed,
            Outcome::Granted,
        ),
        (
            "visitor plate",
            Credential::Plate("川B99999".parse().unwrap()),
            &east,
            wed,
            Outcome::Granted,
        ),
        (
            "unknown plate",
            Credential::Plate("川C11111".parse().unwrap()),
            &east,
            wed,
            Outcome::Denied(DenyReason::UnknownCredential),
        ),
        (
            "visitor pin",
            Credential::Pin(pin("111111")),
            &east,
            wed,
            Outcome::Granted,
        ),
        (
            "visitor pin at wrong gate",
            Credential::Pin(pin("111111")),
            &west,
            wed,
            Outcome::Denied(DenyReason::VisitorPassWrongGate),
        ),
        (
            "visitor pin after the pass",
            Credential::Pin(pin("111111")),
            &east,
            "2025-04-01 00:00",
            Outcome::Denied(DenyReason::VisitorPassExpired),
        ),
        (
            "visitor pin before the pass",
            Credential::Pin(pin("111111")),
            &east,
            "2025-02-28 23:59",
            Outcome::Denied(DenyReason::VisitorPassNotYetValid),
        ),
        (
            "visitor pin used up",
            Credential::Pin(pin("222222")),
            &east,
            wed,
            Outcome::Denied(DenyReason::VisitorPassUsedUp),
        ),
        (
            "visitor pin revoked",
            Credential::Pin(pin("333333")),
            &east,
            wed,
            Outcome::Denied(DenyReason::VisitorPassRevoked),
        ),
        (
            "unknown pin",
            Credential::Pin(pin("999999")),
            &east,
            wed,
            Outcome::Denied(DenyReason::UnknownCredential),
        ),
        (
            "exit button",
            Credential::ExitButton,
            &east,
            wed,
            Outcome::Granted,
        ),
        (
            "remote open",
            Credential::Remote {
                officer: "P1001".into(),
                reason: "ambulance".into(),
            },
            &east,
            wed,
            Outcome::Granted,
        ),
    ];
    for (name, cred, g, when, expected) in cases {
        let d = decide(&r, &s, &cred, g, &now(when));
        assert_eq!(d.outcome, expected, "{name}");
        assert!(!d.clock_override, "{name}");
    }
}

#[test]
fn denied_decisions_name_the_masked_subject() {
    let r = register();
    let d = decide(
        &r,
        &AccessState::new(),
        &card(2),
        &gate("east"),
        &now("2025-03-12 10:00"),
    );
    assert_eq!(
        d.subject,
        Some(Subject::Resident {
            id: ResidentId(2),
            masked_name: "李*".into()
        })
    );
}

#[test]
fn unsynchronised_clock_never_denies_on_time_but_flags_it() {
    let r = register();
    let s = AccessState::new();
    let mut t = now("2025-03-15 10:00");
    t.clock_synced = false;
    for cred in [card(3), card(5), card(6), Credential::Pin(pin("111111"))] {
        let d = decide(&r, &s, &cred, &gate("east"), &t);
        assert!(d.is_granted(), "{cred:?}: {d:?}");
    }
    let d = decide(&r, &s, &card(3), &gate("east"), &t);
    assert!(d.clock_override);
    // Status checks do not depend on the clock.
    let d = decide(&r, &s, &card(2), &gate("east"), &t);
    assert_eq!(d.reason(), Some(DenyReason::Suspended));
    // A synced grant is not flagged.
    let d = decide(&r, &s, &card(1), &gate("east"), &t);
    assert!(!d.clock_override);
}

#[test]
fn five_unknown_cards_in_a_minute_lock_the_reader_and_raise_an_alarm() {
    let r = register();
    let mut s = AccessState::new();
    let east = gate("east");
    let mut t = now("2025-03-12 10:00");
    for i in 0..5u64 {
        t.mono = Duration::from_secs(100 + i * 10);
        let cred = card(1000 + i);
        let d = decide(&r, &s, &cred, &east, &t);
        assert_eq!(d.reason(), Some(DenyReason::UnknownCredential));
        assert_eq!(d.alarm.is_some(), i == 4, "attempt {i}");
        s.apply(&d, &cred, &east, &t);
    }
    // Locked out: even a known card is refused at this reader...
    t.mono = Duration::from_secs(150);
    assert_eq!(
        decide(&r, &s, &card(1), &east, &t).reason(),
        Some(DenyReason::ReaderLockedOut)
    );
    // ...but not the exit button, a face, or another reader.
    assert!(decide(&r, &s, &Credential::ExitButton, &east, &t).is_granted());
    assert!(decide(
        &r,
        &s,
        &Credential::Face {
            resident: ResidentId(1),
            score: 0.8
        },
        &east,
        &t
    )
    .is_granted());
    assert!(decide(&r, &s, &card(1), &gate("west"), &t).is_granted());
    // After lockout_s (60 s) the reader works again.
    t.mono = Duration::from_secs(140 + 61);
    assert!(decide(&r, &s, &card(1), &east, &t).is_granted());
}

#[test]
fn unknown_cards_spread_over_more_than_a_minute_do_not_lock() {
    let r = register();
    let mut s = AccessState::new();
    let east = gate("east");
    let mut t = now("2025-03-12 10:00");
    for i in 0..10u64 {
        t.mono = Duration::from_secs(i * 20);
        let cred = card(5000 + i);
        let d = decide(&r, &s, &cred, &east, &t);
        assert!(d.alarm.is_none(), "attempt {i}");
        s.apply(&d, &cred, &east, &t);
    }
}

#[test]
fn visitor_uses_count_down_and_reset_on_reload() {
    let r = register();
    let mut s = AccessState::new();
    let east = gate("east");
    let t = now("2025-03-12 10:00");
    let cred = Credential::Pin(pin("111111"));
    for _ in 0..2 {
        let d = decide(&r, &s, &cred, &east, &t);
        assert!(d.is_granted());
        s.apply(&d, &cred, &east, &t);
    }
    assert_eq!(
        decide(&r, &s, &cred, &east, &t).reason(),
        Some(DenyReason::VisitorPassUsedUp)
    );
    // One use reached the database, then a reload: the other is still pending.
    s.visitor_use_stored(1);
    s.register_reloaded();
    assert_eq!(s.visitor_uses(1), 1);
}

#[test]
fn anti_passback_refuses_a_second_entry_without_an_exit() {
    let r = register();
    let mut s = AccessState::new();
    let policy = AccessPolicy {
        anti_passback: true,
        ..AccessPolicy::default()
    };
    let inn = GateContext {
        gate: "east".parse().unwrap(),
        direction: Direction::In,
        paired_with: Some("east-out".parse().unwrap()),
        policy,
        two_factor: TwoFactorRule::default(),
    };
    let out = GateContext {
        gate: "east-out".parse().unwrap(),
        direction: Direction::Out,
        paired_with: Some("east".parse().unwrap()),
        policy,
        two_factor: TwoFactorRule::default(),
    };
    let t = now("2025-03-12 10:00");
    let c = card(1);
    let step = |s: &mut AccessState, g: &GateContext| {
        let d = decide(&r, s, &c, g, &t);
        s.apply(&d, &c, g, &t);
        d.outcome
    };
    assert_eq!(step(&mut s, &inn), Outcome::Granted);
    assert_eq!(
        step(&mut s, &inn),
        Outcome::Denied(DenyReason::AntiPassback)
    );
    assert_eq!(step(&mut s, &out), Outcome::Granted);
    assert_eq!(step(&mut s, &inn), Outcome::Granted);
}

#[test]
fn visitor_of_an_inactive_host_is_refused() {
    let mut r = register();
    r.add_person(Person {
        status: Status::MovedOut,
        ..person(1, "张三")
    });
    let d = decide(
        &r,
        &AccessState::new(),
        &Credential::Pin(pin("111111")),
        &gate("east"),
        &now("2025-03-12 10:00"),
    );
    assert_eq!(d.reason(), Some(DenyReason::HostInactive));
}

#[test]
fn role_groups_restrict_everyone_in_the_role() {
    let mut r = register();
    r.add_group(9);
    r.add_window(
        9,
        Window {
            gate: "east".parse().unwrap(),
            days: 0b1111111,
            start_minute: 0,
            end_minute: 1440,
        },
    );
    r.add_role_member(9, Role::Tenant);
    r.add_person(Person {
        role: Role::Tenant,
        ..person(8, "吴九")
    });
    r.add_card("10:8".into(), ResidentId(8));
    let s = AccessState::new();
    let t = now("2025-03-12 10:00");
    assert!(decide(&r, &s, &card(8), &gate("east"), &t).is_granted());
    assert_eq!(
        decide(&r, &s, &card(8), &gate("west"), &t).reason(),
        Some(DenyReason::GateNotAllowed)
    );
}

#[test]
fn a_spoofed_face_is_refused_names_whose_photo_and_counts_toward_the_lockout() {
    let r = register();
    let mut s = AccessState::new();
    let east = gate("east");
    let mut t = now("2025-03-12 10:00");
    let spoof = Credential::SpoofedFace {
        resident: ResidentId(1),
        score: 0.82,
        liveness: 0.04,
    };
    // Two photos, then three unknown cards: the fifth attempt locks the reader.
    for i in 0..5u64 {
        t.mono = Duration::from_secs(100 + i * 5);
        let cred = if i < 2 { spoof.clone() } else { card(7000 + i) };
        let d = decide(&r, &s, &cred, &east, &t);
        if i < 2 {
            assert_eq!(d.reason(), Some(DenyReason::PresentationAttack));
            assert!(matches!(
                d.subject,
                Some(Subject::Resident {
                    id: ResidentId(1),
                    ..
                })
            ));
        }
        assert_eq!(d.alarm.is_some(), i == 4, "attempt {i}");
        s.apply(&d, &cred, &east, &t);
    }
    assert_eq!(
        decide(&r, &s, &card(1), &east, &t).reason(),
        Some(DenyReason::ReaderLockedOut)
    );
    assert_eq!(spoof.kind(), "face");
    assert!(spoof.is_guessable());
}
