use std::time::Duration;

use chrono::TimeZone;

use super::*;
use crate::domain::{masked_name, CardFormat, CardNumber, CardRead, PersonStatus, ResidentRole};

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

fn person(id: i64, name: &str) -> PersonEntry {
    PersonEntry {
        id: ResidentId(id),
        masked_name: masked_name(name),
        role: ResidentRole::Owner,
        status: PersonStatus::Active,
        valid_from: None,
        valid_until: None,
        permit_until: None,
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
    Credential::Card(number(n).into())
}

fn number(n: u64) -> CardNumber {
    CardNumber::Formatted {
        facility: 10,
        number: n,
    }
}

fn pin(d: &str) -> PinHash {
    let mut h = [0u8; 32];
    h[..d.len()].copy_from_slice(d.as_bytes());
    PinHash(h)
}

/// Zhang (R1, card 1, owner), Li (R2, card 2, suspended), Wang (R3, card 3,
/// tenant whose lease ended 2025-01-31), Zhao (R4, card 4, moved out), Qian
/// (R5, card 5, cleaner: east on weekdays 08:00-18:00), Sun (R6, card 6,
/// lease starts 2025-04-01), Zhou (R7, card 7, tenant whose residence permit
/// ended 2025-02-28, lease still running). Visitor passes: 111111 (R1's guest, 2 uses, east
/// only, March 2025), 222222 (used up), 333333 (revoked).
fn register() -> Register {
    let mut r = Register::new(OFFSET);
    r.add_person(person(1, "张三"));
    r.add_person(PersonEntry {
        status: PersonStatus::Suspended,
        ..person(2, "李四")
    });
    r.add_person(PersonEntry {
        role: ResidentRole::Tenant,
        valid_until: Some(Bound::parse("2025-01-31").unwrap()),
        ..person(3, "王五")
    });
    r.add_person(PersonEntry {
        status: PersonStatus::MovedOut,
        ..person(4, "赵六")
    });
    r.add_person(PersonEntry {
        role: ResidentRole::Staff,
        ..person(5, "钱七")
    });
    r.add_person(PersonEntry {
        valid_from: Some(Bound::parse("2025-04-01").unwrap()),
        ..person(6, "孙八")
    });
    r.add_person(PersonEntry {
        role: ResidentRole::Tenant,
        valid_until: Some(Bound::parse("2025-12-31").unwrap()),
        permit_until: Some(Bound::parse("2025-02-28").unwrap()),
        ..person(7, "周九")
    });
    for i in 1..=7 {
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
    let pass = |id, uses: Option<u32>, revoked| PassEntry {
        id,
        host: ResidentId(1),
        masked_name: masked_name("周客人"),
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
            "residence permit ended",
            card(7),
            &east,
            wed,
            Outcome::Denied(DenyReason::PermitEnded),
        ),
        (
            "residence permit last day is still valid",
            card(7),
            &east,
            "2025-02-28 23:59",
            Outcome::Granted,
        ),
        (
            "cleaner before her window opens",
            card(5),
            &east,
            "2025-03-12 07:59",
            Outcome::Denied(DenyReason::OutsideTimeWindow),
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

/// With the clock unsynchronised, `now.wall` is the trusted floor (the true
/// time is no earlier): every expiry before it refuses, and only "not yet
/// valid" refusals are overridden, flagged on the decision.
#[test]
fn unsynchronised_clock_enforces_every_expiry_and_overrides_only_not_yet_valid() {
    let r = register();
    let s = AccessState::new();
    let east = gate("east");
    let granted = Outcome::Granted;
    let denied = Outcome::Denied;
    // (case, credential, local time, outcome, overridden)
    let cases: Vec<(&str, Credential, &str, Outcome, bool)> = vec![
        (
            "tenant whose lease ended",
            card(3),
            "2025-03-12 10:00",
            denied(DenyReason::LeaseEnded),
            false,
        ),
        (
            "residence permit ended",
            card(7),
            "2025-03-12 10:00",
            denied(DenyReason::PermitEnded),
            false,
        ),
        (
            "visitor pass ended",
            Credential::Pin(pin("111111")),
            "2025-04-01 00:00",
            denied(DenyReason::VisitorPassExpired),
            false,
        ),
        (
            "visitor plate after the pass",
            Credential::Plate("川B99999".parse().unwrap()),
            "2025-04-02 09:00",
            denied(DenyReason::VisitorPassExpired),
            false,
        ),
        (
            "cleaner after her hours ended today",
            card(5),
            "2025-03-12 18:30",
            denied(DenyReason::OutsideTimeWindow),
            false,
        ),
        (
            "cleaner on a day without hours",
            card(5),
            "2025-03-15 10:00",
            denied(DenyReason::OutsideTimeWindow),
            false,
        ),
        (
            "lease not yet started",
            card(6),
            "2025-03-12 10:00",
            granted,
            true,
        ),
        (
            "visitor pass not yet started",
            Credential::Pin(pin("111111")),
            "2025-02-28 23:59",
            granted,
            true,
        ),
        (
            "cleaner before her hours open today",
            card(5),
            "2025-03-12 07:00",
            granted,
            true,
        ),
        (
            "cleaner in her hours",
            card(5),
            "2025-03-12 10:00",
            granted,
            false,
        ),
        (
            "suspended (no clock involved)",
            card(2),
            "2025-03-12 10:00",
            denied(DenyReason::Suspended),
            false,
        ),
        ("known card", card(1), "2025-03-12 10:00", granted, false),
    ];
    for (name, cred, when, outcome, overridden) in cases {
        let mut t = now(when);
        t.clock_synced = false;
        let d = decide(&r, &s, &cred, &east, &t);
        assert_eq!(d.outcome, outcome, "{name}: {d:?}");
        assert_eq!(d.clock_override, overridden, "{name}: {d:?}");
    }
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

fn paired(id: &str, peer: &str, direction: Direction, anti_passback: bool) -> GateContext {
    GateContext {
        gate: id.parse().unwrap(),
        direction,
        paired_with: Some(peer.parse().unwrap()),
        policy: AccessPolicy {
            anti_passback,
            ..AccessPolicy::default()
        },
        two_factor: TwoFactorRule::default(),
    }
}

fn site(age_s: u64, kind: SiteKind) -> SiteEvent {
    SiteEvent {
        age: Duration::from_secs(age_s),
        kind,
    }
}

fn passed(person: i64, direction: Direction) -> SiteKind {
    SiteKind::Passed {
        person: ResidentId(person),
        direction,
    }
}

#[test]
fn an_entry_at_another_gateway_refuses_entry_here_until_an_exit_anywhere() {
    let r = register();
    let mut s = AccessState::new();
    let inn = paired("east", "east-out", Direction::In, true);
    let out = paired("east-out", "east", Direction::Out, true);
    let t = now("2025-03-12 10:00");
    let c = card(1);
    // Zhang entered at another gateway a minute ago.
    s.fold_site(&[site(60, passed(1, Direction::In))], t.mono);
    assert_eq!(
        decide(&r, &s, &c, &inn, &t).reason(),
        Some(DenyReason::AntiPassback)
    );
    // Leaving here after entering there is fine, and then entering again.
    let d = decide(&r, &s, &c, &out, &t);
    assert!(d.is_granted());
    s.apply(&d, &c, &out, &t);
    assert!(decide(&r, &s, &c, &inn, &t).is_granted());
    // He exited somewhere else later than his entry here: entry is fine again.
    let d = decide(&r, &s, &c, &inn, &t);
    s.apply(&d, &c, &inn, &t);
    let later = Now {
        mono: t.mono + Duration::from_secs(120),
        ..t
    };
    s.fold_site(&[site(30, passed(1, Direction::Out))], later.mono);
    assert!(decide(&r, &s, &c, &inn, &later).is_granted());
    // An older passage arriving late changes nothing.
    s.fold_site(&[site(100, passed(1, Direction::In))], later.mono);
    assert!(decide(&r, &s, &c, &inn, &later).is_granted());
}

#[test]
fn passages_elsewhere_do_not_refuse_without_anti_passback_or_after_its_reset() {
    let r = register();
    let mut s = AccessState::new();
    let off = paired("east", "east-out", Direction::In, false);
    let on = paired("east", "east-out", Direction::In, true);
    let t = now("2025-03-12 10:00");
    s.fold_site(&[site(60, passed(1, Direction::In))], t.mono);
    assert!(decide(&r, &s, &card(1), &off, &t).is_granted());
    // The default reset is 4 h.
    let later = Now {
        mono: t.mono + Duration::from_secs(4 * 3600),
        ..t
    };
    assert!(decide(&r, &s, &card(1), &on, &later).is_granted());
}

#[test]
fn failed_guesses_at_other_gateways_count_toward_the_lockout_here() {
    let r = register();
    let mut s = AccessState::new();
    let g = gate("east");
    let t = now("2025-03-12 10:00");
    let attempts = g.policy.lockout_attempts as u64;
    // All but one of the allowed guesses were spent at another gateway.
    let there: Vec<SiteEvent> = (1..attempts)
        .map(|i| site(i, SiteKind::FailedGuess))
        .collect();
    s.fold_site(&there, t.mono);
    let d = decide(&r, &s, &card(99), &g, &t);
    assert!(
        matches!(d.alarm, Some(AccessAlarm::ReaderLockout { .. })),
        "{d:?}"
    );
    s.apply(&d, &card(99), &g, &t);
    assert_eq!(
        decide(&r, &s, &card(1), &g, &t).reason(),
        Some(DenyReason::ReaderLockedOut)
    );
    // After the lockout, the guesses it spent do not count again.
    let after = Now {
        mono: t.mono + g.policy.lockout_for,
        ..t
    };
    let d = decide(&r, &s, &card(99), &g, &after);
    assert_eq!(d.reason(), Some(DenyReason::UnknownCredential));
    assert_eq!(d.alarm, None);
}

#[test]
fn wrong_pins_at_other_gateways_spend_the_pin_budget_here() {
    let r = register();
    let mut s = AccessState::new();
    let g = gate("east");
    let t = now("2025-03-12 10:00");
    let budget = u64::from(g.policy.pin_budget.unwrap());
    // An hour apart each, so no reader lockout: only the day's budget.
    let there: Vec<SiteEvent> = (1..=budget)
        .map(|i| site(i * 3600, SiteKind::WrongPin))
        .collect();
    s.fold_site(&there, t.mono + Duration::from_secs(budget * 3600));
    let t = Now {
        mono: t.mono + Duration::from_secs(budget * 3600),
        ..t
    };
    assert_eq!(
        decide(&r, &s, &Credential::Pin(pin("111111")), &g, &t).reason(),
        Some(DenyReason::PinEntrySuspended)
    );
    assert!(s.pin_entry_resumes(&g, t.mono).is_some());
}

#[test]
fn visitor_of_an_inactive_host_is_refused() {
    let mut r = register();
    r.add_person(PersonEntry {
        status: PersonStatus::MovedOut,
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
    r.add_role_member(9, ResidentRole::Tenant);
    r.add_person(PersonEntry {
        role: ResidentRole::Tenant,
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

fn card_and_face_gate() -> GateContext {
    GateContext {
        two_factor: TwoFactorRule {
            mode: config::FaceMode::CardAndFace,
            hours: Vec::new(),
            face_wait: Duration::from_secs(10),
            fallback: config::FaceFallback::Card,
            household_wait: Duration::from_secs(10),
        },
        ..gate("east")
    }
}

fn watched(deny: bool) -> WatchHit {
    WatchHit {
        deny,
        expires_at: None,
    }
}

#[test]
fn watchlist_decision_table() {
    // Card 1 (张三) is on an alert entry, card 5 (钱七) on a deny entry, 张三's
    // car 川A12345 on an alert entry, 川C77777 (nobody's) on a deny entry.
    let mut r = register();
    r.add_watched_card("10:1".into(), watched(false));
    r.add_watched_card("10:5".into(), watched(true));
    r.add_watched_plate("川A12345".parse().unwrap(), watched(false));
    r.add_watched_plate("川C77777".parse().unwrap(), watched(true));
    let s = AccessState::new();
    let east = gate("east");
    let two = card_and_face_gate();
    let face = FaceCheck::Match { score: 0.7 };
    let with_face = |n| Credential::CardAndFace {
        card: number(n).into(),
        face,
    };
    let plate = |p: &str| Credential::Plate(p.parse().unwrap());
    let alert = Some(AccessAlarm::Watchlist { deny: false });
    let deny = Some(AccessAlarm::Watchlist { deny: true });
    let cases: Vec<(&str, Credential, &GateContext, Outcome, Option<AccessAlarm>)> = vec![
        (
            "alert card opens, alarms",
            card(1),
            &east,
            Outcome::Granted,
            alert,
        ),
        (
            "deny card refused, alarms",
            card(5),
            &east,
            Outcome::Denied(DenyReason::Watchlisted),
            deny,
        ),
        (
            "alert card with its owner's face at a card + face gate",
            with_face(1),
            &two,
            Outcome::Granted,
            alert,
        ),
        (
            "deny card with a face at a card + face gate",
            with_face(5),
            &two,
            Outcome::Denied(DenyReason::Watchlisted),
            deny,
        ),
        (
            "unlisted card + face",
            with_face(2),
            &two,
            Outcome::Denied(DenyReason::Suspended),
            None,
        ),
        (
            "alert plate",
            plate("川A12345"),
            &east,
            Outcome::Granted,
            alert,
        ),
        (
            "deny plate of nobody",
            plate("川C77777"),
            &east,
            Outcome::Denied(DenyReason::Watchlisted),
            deny,
        ),
        (
            // The cameras raised this face's alarm with its snapshot already.
            "face the cameras matched to a deny entry",
            watched_face(1),
            &east,
            Outcome::Denied(DenyReason::Watchlisted),
            None,
        ),
        (
            "face on a deny entry at a card + face gate",
            watched_face(1),
            &two,
            Outcome::Denied(DenyReason::Watchlisted),
            None,
        ),
    ];
    for (name, cred, g, expected, alarm) in cases {
        let d = decide(&r, &s, &cred, g, &now("2025-03-12 10:00"));
        assert_eq!((d.outcome, d.alarm), (expected, alarm), "{name}");
    }
}

#[test]
fn a_lapsed_watch_entry_no_longer_alarms() {
    let mut r = register();
    r.add_watched_card(
        "10:1".into(),
        WatchHit {
            deny: true,
            expires_at: Some(at("2025-03-01 00:00")),
        },
    );
    let d = decide(
        &r,
        &AccessState::new(),
        &card_and_face_gate_card(1),
        &card_and_face_gate(),
        &now("2025-03-12 10:00"),
    );
    assert_eq!((d.outcome, d.alarm), (Outcome::Granted, None));
}

fn card_and_face_gate_card(n: u64) -> Credential {
    Credential::CardAndFace {
        card: number(n).into(),
        face: FaceCheck::Match { score: 0.7 },
    }
}

#[test]
fn slow_pin_guessing_under_the_lockout_alarms_then_spends_the_keypads_day_budget() {
    let r = register();
    let mut s = AccessState::new();
    let east = gate("east");
    let mut t = now("2025-03-12 10:00");
    let base = Duration::from_secs(1000);
    // Four wrong PINs a minute stay under the lockout (5 within 60 s)...
    for i in 0..10u64 {
        t.mono = base + Duration::from_secs(i * 16);
        let cred = Credential::Pin(pin(&format!("90{i:04}")));
        let d = decide(&r, &s, &cred, &east, &t);
        s.apply(&d, &cred, &east, &t);
        assert_eq!(d.reason(), Some(DenyReason::UnknownCredential), "{i}");
        assert_eq!(d.alarm, None, "no reader lockout at attempt {i}");
        let expected = match i {
            // ...but the fifth within the hour is a guessing rate (alarmed once),
            4 => Some(KeypadAlarm::PinGuessing {
                wrong_pins: 5,
                window_min: 60,
            }),
            // and the tenth within the day spends the keypad's budget.
            9 => Some(KeypadAlarm::PinEntrySuspended {
                wrong_pins: 10,
                window_h: 24,
                resumes_in_s: 24 * 3600 - 144,
            }),
            _ => None,
        };
        assert_eq!(d.keypad_alarm, expected, "attempt {i}");
    }
    // Suspended: even the right PIN is refused at this keypad, unevaluated...
    t.mono = base + Duration::from_secs(200);
    let right = Credential::Pin(pin("111111"));
    let d = decide(&r, &s, &right, &east, &t);
    assert_eq!(d.reason(), Some(DenyReason::PinEntrySuspended));
    s.apply(&d, &right, &east, &t);
    assert_eq!(s.wrong_pins(&east.gate, t.mono, PIN_BUDGET_WINDOW), 10);
    assert_eq!(
        s.pin_entry_resumes(&east, t.mono),
        Some(base + PIN_BUDGET_WINDOW)
    );
    // ...while cards work there and other keypads take PINs.
    assert!(decide(&r, &s, &card(1), &east, &t).is_granted());
    assert_eq!(
        decide(&r, &s, &Credential::Pin(pin("999999")), &gate("west"), &t).reason(),
        Some(DenyReason::UnknownCredential)
    );
    // Once the oldest wrong PIN is a day old, PIN entry resumes.
    t.mono = base + PIN_BUDGET_WINDOW + Duration::from_secs(1);
    assert!(decide(&r, &s, &right, &east, &t).is_granted());
    assert_eq!(s.pin_entry_resumes(&east, t.mono), None);
}

#[test]
fn pin_budget_and_guessing_alarm_can_be_turned_off() {
    let r = register();
    let mut s = AccessState::new();
    let mut east = gate("east");
    east.policy.pin_budget = None;
    east.policy.pin_alarm_failures = None;
    let mut t = now("2025-03-12 10:00");
    for i in 0..30u64 {
        t.mono = Duration::from_secs(1000 + i * 16);
        let cred = Credential::Pin(pin(&format!("90{i:04}")));
        let d = decide(&r, &s, &cred, &east, &t);
        s.apply(&d, &cred, &east, &t);
        assert_eq!(d.keypad_alarm, None);
    }
    assert!(decide(&r, &s, &Credential::Pin(pin("111111")), &east, &t).is_granted());
}

#[test]
fn wrong_pins_of_known_passes_do_not_spend_the_budget() {
    // A used-up or revoked pass's PIN is a real visitor, not a guess.
    let r = register();
    let mut s = AccessState::new();
    let east = gate("east");
    let mut t = now("2025-03-12 10:00");
    for i in 0..20u64 {
        t.mono = Duration::from_secs(1000 + i * 16);
        let cred = Credential::Pin(pin(if i % 2 == 0 { "222222" } else { "333333" }));
        let d = decide(&r, &s, &cred, &east, &t);
        s.apply(&d, &cred, &east, &t);
        assert!(d.keypad_alarm.is_none());
    }
    assert!(!s.pin_entry_suspended(&east, t.mono));
}

fn read_as(n: u64, format: CardFormat) -> CardRead {
    CardRead {
        number: number(n),
        format,
    }
}

#[test]
fn card_format_decision_table() {
    // Cards 1..=6 are enrolled as 26-bit (the smallest format that fits);
    // card 7 (R1's second) as 34-bit.
    let mut r = register();
    r.add_card_in("10:7".into(), CardFormat::Wiegand34, ResidentId(1));
    let s = AccessState::new();
    let strict = gate("east");
    let mut lax = gate("east");
    lax.policy.card_format_strict = false;
    let two = card_and_face_gate();
    let face = FaceCheck::Match { score: 0.7 };
    let mismatch = Outcome::Denied(DenyReason::CardFormatMismatch);
    let cases: Vec<(&str, Credential, &GateContext, Outcome)> = vec![
        (
            "26-bit card as 26-bit",
            Credential::Card(read_as(1, CardFormat::Wiegand26)),
            &strict,
            Outcome::Granted,
        ),
        (
            "26-bit card's numbers in a 34-bit frame",
            Credential::Card(read_as(1, CardFormat::Wiegand34)),
            &strict,
            mismatch,
        ),
        (
            "26-bit card's numbers in a 37-bit frame",
            Credential::Card(read_as(1, CardFormat::Wiegand37)),
            &strict,
            mismatch,
        ),
        (
            "34-bit card as 34-bit",
            Credential::Card(read_as(7, CardFormat::Wiegand34)),
            &strict,
            Outcome::Granted,
        ),
        (
            "34-bit card's numbers in a 26-bit frame",
            Credential::Card(read_as(7, CardFormat::Wiegand26)),
            &strict,
            mismatch,
        ),
        (
            "a card + face gate checks the format too",
            Credential::CardAndFace {
                card: read_as(1, CardFormat::Wiegand34),
                face,
            },
            &two,
            mismatch,
        ),
        (
            "a site that opted out takes any frame",
            Credential::Card(read_as(1, CardFormat::Wiegand34)),
            &lax,
            Outcome::Granted,
        ),
        (
            "unknown numbers stay unknown",
            Credential::Card(read_as(99, CardFormat::Wiegand34)),
            &strict,
            Outcome::Denied(DenyReason::UnknownCredential),
        ),
    ];
    for (name, cred, g, expected) in cases {
        let d = decide(&r, &s, &cred, g, &now("2025-03-12 10:00"));
        assert_eq!(d.outcome, expected, "{name}");
        if !d.is_granted() {
            assert_eq!(d.subject, None, "{name}: a refused frame names nobody");
        }
    }
}

#[test]
fn frames_in_the_wrong_format_count_toward_the_reader_lockout() {
    let r = register();
    let mut s = AccessState::new();
    let east = gate("east");
    let mut t = now("2025-03-12 10:00");
    for i in 0..5u64 {
        t.mono = Duration::from_secs(100 + i * 5);
        let cred = Credential::Card(read_as(1 + i, CardFormat::Wiegand34));
        let d = decide(&r, &s, &cred, &east, &t);
        s.apply(&d, &cred, &east, &t);
        assert_eq!(d.reason(), Some(DenyReason::CardFormatMismatch));
        assert_eq!(d.alarm.is_some(), i == 4, "attempt {i}");
    }
    assert_eq!(
        decide(&r, &s, &card(1), &east, &t).reason(),
        Some(DenyReason::ReaderLockedOut)
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

fn watched_face(resident: i64) -> Credential {
    Credential::WatchlistedFace {
        resident: ResidentId(resident),
        score: 0.71,
        entry: "case-2026-0117".into(),
    }
}

#[test]
fn refusals_found_outside_the_register_come_out_of_decide() {
    // Every refusal is decided here, not built by the camera's adapter.
    let r = register();
    let mut s = AccessState::new();
    let east = gate("east");
    let t = now("2025-03-12 10:00");
    let unknown_face = Credential::UnknownFace { score: Some(0.31) };
    let ambiguous = Credential::AmbiguousPlate {
        read: "川A1234S".into(),
    };
    let cases: Vec<(&str, Credential, DenyReason, Option<ResidentId>)> = vec![
        (
            "a stranger's face",
            unknown_face.clone(),
            DenyReason::UnknownFace,
            None,
        ),
        (
            "two plates fit the reading",
            ambiguous.clone(),
            DenyReason::AmbiguousPlate,
            None,
        ),
        // An active resident the register would admit: the watchlist wins,
        // and the event names whom the face matched, like a listed card.
        (
            "a face on a deny entry",
            watched_face(1),
            DenyReason::Watchlisted,
            Some(ResidentId(1)),
        ),
    ];
    for (name, cred, reason, subject) in cases {
        let d = decide(&r, &s, &cred, &east, &t);
        assert_eq!(d.outcome, Outcome::Denied(reason), "{name}");
        assert_eq!(d.alarm, None, "{name}");
        let named = match d.subject {
            Some(Subject::Resident { id, .. }) => Some(id),
            _ => None,
        };
        assert_eq!(named, subject, "{name}");
        s.apply(&d, &cred, &east, &t);
    }
    // None of them is a guess: five strangers' faces lock no reader.
    for _ in 0..5 {
        let d = decide(&r, &s, &unknown_face, &east, &t);
        s.apply(&d, &unknown_face, &east, &t);
    }
    assert!(decide(&r, &s, &card(1), &east, &t).is_granted());
    assert_eq!(
        (
            unknown_face.kind(),
            ambiguous.kind(),
            watched_face(1).kind()
        ),
        ("face", "plate", "face")
    );
    assert_eq!(unknown_face.score(), Some(0.31));
    assert_eq!(ambiguous.masked().as_deref(), Some("川A1234S"));
}

#[test]
fn every_deny_reason_is_an_event_reason_with_the_same_string() {
    use crate::event::EventReason;
    for r in EventReason::ALL {
        if let Ok(deny) = serde_json::from_value::<DenyReason>(serde_json::json!(r.as_str())) {
            assert_eq!(EventReason::from(deny), *r);
            assert_eq!(deny.as_str(), r.as_str());
        }
    }
    // And the other way: the serde name of each refusal is its event string.
    for name in [
        "unknown_face",
        "ambiguous_plate",
        "watchlisted",
        "presentation_attack",
    ] {
        let deny: DenyReason = serde_json::from_value(serde_json::json!(name)).unwrap();
        assert_eq!(deny.as_str(), name);
    }
}
