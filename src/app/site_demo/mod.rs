//! `gatehouse demo --gateways N`: a whole site on one machine. A mosquitto
//! for the site's broker (or `--broker`), a registry and N gates, each a
//! separate `gatehouse run` process on its own data directory and config
//! under the demo's folder, on simulated hardware; then a scripted scenario
//! that shows what issue 17 promises: a card enrolled at the registry opens
//! at every gate, a gate that was away catches up, a forged change is refused
//! everywhere, a one-use visitor PIN works once across the site, and the
//! gates keep deciding with the registry down.
//!
//! Architecture Invariant: every result is read from the gateways' own
//! state (their databases, their retained applied seq on the broker, their
//! decisions over the control socket), never assumed; every wait is a poll
//! of that state with a generous deadline. Register changes at the registry
//! go through the same `store` functions as the CLI.

mod gateway;
mod procs;
mod watch;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use chrono::Utc;
use serde::Serialize;

use crate::domain::{CardNumber, GateId, ResidentId, ResidentRole};
use crate::store::events::{self, AccessResult, EventFilter, EventKind};
use crate::store::people::{self, NewPerson};
use crate::store::{cards, site_log, visitors, Store};
use gateway::{gateway_config, pid, Gateway};
use procs::Process;
use watch::SiteWatch;

/// What to run.
#[derive(Clone, Debug)]
pub struct SiteDemoOptions {
    /// The demo's folder; a fresh temporary one when `None`.
    pub data_dir: Option<PathBuf>,
    /// How many gate gateways besides the registry (at least 2).
    pub gateways: usize,
    /// The site's broker; a mosquitto of the demo's own when `None`.
    pub broker: Option<String>,
}

/// What the scenario observed: the closing JSON line. A flag is true only
/// when the behaviour was seen in the gateways' state.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Outcome {
    pub gateways: usize,
    /// From a change committed at the registry to its being applied at every gate.
    pub propagation_ms_p99: Option<u64>,
    pub caught_up: bool,
    pub forged_refused: bool,
    pub visitor_pin_once: bool,
    pub offline_decisions: bool,
    /// The card enrolled at the registry opened at every gate.
    pub card_opens_everywhere: bool,
    /// Every gate's decisions are in the registry's event log.
    pub events_at_registry: bool,
}

impl Outcome {
    pub fn all_held(&self) -> bool {
        self.propagation_ms_p99.is_some()
            && self.caught_up
            && self.forged_refused
            && self.visitor_pin_once
            && self.offline_decisions
            && self.card_opens_everywhere
            && self.events_at_registry
    }
}

/// The site's id on the demo's own broker; on a `--broker` of the user's,
/// one of its own per run, so retained topics of an earlier run (its head,
/// gates' acknowledgements) do not meet this one.
const SITE: &str = "qingbo";
const REGISTRY: &str = "office";
const ACTOR: &str = "demo";
/// The gate every gateway of the demo has a reader and a keypad at.
const GATE: &str = "east";
const CARD: &str = "10:4242";
/// Longest wait for anything the scenario expects to happen.
const WAIT: Duration = Duration::from_secs(60);
/// Changes timed one by one for the propagation figure (enough for a p99 that is not the maximum).
const TIMED_CHANGES: usize = 100;
/// Changes made while a gate is away.
const AWAY_CHANGES: usize = 100;

type Out<'a> = &'a mut (dyn std::io::Write + Send);

/// Runs the site and the scenario; the children are gone when this returns.
pub fn run(options: &SiteDemoOptions, out: Out<'_>) -> Result<Outcome> {
    if options.gateways < 2 {
        bail!("--gateways: the site demo needs at least 2 gates (a visitor PIN goes from one to another)");
    }
    let dir = match &options.data_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "gatehouse-site-demo-{}",
            uuid::Uuid::now_v7().simple()
        )),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    writeln!(
        out,
        "gatehouse demo — 一个小区, {} 个门 (a site with a registry and {} gates)",
        options.gateways, options.gateways
    )?;
    writeln!(out, "folder: {}", dir.display())?;
    let mut site = Site::start(&dir, options, out)?;
    let outcome = site.scenario(out);
    // Every child stops here, also when the scenario failed half-way.
    site.stop_all(out);
    let outcome = outcome?;
    write_summary(out, &outcome, &dir)?;
    Ok(outcome)
}

