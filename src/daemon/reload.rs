//! SIGHUP: re-read the config file and the register while the gates keep
//! working and the uplink stays connected.
//!
//! What changes at once: `[access]` (lockout and anti-passback), each gate's
//! `unlock_ms`, `held_open_s`, `two_factor_hours`, `face_wait_s` and `face_unavailable`,
//! `[logging]` `level` and `format`, and the
//! register (re-read even if the watcher saw no change). Everything else (gates
//! added or removed, pins, backends, cameras, models, face, uplink, LPR,
//! metrics, store, site) is reported as needing a restart and keeps its
//! running value. A file that does not parse or validate changes nothing.
//!
//! [`plan`] is the pure part: which keys changed and the config that results
//! from applying only the live ones.

use std::collections::BTreeSet;

use anyhow::Result;
use serde::Serialize;
use serde_json::Value;

use super::gate::GateCommand;
use super::{GateHandle, Slot};
use crate::config::Config;
use crate::store::events::EventKind;

/// Gate keys a running gate task can take over. (`two_factor` and
/// `face_mode` themselves need a restart: the cameras keep recent faces only
/// for gates that had card + face or household mode at start.)
const LIVE_GATE_KEYS: [&str; 6] = [
    "unlock_ms",
    "held_open_s",
    "two_factor_hours",
    "face_wait_s",
    "face_unavailable",
    "household_wait_s",
];

/// What a reload changes, by key path (`access.lockout_attempts`,
/// `gates[east].unlock_ms`, `uplink.broker`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReloadPlan {
    /// Changed and applied now.
    pub applied: Vec<String>,
    /// Changed in the file but running with the old value until a restart.
    pub needs_restart: Vec<String>,
}

/// Compares the running config with a freshly loaded one. Returns the plan
/// and the config to run with: `running` with the live keys taken from `new`.
pub fn plan(running: &Config, new: &Config) -> (ReloadPlan, Config) {
    let mut plan = ReloadPlan::default();
    let mut effective = running.clone();
    let (old_v, new_v) = (to_value(running), to_value(new));
    for (section, old_s) in object(&old_v) {
        let new_s = new_v.get(section).unwrap_or(&Value::Null);
        match section.as_str() {
            "gates" => {}
            "access" => {
                diff(section, old_s, new_s, &mut plan.applied);
                effective.access = new.access.clone();
            }
            "logging" => {
                diff(section, old_s, new_s, &mut plan.applied);
                effective.logging = new.logging.clone();
            }
            _ => diff(section, old_s, new_s, &mut plan.needs_restart),
        }
    }
    gates(running, new, &mut plan, &mut effective);
    (plan, effective)
}

fn gates(running: &Config, new: &Config, plan: &mut ReloadPlan, effective: &mut Config) {
    let ids = |c: &Config| {
        c.gates
            .iter()
            .map(|g| g.id.clone())
            .collect::<BTreeSet<_>>()
    };
    let (old_ids, new_ids) = (ids(running), ids(new));
    for id in old_ids.difference(&new_ids) {
        plan.needs_restart.push(format!("gates[{id}] (removed)"));
    }
    for id in new_ids.difference(&old_ids) {
        plan.needs_restart.push(format!("gates[{id}] (added)"));
    }
    for gate in &mut effective.gates {
        let Some(fresh) = new.gate(&gate.id) else {
            continue;
        };
        let (old_g, new_g) = (to_value(&*gate), to_value(fresh));
        for (key, old_k) in object(&old_g) {
            let path = format!("gates[{}].{key}", gate.id);
            let new_k = new_g.get(key).unwrap_or(&Value::Null);
            if LIVE_GATE_KEYS.contains(&key.as_str()) {
                diff_leaf(&path, old_k, new_k, &mut plan.applied);
            } else {
                diff_leaf(&path, old_k, new_k, &mut plan.needs_restart);
            }
        }
        gate.unlock_ms = fresh.unlock_ms;
        gate.held_open_s = fresh.held_open_s;
        gate.two_factor_hours = fresh.two_factor_hours.clone();
        gate.face_wait_s = fresh.face_wait_s;
        gate.household_wait_s = fresh.household_wait_s;
        gate.face_unavailable = fresh.face_unavailable;
    }
}

