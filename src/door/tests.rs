use std::time::Duration;

use super::*;

fn pedestrian() -> Door {
    Door::new(DoorConfig {
        kind: GateKind::Pedestrian,
        unlock: Duration::from_millis(3000),
        held_open: Duration::from_secs(20),
    })
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn grant_releases_then_relocks_when_time_ends() {
    let mut door = pedestrian();
    assert_eq!(
        door.release(ReleaseCause::Grant, ms(0)),
        vec![DoorAction::Release]
    );
    assert_eq!(door.next_deadline(), Some(ms(3000)));
    assert!(door.tick(ms(2999)).is_empty());
    assert_eq!(door.tick(ms(3000)), vec![DoorAction::Lock]);
    assert!(!door.is_released());
}

#[test]
fn relocks_as_soon_as_the_door_closes_after_passage() {
    let mut door = pedestrian();
    door.contact(false, ms(0));
    door.release(ReleaseCause::Grant, ms(10));
    assert!(door.contact(true, ms(500)).is_empty());
    assert_eq!(door.contact(false, ms(1500)), vec![DoorAction::Lock]);
    assert_eq!(door.next_deadline(), None);
}

#[test]
fn door_left_open_raises_held_open_once_and_clears_on_close() {
    let mut door = pedestrian();
    door.contact(false, ms(0));
    door.release(ReleaseCause::Grant, ms(0));
    door.contact(true, ms(1000));
    assert_eq!(door.tick(ms(3000)), vec![DoorAction::Lock]);
    assert_eq!(door.next_deadline(), Some(ms(21_000)));
    assert_eq!(
        door.tick(ms(21_000)),
        vec![DoorAction::Alarm(DoorAlarm::HeldOpen)]
    );
    assert!(door.tick(ms(40_000)).is_empty());
    assert_eq!(
        door.contact(false, ms(41_000)),
        vec![DoorAction::AlarmCleared(DoorAlarm::HeldOpen)]
    );
}

#[test]
fn door_opened_while_locked_is_forced() {
    let mut door = pedestrian();
    door.contact(false, ms(0));
    assert_eq!(
        door.contact(true, ms(5)),
        vec![DoorAction::Alarm(DoorAlarm::ForcedOpen)]
    );
    assert_eq!(door.status().alarms, vec![DoorAlarm::ForcedOpen]);
    // A forced door does not also count as held open.
    assert!(door.tick(ms(60_000)).is_empty());
    assert_eq!(
        door.contact(false, ms(61_000)),
        vec![DoorAction::AlarmCleared(DoorAlarm::ForcedOpen)]
    );
}

#[test]
fn exit_button_opening_is_not_forced() {
    let mut door = pedestrian();
    door.contact(false, ms(0));
    door.release(ReleaseCause::ExitButton, ms(100));
    assert!(door.contact(true, ms(200)).is_empty());
}

#[test]
fn barrier_stays_up_while_the_loop_sees_a_vehicle() {
    let mut gate = Door::new(DoorConfig {
        kind: GateKind::Vehicle,
        unlock: Duration::from_millis(8000),
        held_open: Duration::from_secs(30),
    });
    gate.release(ReleaseCause::Grant, ms(0));
    gate.vehicle(true, ms(7000));
    assert!(gate.tick(ms(9000)).is_empty(), "car still on the loop");
    assert_eq!(gate.next_deadline(), None);
    assert_eq!(gate.vehicle(false, ms(12_000)), vec![DoorAction::Lock]);
}

#[test]
fn barrier_lowers_behind_a_car_that_passed_early() {
    let mut gate = Door::new(DoorConfig {
        kind: GateKind::Vehicle,
        unlock: Duration::from_millis(8000),
        held_open: Duration::from_secs(30),
    });
    gate.release(ReleaseCause::Grant, ms(0));
    gate.vehicle(true, ms(1000));
    assert_eq!(gate.vehicle(false, ms(3000)), vec![DoorAction::Lock]);
}

struct Recorder(std::sync::Arc<std::sync::Mutex<Vec<Level>>>);

impl OutputPin for Recorder {
    fn set(&mut self, level: Level) -> anyhow::Result<()> {
        self.0.lock().unwrap().push(level);
        Ok(())
    }
    fn level(&self) -> Level {
        *self.0.lock().unwrap().last().unwrap_or(&Level::Low)
    }
}

fn gate_cfg(lock: LockKind, active_low: bool) -> config::Gate {
    let text = format!(
        r#"id = "g"
name = "g"
kind = "pedestrian"
direction = "in"
backend = "simulated"
relay_pin = 17
relay_active_low = {active_low}
lock = "{}""#,
        match lock {
            LockKind::FailSafe => "fail_safe",
            LockKind::FailSecure => "fail_secure",
        }
    );
    toml::from_str(&text).unwrap()
}

#[test]
fn relay_level_follows_lock_type_and_polarity() {
    use Level::*;
    // (lock, active_low) -> (locked level, released level)
    for (lock, active_low, locked, released) in [
        (LockKind::FailSecure, false, Low, High),
        (LockKind::FailSecure, true, High, Low),
        (LockKind::FailSafe, false, High, Low),
        (LockKind::FailSafe, true, Low, High),
    ] {
        let cfg = gate_cfg(lock, active_low);
        assert_eq!(Relay::locked_level(&cfg), locked, "{lock:?} {active_low}");
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut relay = Relay::new(Box::new(Recorder(log.clone())), &cfg);
        relay.set_released(true).unwrap();
        relay.lock().unwrap();
        assert_eq!(
            *log.lock().unwrap(),
            vec![released, locked],
            "{lock:?} {active_low}"
        );
    }
}