struct Site {
    site: String,
    /// The demo's own broker, when it started one.
    mosquitto: Option<Process>,
    registry: Gateway,
    gates: Vec<Gateway>,
    watch: SiteWatch,
    /// The registry's register, changed through the CLI's own functions.
    register: Store,
    card: CardNumber,
    tenant: Option<ResidentId>,
}

impl Site {
    fn start(dir: &Path, options: &SiteDemoOptions, out: Out<'_>) -> Result<Site> {
        let (mosquitto, url) = match &options.broker {
            Some(url) => (None, url.clone()),
            None => {
                let port = procs::free_port()?;
                let broker = procs::start_mosquitto(dir, port)?;
                (Some(broker), format!("mqtt://127.0.0.1:{port}"))
            }
        };
        let broker: crate::uplink::Broker = url
            .parse()
            .map_err(anyhow::Error::msg)
            .context("--broker")?;
        if mosquitto.is_none() {
            // Fail now rather than in every step's wait.
            std::net::TcpStream::connect((broker.host.as_str(), broker.port))
                .with_context(|| format!("cannot reach the site broker {url}"))?;
        }
        writeln!(
            out,
            "site broker: {url}{}",
            if mosquitto.is_some() {
                " (mosquitto started by the demo)"
            } else {
                ""
            }
        )?;

        let site = match mosquitto {
            Some(_) => SITE.to_string(),
            None => format!("{SITE}-demo-{:08x}", rand::random::<u32>()),
        };
        writeln!(out, "site: {site}")?;
        let registry_site = format!("role = \"registry\"\nbroker = \"{url}\"");
        let registry = Gateway::new(
            dir,
            REGISTRY,
            &gateway_config(&site, REGISTRY, &registry_site)?,
        )?;
        // Every gateway's site key, made before any starts: the gates pin the
        // registry's, the registry pins each gate's (`[site] gate_keys`).
        let key = crate::site::keys::load_or_create(&registry.config.site_signing_key_path())?;
        let public = crate::signing::public_key_text(&key.verifying_key());
        let mut gates = Vec::new();
        let mut gate_keys = std::collections::HashMap::new();
        for i in 1..=options.gateways {
            let name = format!("gate-{i}");
            let gate = Gateway::new(
                dir,
                &name,
                &gateway_config(
                    &site,
                    &name,
                    &format!("role = \"gate\"\nbroker = \"{url}\"\nregistry_key = \"{public}\""),
                )?,
            )?;
            let gate_key = crate::site::keys::load_or_create(&gate.config.site_signing_key_path())?;
            gate_keys.insert(name, gate_key.verifying_key());
            gates.push(gate);
        }
        let pinned: Vec<String> = gates
            .iter()
            .filter_map(|g| {
                let key = gate_keys.get(&g.name)?;
                Some(format!(
                    "\"{}\" = \"{}\"",
                    g.name,
                    crate::signing::public_key_text(key)
                ))
            })
            .collect();
        let mut registry = Gateway::new(
            dir,
            REGISTRY,
            &gateway_config(
                &site,
                REGISTRY,
                &format!("{registry_site}\ngate_keys = {{ {} }}", pinned.join(", ")),
            )?,
        )?;
        // Opening the register creates the device secret; the gates share it
        // (visitor PINs are hashed with it, see README "A site with several gates").
        let register = Store::open_config(&registry.config)?;
        let secret = registry.config.device_key_path();
        registry.start()?;
        writeln!(
            out,
            "registry {REGISTRY}: running (pid {}), key {public}",
            pid(&registry)
        )?;
        for gate in &mut gates {
            std::fs::copy(&secret, gate.config.device_key_path())
                .with_context(|| format!("cannot give {} the site's device secret", gate.name))?;
            gate.start()?;
            writeln!(out, "gate {}: running (pid {})", gate.name, pid(gate))?;
        }
        let watch = SiteWatch::start(&broker, &site, gate_keys)?;
        Ok(Site {
            site,
            mosquitto,
            registry,
            gates,
            watch,
            register,
            card: CARD.parse().map_err(anyhow::Error::msg)?,
            tenant: None,
        })
    }

