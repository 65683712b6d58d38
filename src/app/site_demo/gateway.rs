//! One gateway of the site demo: its config (the demo's built-in one with
//! its `[site]` role), data directory and `gatehouse run` process, and what
//! the scenario asks of it (its database read-only, its control socket).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use super::gate_id;
use super::procs::{self, Process};
use crate::config::Config;
use crate::control::{self, Request};
use crate::daemon::simulate::SimOutcome;
use crate::daemon::DecisionView;
use crate::domain::CardNumber;
use crate::event::EventReason;
use crate::store::events::{self, EventFilter, EventKind};
use crate::store::{readers, site_log};

/// One gateway of the demo: its config, data directory and process.
pub(super) struct Gateway {
    pub(super) name: String,
    pub(super) config_path: PathBuf,
    pub(super) config: Config,
    pub(super) process: Option<Process>,
}

impl Gateway {
    pub(super) fn new(dir: &Path, name: &str, config_text: &str) -> Result<Gateway> {
        let data = dir.join(name);
        std::fs::create_dir_all(&data)
            .with_context(|| format!("cannot create {}", data.display()))?;
        let config_path = data.join("gatehouse.toml");
        let mut config = Config::parse(config_text, &config_path.display().to_string())?;
        config.set_data_dir(data);
        std::fs::write(&config_path, config_text)
            .with_context(|| format!("cannot write {}", config_path.display()))?;
        Ok(Gateway {
            name: name.to_string(),
            config_path,
            config,
            process: None,
        })
    }

    pub(super) fn data(&self) -> &Path {
        self.config.data_dir()
    }

    pub(super) fn start(&mut self) -> Result<()> {
        let p = procs::start_gateway(&self.name, &self.config_path, self.data())?;
        self.process = Some(p);
        Ok(())
    }

    pub(super) fn stop(&mut self) -> Result<()> {
        match self.process.take() {
            Some(mut p) => p.stop(),
            None => Ok(()),
        }
    }

    /// Runs `f` on a read-only connection to this gateway's database.
    pub(super) fn read<R>(&self, f: impl FnOnce(&rusqlite::Connection) -> Result<R>) -> Result<R> {
        let conn = readers::open_read_only(&self.config.database_path())?;
        f(&conn).with_context(|| format!("reading {}'s database", self.name))
    }

    pub(super) fn applied(&self) -> Result<i64> {
        self.read(site_log::applied_seq)
    }

    pub(super) fn register_hash(&self) -> Result<String> {
        self.read(site_log::register_hash)
    }

    fn request(&self, req: &Request) -> Result<serde_json::Value> {
        control::request(&control::socket_path(self.data()), req)
            .with_context(|| format!("asking {}", self.name))
    }

    /// Makes the daemon decide on what its database holds now.
    pub(super) fn reload(&self) -> Result<()> {
        self.request(&Request::Reload).map(|_| ())
    }

    fn decision(&self, req: &Request) -> Result<DecisionView> {
        let outcome: SimOutcome = serde_json::from_value(self.request(req)?)
            .with_context(|| format!("{}'s answer", self.name))?;
        outcome
            .decision
            .ok_or_else(|| anyhow!("{} made no decision", self.name))
    }

    pub(super) fn swipe(&self, card: &CardNumber) -> Result<DecisionView> {
        self.decision(&Request::SimulateWiegand {
            gate: gate_id()?,
            card: Some(card.clone()),
            bits: None,
            format: None,
        })
    }

    pub(super) fn pin(&self, pin: &str) -> Result<DecisionView> {
        self.decision(&Request::SimulatePin {
            gate: gate_id()?,
            pin: pin.to_string(),
            eight_bit: false,
        })
    }

    /// This gateway's `site_log_rejected` alarms: the `why` of each.
    pub(super) fn rejections(&self) -> Result<Vec<String>> {
        self.read(|conn| {
            let alarms = events::query(
                conn,
                &EventFilter {
                    kind: Some(EventKind::Alarm),
                    ..EventFilter::default()
                },
            )?;
            Ok(alarms
                .into_iter()
                .filter(|e| e.parsed_reason() == Ok(Some(EventReason::SiteLogRejected)))
                .map(|e| {
                    e.detail
                        .as_ref()
                        .and_then(|d| d.get("why"))
                        .and_then(|w| w.as_str())
                        .unwrap_or("-")
                        .to_string()
                })
                .collect())
        })
    }
}

pub(super) fn pid(gateway: &Gateway) -> String {
    gateway
        .process
        .as_ref()
        .and_then(Process::pid)
        .map_or_else(|| "-".into(), |p| p.to_string())
}

/// The demo's built-in config for one gateway of the site: no camera, every
/// listener on a free port (the gateways run side by side), `site_keys`
/// appended to `[site]`.
pub(super) fn gateway_config(site: &str, gateway: &str, site_keys: &str) -> Result<String> {
    let mut out = String::new();
    let mut in_camera = false;
    // Only `[site]`'s `id` is the site's; gates have ids of their own.
    let mut in_site = false;
    for line in crate::config::DEMO_CONFIG.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            in_camera = trimmed == "[[cameras]]";
            in_site = trimmed == "[site]";
        }
        if in_camera {
            continue;
        }
        if trimmed.starts_with("listen = ") {
            out.push_str("listen = \"127.0.0.1:0\"\n");
        } else if trimmed.starts_with("id = ") && in_site {
            out.push_str(&format!("id = \"{site}\"\n"));
        } else if trimmed.starts_with("gateway_id = ") {
            out.push_str(&format!("gateway_id = \"{gateway}\"\n"));
        } else {
            out.push_str(line);
            out.push('\n');
            if trimmed.starts_with("utc_offset_minutes") {
                out.push_str(site_keys);
                out.push('\n');
            }
        }
    }
    if !out.contains(site_keys) {
        bail!("the demo config has no [site] utc_offset_minutes to put the site's keys after");
    }
    Ok(out)
}