fn to_value<T: Serialize>(v: &T) -> Value {
    // Config types are plain data; serialising them cannot fail.
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn object(v: &Value) -> Vec<(&String, &Value)> {
    v.as_object()
        .map(|m| m.iter().collect())
        .unwrap_or_default()
}

/// Key paths under `path` whose values differ (one level into tables).
fn diff(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    match (old.as_object(), new.as_object()) {
        (Some(o), Some(n)) => {
            let keys: BTreeSet<&String> = o.keys().chain(n.keys()).collect();
            for k in keys {
                let (a, b) = (
                    o.get(k).unwrap_or(&Value::Null),
                    n.get(k).unwrap_or(&Value::Null),
                );
                diff_leaf(&format!("{path}.{k}"), a, b, out);
            }
        }
        _ => diff_leaf(path, old, new, out),
    }
}

fn diff_leaf(path: &str, old: &Value, new: &Value, out: &mut Vec<String>) {
    if old != new {
        out.push(path.to_string());
    }
}

impl GateHandle {
    /// Hands the live settings of `config` to every running gate task. A
    /// credential being decided finishes with the old settings.
    pub async fn reconfigure(&self, config: &Config) -> Result<()> {
        for (id, entry) in &self.shared.gates {
            let (Slot::Running { commands, .. }, Some(gate)) = (&entry.slot, config.gate(id))
            else {
                continue;
            };
            let (reply, rx) = tokio::sync::oneshot::channel();
            let cmd = GateCommand::Reconfigure {
                gate: Box::new(gate.clone()),
                access: config.access.clone(),
                reply,
            };
            if commands.send(cmd).await.is_err() || rx.await.is_err() {
                tracing::warn!(gate = %id, "gate stopped before taking the new settings");
            }
        }
        Ok(())
    }

    /// The whole SIGHUP reload with a config that already parsed and
    /// validated: applies the live keys, re-reads the register, and stores a
    /// `config_reloaded` event listing what changed. Returns the config to
    /// run with from now on.
    pub async fn reload_config(&self, running: &Config, new: &Config) -> Result<Config> {
        let (plan, effective) = plan(running, new);
        let mut problems = Vec::new();
        if let Err(e) = crate::logging::apply(&effective.logging.level, effective.logging.format) {
            problems.push(format!("{e:#}"));
        }
        self.reconfigure(&effective).await?;
        if let Err(e) = self.reload_register(true).await {
            problems.push(format!(
                "register not reloaded (keeping the previous one): {e:#}"
            ));
        }
        let persons = self.register().person_count();
        tracing::info!(
            applied = ?plan.applied,
            needs_restart = ?plan.needs_restart,
            persons,
            "configuration reloaded"
        );
        if !plan.needs_restart.is_empty() {
            tracing::warn!(
                "changed but running with the old value until a restart: {}",
                plan.needs_restart.join(", ")
            );
        }
        for p in &problems {
            tracing::error!("reload: {p}");
        }
        let mut ev = self.event(EventKind::Device);
        ev.reason = Some(crate::event::EventReason::ConfigReloaded);
        ev.detail = Some(serde_json::json!({
            "applied": plan.applied,
            "needs_restart": plan.needs_restart,
            "register_persons": persons,
            "problems": problems,
        }));
        self.record(ev).await?;
        Ok(effective)
    }

    /// A SIGHUP whose config file is invalid: logged and stored as a
    /// `config_reload_failed` event; the running config stays.
    pub async fn reload_refused(&self, error: &anyhow::Error) -> Result<()> {
        tracing::error!("configuration not reloaded, keeping the running one: {error:#}");
        let mut ev = self.event(EventKind::Device);
        ev.reason = Some(crate::event::EventReason::ConfigReloadFailed);
        ev.detail = Some(serde_json::json!({ "error": format!("{error:#}") }));
        self.record(ev).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> Config {
        Config::demo()
    }

    #[test]
    fn identical_configs_change_nothing() {
        let (p, effective) = plan(&demo(), &demo());
        assert_eq!(p, ReloadPlan::default());
        assert_eq!(to_value(&effective), to_value(&demo()));
    }

    #[test]
    fn access_door_timing_and_logging_apply_at_once() {
        let mut new = demo();
        new.access.lockout_attempts = 2;
        new.access.anti_passback = true;
        new.gates[0].unlock_ms = 9000;
        new.gates[2].held_open_s = 5;
        new.gates[1].face_wait_s = 20;
        new.logging.level = "debug".into();
        let (p, effective) = plan(&demo(), &new);
        assert_eq!(
            p.applied,
            vec![
                "access.anti_passback",
                "access.lockout_attempts",
                "logging.level",
                "gates[east].unlock_ms",
                "gates[east-out].face_wait_s",
                "gates[car-in].held_open_s",
            ]
        );
        assert_eq!(effective.gates[1].face_wait_s, 20);
        assert!(p.needs_restart.is_empty(), "{p:?}");
        assert_eq!(effective.access.lockout_attempts, 2);
        assert_eq!(effective.gates[0].unlock_ms, 9000);
        assert_eq!(effective.gates[2].held_open_s, 5);
        assert_eq!(effective.logging.level, "debug");
    }

    #[test]
    fn hardware_uplink_and_new_gates_wait_for_a_restart_and_keep_running_values() {
        let running = demo();
        let mut new = demo();
        new.gates[0].relay_pin = crate::config::GpioPin(26);
        new.gates[0].unlock_ms = 4000;
        new.uplink.broker = Some("mqtt://station:1883".into());
        new.store.retention_days = 7;
        let mut extra = new.gates[2].clone();
        extra.id = "car-out".parse().unwrap();
        new.gates.push(extra);
        new.gates.retain(|g| g.id.as_str() != "east-out");
        let (p, effective) = plan(&running, &new);
        assert_eq!(p.applied, vec!["gates[east].unlock_ms"]);
        for key in [
            "gates[east].relay_pin",
            "uplink.broker",
            "store.retention_days",
            "gates[car-out] (added)",
            "gates[east-out] (removed)",
        ] {
            assert!(p.needs_restart.iter().any(|k| k == key), "{key}: {p:?}");
        }
        assert_eq!(effective.gates.len(), 3);
        assert_eq!(effective.gates[0].relay_pin, running.gates[0].relay_pin);
        assert_eq!(effective.gates[0].unlock_ms, 4000);
        assert_eq!(effective.uplink.broker, None);
        assert_eq!(effective.store.retention_days, running.store.retention_days);
    }

    #[test]
    fn a_second_reload_still_reports_what_waits_for_a_restart() {
        let mut new = demo();
        new.metrics.listen = Some("127.0.0.1:9100".parse().unwrap());
        let (_, effective) = plan(&demo(), &new);
        let (p, _) = plan(&effective, &new);
        assert_eq!(p.needs_restart, vec!["metrics.listen"]);
    }
}