    fn head(&self) -> Result<i64> {
        site_log::head(self.register.conn())
    }

    /// Each step on its own: a failed one is reported and the next runs.
    fn scenario(&mut self, out: Out<'_>) -> Result<Outcome> {
        let mut outcome = Outcome {
            gateways: self.gates.len(),
            ..Outcome::default()
        };
        let mut latencies = Vec::new();
        writeln!(
            out,
            "\n— 1. 登记 enrol at the registry, open at every gate —"
        )?;
        let step = self.enrol(out, &mut latencies);
        outcome.card_opens_everywhere = report(out, step)?;
        writeln!(
            out,
            "\n— 2. 下发 {TIMED_CHANGES} changes, each timed until every gate applied it —"
        )?;
        let step = self.timed_changes(out, &mut latencies);
        if report(out, step)? {
            outcome.propagation_ms_p99 = Some(percentile(&latencies, 0.99));
        }
        writeln!(
            out,
            "\n— 3. 补同步 a gate away for {AWAY_CHANGES} changes catches up —"
        )?;
        let step = self.catch_up(out);
        outcome.caught_up = report(out, step)?;
        writeln!(out, "\n— 4. 伪造 a change signed with another key —")?;
        let step = self.forged(out);
        outcome.forged_refused = report(out, step)?;
        writeln!(
            out,
            "\n— 5. 访客 a one-use visitor PIN at gate-1, then at gate-2 —"
        )?;
        let step = self.visitor_pin(out);
        outcome.visitor_pin_once = report(out, step)?;
        writeln!(
            out,
            "\n— 6. 汇总 every gate's events in the registry's log —"
        )?;
        let step = self.events_at_registry(out);
        outcome.events_at_registry = report(out, step)?;
        writeln!(
            out,
            "\n— 7. 离线 the registry stops; the gates keep deciding —"
        )?;
        let step = self.offline(out);
        outcome.offline_decisions = report(out, step)?;
        Ok(outcome)
    }

    /// Waits until every running gate has applied `seq`; how long it took.
    fn wait_applied(&self, seq: i64, started: Instant) -> Result<Duration> {
        wait_for(&format!("every gate to apply entry {seq}"), || {
            for gate in &self.gates {
                if gate.applied()? < seq {
                    return Ok(None);
                }
            }
            Ok(Some(started.elapsed()))
        })
    }

    /// Waits until every gate applied `seq` and decides on it.
    fn sync_gates(&self, seq: i64) -> Result<()> {
        self.wait_applied(seq, Instant::now())?;
        self.gates.iter().try_for_each(Gateway::reload)
    }

    fn enrol(&mut self, out: Out<'_>, latencies: &mut Vec<Duration>) -> Result<bool> {
        let started = Instant::now();
        let mut tenant = NewPerson::new("李雷", ResidentRole::Tenant);
        tenant.address = Some("6-1-101".parse().map_err(anyhow::Error::msg)?);
        tenant.valid_until = Some(Utc::now().date_naive() + chrono::Duration::days(365));
        let id = people::add(&self.register, ACTOR, &tenant)?;
        cards::assign(&self.register, ACTOR, id, &self.card, None)?;
        self.tenant = Some(id);
        let seq = self.head()?;
        let took = self.wait_applied(seq, started)?;
        latencies.push(took);
        writeln!(
            out,
            "registry: tenant 李雷 {id} with card {CARD} (register entry {seq}); at every gate in {} ms",
            took.as_millis()
        )?;
        self.sync_gates(seq)?;
        let mut all = true;
        for gate in &self.gates {
            let d = gate.swipe(&self.card)?;
            writeln!(out, "  {:<7} {}", gate.name, d.line())?;
            all &= d.result == AccessResult::Granted;
        }
        Ok(all)
    }

    fn timed_changes(&mut self, out: Out<'_>, latencies: &mut Vec<Duration>) -> Result<bool> {
        for i in 1..=TIMED_CHANGES {
            let started = Instant::now();
            people::add(
                &self.register,
                ACTOR,
                &NewPerson::new(&format!("住户{i}"), ResidentRole::Owner),
            )?;
            let seq = self.head()?;
            latencies.push(self.wait_applied(seq, started)?);
        }
        writeln!(
            out,
            "{} changes reached all {} gates: p50 {} ms, p99 {} ms, max {} ms (goal: ≤ 2000 ms p99)",
            latencies.len(),
            self.gates.len(),
            percentile(latencies, 0.5),
            percentile(latencies, 0.99),
            percentile(latencies, 1.0)
        )?;
        Ok(true)
    }

    fn catch_up(&mut self, out: Out<'_>) -> Result<bool> {
        let last = self.gates.len() - 1;
        let before = self.gates[last].applied()?;
        self.gates[last].stop()?;
        writeln!(
            out,
            "{} stopped at register entry {before}",
            self.gates[last].name
        )?;
        let first = self.head()?;
        for i in 1..=AWAY_CHANGES {
            people::add(
                &self.register,
                ACTOR,
                &NewPerson::new(&format!("新住户{i}"), ResidentRole::Owner),
            )?;
        }
        let head = self.head()?;
        writeln!(
            out,
            "registry: {} changes while it was away (entries {}..={head})",
            head - first,
            first + 1
        )?;
        let started = Instant::now();
        self.gates[last].start()?;
        let gate = &self.gates[last];
        // What the gate tells the site (retained), then what its database holds.
        let took = wait_for(&format!("{} to report entry {head}", gate.name), || {
            Ok((self.watch.applied(&gate.name) >= Some(head)).then(|| started.elapsed()))
        })?;
        let applied = gate.applied()?;
        let same = gate.register_hash()? == site_log::register_hash(self.register.conn())?;
        writeln!(
            out,
            "{} restarted and caught up: reports entry {} (retained), {} ms after its start; register hash {} the registry's",
            gate.name,
            self.watch.applied(&gate.name).unwrap_or(-1),
            took.as_millis(),
            if same { "equals" } else { "DIFFERS FROM" }
        )?;
        Ok(applied == head && same && head - first >= AWAY_CHANGES as i64)
    }

    fn forged(&mut self, out: Out<'_>) -> Result<bool> {
        let head = self.head()?;
        self.sync_gates(head)?;
        let before: Vec<(usize, i64, String)> = self
            .gates
            .iter()
            .map(|g| Ok((g.rejections()?.len(), g.applied()?, g.register_hash()?)))
            .collect::<Result<_>>()?;
        let stranger = ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>());
        let topic = crate::site::wire::Topics::new(&self.site).log();
        self.watch
            .publish(&topic, forged_entry(&stranger, &self.site, head + 1)?)?;
        writeln!(
            out,
            "published entry {} on {topic}, signed with a key no gate pins (it would add a person 伪造)",
            head + 1
        )?;
        let mut all = true;
        for (gate, (alarms, applied, hash)) in self.gates.iter().zip(before) {
            let why = wait_for(&format!("{} to refuse the forged entry", gate.name), || {
                let found = gate.rejections()?;
                Ok((found.len() > alarms).then(|| found[alarms..].join(",")))
            })?;
            let unchanged = gate.applied()? == applied && gate.register_hash()? == hash;
            writeln!(
                out,
                "  {:<7} ALARM site_log_rejected ({why}); register {}",
                gate.name,
                if unchanged { "unchanged" } else { "CHANGED" }
            )?;
            all &= unchanged && why.split(',').all(|w| w == "bad_signature");
        }
        Ok(all)
    }

    fn visitor_pin(&mut self, out: Out<'_>) -> Result<bool> {
        let host = self.tenant.context("no tenant (enrolment failed)")?;
        let issued = visitors::issue(
            &self.register,
            ACTOR,
            &visitors::NewPass {
                host,
                visitor_name: "韩梅梅".into(),
                phone: None,
                plate: None,
                gates: Some(vec![gate_id()?]),
                valid_from: Utc::now() - chrono::Duration::minutes(1),
                valid_until: Utc::now() + chrono::Duration::hours(4),
                uses: Some(1),
            },
            &self.site,
        )?;
        let pin = issued.pin.as_str().to_string();
        writeln!(out, "registry: visitor 韩梅梅, one-use PIN {pin}")?;
        self.sync_gates(self.head()?)?;
        let (first, second) = (&self.gates[0], &self.gates[1]);
        let at_first = first.pin(&pin)?;
        writeln!(out, "  {:<7} {}", first.name, at_first.line())?;
        // The use goes to the registry, which lowers the pass for every gate.
        let pass = issued.pass.id;
        wait_for("the registry to count the use", || {
            let left = visitors::get(self.register.conn(), pass)?.uses_left;
            Ok((left == Some(0)).then_some(()))
        })?;
        let head = self.head()?;
        writeln!(
            out,
            "registry: {} reported the use; pass now has 0 uses left (entry {head})",
            first.name
        )?;
        self.wait_applied(head, Instant::now())?;
        second.reload()?;
        let at_second = second.pin(&pin)?;
        writeln!(out, "  {:<7} {}", second.name, at_second.line())?;
        Ok(at_first.result == AccessResult::Granted && at_second.result == AccessResult::Denied)
    }

    /// Each gate's decisions so far reach the registry's log, under
    /// `<gateway>/<gate>`; the registry knows each gate's applied entry.
    fn events_at_registry(&mut self, out: Out<'_>) -> Result<bool> {
        let mut all = true;
        for gate in &self.gates {
            let decided = gate.read(|conn| decisions(conn, GATE))?;
            let name = crate::store::site_gates::site_gate_name(&gate.name, Some(GATE));
            let at_registry = wait_for(&format!("{name}'s decisions at the registry"), || {
                let n = decisions(self.register.conn(), &name)?;
                Ok((n >= decided).then_some(n))
            })?;
            writeln!(
                out,
                "  registry log: {at_registry} decision(s) of {name} ({decided} made there)"
            )?;
            all &= decided > 0 && at_registry == decided;
        }
        let head = self.head()?;
        wait_for("every gate's applied entry at the registry", || {
            let seen = crate::store::site_gates::gates(self.register.conn())?;
            Ok(
                (seen.len() == self.gates.len() && seen.iter().all(|g| g.applied_seq == head))
                    .then_some(()),
            )
        })?;
        for line in crate::site::describe_gates(
            head,
            &crate::store::site_gates::gates(self.register.conn())?,
        ) {
            writeln!(out, "  {line}")?;
        }
        writeln!(
            out,
            "  (at the registry: `gatehouse --config {} --data-dir {} log` and `… gate status`)",
            self.registry.config_path.display(),
            self.registry.data().display()
        )?;
        Ok(all)
    }

    fn offline(&mut self, out: Out<'_>) -> Result<bool> {
        self.registry.stop()?;
        writeln!(out, "registry stopped")?;
        let mut all = true;
        for gate in &self.gates {
            let d = gate.swipe(&self.card)?;
            let status = site_log::status_at(&gate.config.database_path())?;
            writeln!(
                out,
                "  {:<7} {}   [{}]",
                gate.name,
                d.line(),
                crate::site::describe(&status)
            )?;
            all &= d.result == AccessResult::Granted;
        }
        Ok(all)
    }

    /// Stops the gates, the registry and the broker, saying what did not stop cleanly.
    fn stop_all(&mut self, out: Out<'_>) {
        for gateway in self.gates.iter_mut().chain(Some(&mut self.registry)) {
            if let Err(e) = gateway.stop() {
                let _ = writeln!(out, "{e:#}");
            }
        }
        if let Some(mut broker) = self.mosquitto.take() {
            if let Err(e) = broker.stop() {
                let _ = writeln!(out, "{e:#}");
            }
        }
    }
}

fn gate_id() -> Result<GateId> {
    GATE.parse().map_err(anyhow::Error::msg)
}

/// How many access decisions the log at `conn` holds for `gate`.
fn decisions(conn: &rusqlite::Connection, gate: &str) -> Result<usize> {
    let found = events::query(
        conn,
        &EventFilter {
            gate: Some(gate.to_string()),
            kind: Some(EventKind::Access),
            ..EventFilter::default()
        },
    )?;
    Ok(found.len())
}

/// Prints a step's failure; whether the behaviour held.
fn report(out: Out<'_>, step: Result<bool>) -> Result<bool> {
    match step {
        Ok(held) => {
            if !held {
                writeln!(out, "  ✗ not as expected")?;
            }
            Ok(held)
        }
        Err(e) => {
            writeln!(out, "  ✗ {e:#}")?;
            Ok(false)
        }
    }
}

/// Polls `check` until it yields a value; an error after [`WAIT`].
fn wait_for<T>(what: &str, mut check: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            bail!("waited {WAIT:?} for {what}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The `q` quantile of `samples`, in whole milliseconds (nearest rank).
fn percentile(samples: &[Duration], q: f64) -> u64 {
    let mut sorted = samples.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    u64::try_from(sorted[rank - 1].as_millis()).unwrap_or(u64::MAX)
}

/// A well-formed entry the registry never sent: signed with `key`.
fn forged_entry(key: &ed25519_dalek::SigningKey, site: &str, seq: i64) -> Result<Vec<u8>> {
    let at = crate::store::now_rfc3339();
    let row = serde_json::json!({
        "id": 900_000, "name": "伪造", "id_kind": "resident_id", "id_hash": null, "id_masked": null,
        "phone": null, "role": "owner", "household_id": null, "status": "active",
        "valid_from": null, "valid_until": null, "floating": 0, "residence_permit_until": null,
        "notes": null, "created_at": at, "created_by": "forger",
        "updated_at": at, "updated_by": "forger"
    });
    let serde_json::Value::Object(row) = row else {
        bail!("the forged row is not an object");
    };
    let entry = site_log::Entry {
        v: site_log::VERSION,
        site: site.into(),
        seq,
        at,
        changes: vec![site_log::Change::Upsert {
            table: "person".into(),
            row,
            windows: None,
            members: None,
        }],
    };
    let body = crate::site::wire::canonical_body(&entry);
    Ok(crate::site::wire::entry_message(
        &body,
        &crate::site::wire::sign(key, &body),
    ))
}

fn write_summary(out: Out<'_>, o: &Outcome, dir: &Path) -> Result<()> {
    let word = |held: bool| if held { "yes" } else { "NO" };
    writeln!(out, "\n— summary 小结 —")?;
    writeln!(
        out,
        "gates: {}; card opens at every gate: {}",
        o.gateways,
        word(o.card_opens_everywhere)
    )?;
    match o.propagation_ms_p99 {
        Some(ms) => writeln!(out, "propagation to every gate, p99: {ms} ms")?,
        None => writeln!(out, "propagation: NOT MEASURED")?,
    }
    writeln!(out, "a gate away caught up: {}", word(o.caught_up))?;
    writeln!(
        out,
        "forged change refused by every gate: {}",
        word(o.forged_refused)
    )?;
    writeln!(
        out,
        "one-use visitor PIN used once on the site: {}",
        word(o.visitor_pin_once)
    )?;
    writeln!(
        out,
        "every gate's events in the registry's log: {}",
        word(o.events_at_registry)
    )?;
    writeln!(
        out,
        "gates decided with the registry down: {}",
        word(o.offline_decisions)
    )?;
    writeln!(
        out,
        "logs and databases: {} (registry in {REGISTRY}/, gates in gate-N/)",
        dir.display()
    )?;
    writeln!(out, "{}", serde_json::to_string(o)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn percentiles_are_nearest_rank_in_whole_milliseconds() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&samples, 0.5), 50);
        assert_eq!(percentile(&samples, 0.99), 99);
        assert_eq!(percentile(&samples, 1.0), 100);
        assert_eq!(percentile(&samples[..1], 0.99), 1);
        assert_eq!(percentile(&[], 0.99), 0);
    }

    #[test]
    fn each_gateway_runs_the_demo_config_with_its_role_no_camera_and_free_ports() {
        let key = crate::signing::public_key_text(
            &ed25519_dalek::SigningKey::from_bytes(&[3; 32]).verifying_key(),
        );
        let text = gateway_config(
            "lotus",
            "gate-2",
            &format!(
                "role = \"gate\"\nbroker = \"mqtt://127.0.0.1:1883\"\nregistry_key = \"{key}\""
            ),
        )
        .unwrap();
        let config = Config::parse(&text, "gate-2.toml").unwrap();
        assert_eq!(config.site.role, crate::config::SiteRole::Gate);
        assert_eq!(config.site.gateway_id, "gate-2");
        assert_eq!(config.site.id, "lotus");
        assert!(config.cameras.is_empty());
        assert_eq!(
            config.console.listen,
            Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        );
        assert!(config.gates.iter().any(|g| g.id.as_str() == GATE));
    }
}
