//! `gatehouse demo`: the whole gate on the built-in configuration with
//! nothing external — a scratch data directory, simulated gates, a register
//! enrolled through the same library functions the CLI uses, faces from a
//! folder of photos and a camera fed from a video file — then a scripted run
//! of credentials, printing every decision and event as the daemon stores it.
//!
//! Architecture Invariant: the demo drives the product's own code paths
//! (`Daemon`, `start_services`, `store::*`, the simulated GPIO through the
//! Wiegand decoder); it never fakes a decision.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{NaiveDate, Utc};

use crate::app::services::{start_cameras, start_services};
use crate::config::Config;
use crate::daemon::{Daemon, DaemonOptions, GateHandle};
use crate::domain::{CardNumber, GateId, PersonStatus, Plate, ResidentId, ResidentRole};
use crate::event::EventReason;
use crate::store::events::{AccessResult, EventKind, EventRecord};
use crate::store::people::{self, NewPerson};
use crate::store::{cards, vehicles, visitors, Store};

/// Everything the demo can be pointed at.
#[derive(Clone, Debug, Default)]
pub struct DemoOptions {
    /// Scratch data directory; a fresh temporary one when `None`.
    pub data_dir: Option<PathBuf>,
    /// A folder with one sub-folder of photos per person.
    pub faces: Option<PathBuf>,
    /// Video file (or camera) for the entrance camera.
    pub video: Option<String>,
    /// Folder holding the model files (a mirror), when not downloading.
    pub models_mirror: Option<PathBuf>,
    /// Publish events to this broker.
    pub broker: Option<String>,
    /// How long the camera part may run.
    pub camera_seconds: u64,
    /// After the script, keep the gateway (console, control socket) running
    /// and print its events until Ctrl-C or SIGTERM.
    pub stay: bool,
}

/// What the demo did, for its closing summary (and tests).
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub data_dir: PathBuf,
    pub granted: usize,
    pub denied: usize,
    pub alarms: usize,
    pub face_events: usize,
    pub residents: usize,
    pub faces_enrolled: usize,
    pub outbox_depth: i64,
    pub chain_ok: bool,
}

const ACTOR: &str = "demo";

/// Card numbers of the demo residents (facility 10).
const OWNER_CARD: &str = "10:12345";
const TENANT_CARD: &str = "10:22222";
const SUSPENDED_CARD: &str = "10:33333";
const UNKNOWN_CARD: &str = "99:54321";
const OWNER_PLATE: &str = "川A12345";

pub async fn run(options: DemoOptions, out: &mut (dyn std::io::Write + Send)) -> Result<Summary> {
    let data_dir = match &options.data_dir {
        Some(d) => d.clone(),
        None => {
            std::env::temp_dir().join(format!("gatehouse-demo-{}", uuid::Uuid::now_v7().simple()))
        }
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    // The commands the demo suggests need a configuration (no command runs on
    // the built-in one silently): the demo's own, beside its data.
    let config_file = data_dir.join("demo.toml");
    std::fs::write(&config_file, crate::config::DEMO_CONFIG)
        .with_context(|| format!("cannot write {}", config_file.display()))?;
    let mut config = Config::demo();
    // Relative sources in the built-in config are relative to where the demo runs.
    config.set_data_dir(data_dir.clone());
    // The demo must not collide with a gateway running on this machine.
    config.lpr.listen = None;
    if config.console.listen.is_some() {
        config.console.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    }
    if let Some(video) = &options.video {
        for camera in &mut config.cameras {
            camera.source = video.clone();
        }
    }
    if let Some(broker) = &options.broker {
        config.uplink.broker = Some(broker.clone());
    }
    writeln!(out, "gatehouse demo — {}", config.site.name)?;
    writeln!(out, "data directory: {}", data_dir.display())?;

    // Register, through the same functions as `gatehouse resident add` & co.
    // This store is the process's writer until `enrol_faces` drops it, before
    // the daemon opens its own: one writer at a time.
    let store = Store::open_config(&config)?;
    let residents = enrol_register(&store, &config.site.id, out)?;
    let faces_enrolled = match enrol_faces(&config, store, &options, out) {
        Ok(n) => n,
        Err(e) => {
            writeln!(out, "faces: skipped — {e:#}")?;
            writeln!(
                out,
                "       (the card, PIN, door and plate parts run anyway; add faces with --faces DIR, one sub-folder of photos per person, and --models DIR holding the model files)"
            )?;
            config.cameras.clear();
            FacesEnrolled::default()
        }
    };
    if config
        .cameras
        .iter()
        .any(|c| !c.source.starts_with("/dev/") && !Path::new(&c.source).exists())
    {
        writeln!(out, "camera: no video file found; pass --video FILE (or a /dev/videoN webcam) to see faces at the gate")?;
        config.cameras.clear();
    }

    let daemon_options = DaemonOptions {
        // A demo machine often has no NTP; say so, but show the date rules working.
        assume_clock_synced: Some(true),
    };
    if !crate::clock::is_synchronised() {
        writeln!(
            out,
            "note: this machine's clock is not synchronised; the demo treats it as synchronised so lease dates apply.\n      A real gateway still enforces every expiry then; it waives only start dates, and flags those events."
        )?;
    }
    // The camera starts after the scripted credentials, so a face at the door
    // does not release the lock in the middle of the forced-door step.
    let mut camera_config = config.clone();
    config.cameras.clear();
    let mut daemon = Daemon::start_with(&config, daemon_options).await?;
    let mut started = start_services(&mut daemon, &config).await?;
    if let Some(socket) = &started.control_socket {
        writeln!(
            out,
            "control socket: {} (try `{} gate status`)",
            socket.display(),
            cli_prefix(&data_dir)
        )?;
    }
    if let Some(addr) = &started.console {
        writeln!(
            out,
            "web console: http://{addr}/ (open the one-time setup link from the log to create the first account)"
        )?;
    }
    let handle = daemon.handle();
    let mut events = handle.events();
    let (lines_tx, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<EventRecord>();
    let printer = tokio::spawn(async move {
        while let Ok(e) = events.recv().await {
            if lines_tx.send(e).is_err() {
                break;
            }
        }
    });

    writeln!(out, "\n— cards, PINs, doors and plates —")?;
    let mut summary = Summary {
        data_dir: data_dir.clone(),
        residents: residents.count + faces_enrolled.people,
        faces_enrolled: faces_enrolled.photos,
        ..Summary::default()
    };
    let script = scripted_run(&handle, &residents).await;
    drain_events(&mut lines_rx, out, &mut summary).await?;
    script?;

    if !camera_config.cameras.is_empty() {
        // The demo's video plays once.
        for camera in &mut camera_config.cameras {
            camera.loop_file = false;
        }
        start_cameras(&mut daemon, &camera_config, &mut started).await;
        match &started.face_unavailable {
            Some(why) => writeln!(out, "\nfaces: out of service — {why}")?,
            None => {
                writeln!(
                    out,
                    "\n— faces at the east entrance: camera {} on {} (until it ends, at most {} s) —",
                    camera_config.cameras[0].id,
                    camera_config.cameras[0].source,
                    options.camera_seconds
                )?;
                let deadline =
                    tokio::time::Instant::now() + Duration::from_secs(options.camera_seconds);
                loop {
                    let ended = drain_events(&mut lines_rx, out, &mut summary).await?;
                    if ended || tokio::time::Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    if options.stay {
        stay(&data_dir, &started, &mut lines_rx, out, &mut summary).await?;
    }

    // Let the last events reach the printer (and the broker, if there is one).
    tokio::time::sleep(Duration::from_millis(200)).await;
    if started.broker.is_some() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::time::Instant::now() < deadline {
            let depth = handle.read(crate::store::outbox::depth).await??;
            if depth.events == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    drain_events(&mut lines_rx, out, &mut summary).await?;
    printer.abort();

    daemon.shutdown(Duration::from_secs(4)).await?;
    // The daemon has stopped: its files are read, not written.
    let conn = crate::store::readers::open_read_only(&config.database_path())?;
    summary.outbox_depth = i64::try_from(crate::store::outbox::depth(&conn)?.events)?;
    let (_, breaks) = crate::store::events::verify_chain(&conn)?;
    summary.chain_ok = breaks.is_empty();
    write_summary(out, &summary, &config)?;
    Ok(summary)
}

/// Keeps the gateway up after the script: says what to try, then prints
/// every event as it is stored until Ctrl-C (or SIGTERM).
async fn stay(
    data_dir: &Path,
    started: &crate::app::services::Started,
    lines: &mut tokio::sync::mpsc::UnboundedReceiver<EventRecord>,
    out: &mut (dyn std::io::Write + Send),
    summary: &mut Summary,
) -> Result<()> {
    let gh = cli_prefix(data_dir);
    writeln!(
        out,
        "\n— the gateway keeps running until Ctrl-C; try in another terminal —"
    )?;
    for example in [
        "simulate wiegand --gate east --card 10:12345      # the owner's card: granted",
        "simulate wiegand --gate east --card 10:22222      # the tenant whose lease ended: denied",
        "simulate plate --gate car-in 川A12345             # the owner's car",
        "simulate door --gate east open                    # a forced door: alarm",
        "gate status",
    ] {
        writeln!(out, "  {gh} {example}")?;
    }
    if let Some(addr) = &started.console {
        writeln!(
            out,
            "  web console: http://{addr}/ (the setup link is in the log above)"
        )?;
    }
    out.flush()?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch for SIGTERM")?;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            _ = &mut interrupted => break,
            _ = terminate.recv() => break,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                drain_events(lines, out, summary).await?;
                out.flush()?;
            }
        }
    }
    writeln!(out, "\nstopping…")?;
    Ok(())
}

#[derive(Clone, Copy, Default)]
struct FacesEnrolled {
    people: usize,
    photos: usize,
}

/// Installs the face models (from the mirror when given) and enrols one
/// resident per sub-folder of `options.faces`, up to three photos each.
fn enrol_faces(
    config: &Config,
    store: Store,
    options: &DemoOptions,
    out: &mut (dyn std::io::Write + Send),
) -> Result<FacesEnrolled> {
    let manifest = crate::models::Manifest::for_config(config)?;
    for name in &config.face_models() {
        let spec = manifest.get(name)?;
        crate::models::fetch(spec, &config.models_dir(), options.models_mirror.as_deref())?;
    }
    let Some(root) = &options.faces else {
        anyhow::bail!("no folder of face photos (../shared/faces/identities not found)");
    };
    let mut folders: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("cannot read {}", root.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    let mut matcher = crate::face::enrol::Matcher::with_store(config, store)?;
    let mut enrolled = FacesEnrolled::default();
    for (i, folder) in folders.iter().enumerate() {
        let name = folder
            .file_name()
            .map(|n| n.to_string_lossy().replace('_', " "))
            .unwrap_or_default();
        let mut photos: Vec<PathBuf> = std::fs::read_dir(folder)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        photos.sort();
        let mut p = NewPerson::new(&name, ResidentRole::Owner);
        p.address = Some(
            format!("8-1-{}01", i + 1)
                .parse()
                .map_err(anyhow::Error::msg)?,
        );
        let id = people::add(&matcher.store.lock(), ACTOR, &p)?;
        let mut ok = 0;
        for photo in photos.iter().take(3) {
            // One photo at a time: a refused photo (a half-hidden face) must not cost the others.
            let one = vec![crate::face::enrol::Photo::from_path(photo)];
            match crate::face::enrol::enrol(&mut matcher, id, one, ACTOR) {
                Ok(_) => ok += 1,
                Err(e) => writeln!(out, "faces: {e:#}")?,
            }
        }
        writeln!(out, "faces: {id} {name}: {ok} photo(s) enrolled")?;
        enrolled.people += 1;
        enrolled.photos += ok;
    }
    Ok(enrolled)
}

struct DemoResidents {
    count: usize,
    visitor_pin: visitors::Pin,
}

fn enrol_register(
    store: &Store,
    site: &str,
    out: &mut (dyn std::io::Write + Send),
) -> Result<DemoResidents> {
    let today = Utc::now().date_naive();
    let add = |name: &str,
               role: ResidentRole,
               address: &str,
               until: Option<NaiveDate>|
     -> Result<ResidentId> {
        let mut p = NewPerson::new(name, role);
        p.address = Some(address.parse().map_err(anyhow::Error::msg)?);
        p.valid_until = until;
        people::add(store, ACTOR, &p)
    };
    let owner = add("张伟", ResidentRole::Owner, "3-2-501", None)?;
    cards::assign(store, ACTOR, owner, &card(OWNER_CARD)?, None)?;
    vehicles::add(
        store,
        ACTOR,
        owner,
        &plate(OWNER_PLATE)?,
        &Default::default(),
    )?;
    let tenant = add(
        "李娜",
        ResidentRole::Tenant,
        "5-1-302",
        Some(today - chrono::Duration::days(1)),
    )?;
    cards::assign(store, ACTOR, tenant, &card(TENANT_CARD)?, None)?;
    let suspended = add(
        "王芳",
        ResidentRole::Tenant,
        "5-1-303",
        Some(today + chrono::Duration::days(180)),
    )?;
    cards::assign(store, ACTOR, suspended, &card(SUSPENDED_CARD)?, None)?;
    people::set_status(store, ACTOR, suspended, PersonStatus::Suspended)?;
    let pass = visitors::issue(
        store,
        ACTOR,
        &visitors::NewPass {
            host: owner,
            visitor_name: "赵六".into(),
            phone: None,
            plate: None,
            gates: Some(vec![gate("east")?]),
            valid_from: Utc::now() - chrono::Duration::minutes(1),
            valid_until: Utc::now() + chrono::Duration::hours(4),
            uses: Some(1),
        },
        site,
    )?;
    writeln!(
        out,
        "register: 张伟 (owner, card {OWNER_CARD}, car {OWNER_PLATE}), 李娜 (tenant, lease ended yesterday, card {TENANT_CARD}),\n          王芳 (tenant, suspended, card {SUSPENDED_CARD}), visitor 赵六 (one-use PIN {} for the east gate)",
        pass.pin.as_str()
    )?;
    Ok(DemoResidents {
        count: 3,
        visitor_pin: pass.pin,
    })
}

fn card(s: &str) -> Result<CardNumber> {
    s.parse().map_err(anyhow::Error::msg)
}

fn plate(s: &str) -> Result<Plate> {
    s.parse().map_err(anyhow::Error::msg)
}

fn gate(s: &str) -> Result<GateId> {
    s.parse().map_err(anyhow::Error::msg)
}

fn card_bits(s: &str) -> Result<Vec<bool>> {
    crate::wiegand::format::encode_card(&card(s)?, None).map_err(anyhow::Error::msg)
}

async fn step(
    label: &str,
    f: impl std::future::Future<Output = Result<crate::daemon::simulate::SimOutcome>>,
) -> Result<()> {
    tracing::debug!(step = label, "demo step");
    f.await
        .with_context(|| format!("demo step {label:?} failed"))?;
    Ok(())
}

async fn scripted_run(handle: &GateHandle, residents: &DemoResidents) -> Result<()> {
    let east = gate("east")?;
    let car_in = gate("car-in")?;
    step(
        "owner's card",
        handle.simulate_wiegand(&east, &card_bits(OWNER_CARD)?),
    )
    .await?;
    step("door opens", handle.simulate_door(&east, true)).await?;
    step("door closes", handle.simulate_door(&east, false)).await?;
    step(
        "tenant after lease end",
        handle.simulate_wiegand(&east, &card_bits(TENANT_CARD)?),
    )
    .await?;
    step(
        "suspended tenant",
        handle.simulate_wiegand(&east, &card_bits(SUSPENDED_CARD)?),
    )
    .await?;
    step(
        "unknown card",
        handle.simulate_wiegand(&east, &card_bits(UNKNOWN_CARD)?),
    )
    .await?;
    step(
        "visitor PIN",
        handle.simulate_pin(&east, residents.visitor_pin.as_str(), false),
    )
    .await?;
    step(
        "visitor PIN again",
        handle.simulate_pin(&east, residents.visitor_pin.as_str(), false),
    )
    .await?;
    // Let the visitor's release time out before the forced door.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    step("door forced open", handle.simulate_door(&east, true)).await?;
    step("door closed again", handle.simulate_door(&east, false)).await?;
    step("exit button", handle.simulate_button(&east)).await?;
    step(
        "owner's car",
        handle.simulate_plate(&car_in, plate(OWNER_PLATE)?),
    )
    .await?;
    step(
        "unknown car",
        handle.simulate_plate(&car_in, plate("川B99999")?),
    )
    .await?;
    Ok(())
}

async fn drain_events(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<EventRecord>,
    out: &mut (dyn std::io::Write + Send),
    summary: &mut Summary,
) -> Result<bool> {
    let mut camera_ended = false;
    while let Ok(e) = rx.try_recv() {
        camera_ended |= e.parsed_reason() == Ok(Some(EventReason::CameraEnded));
        match (e.kind, e.result) {
            (EventKind::Access, Some(AccessResult::Granted)) => summary.granted += 1,
            (EventKind::Access, Some(AccessResult::Denied)) => summary.denied += 1,
            (EventKind::Alarm, _) => summary.alarms += 1,
            _ => {}
        }
        if e.credential_kind.as_deref() == Some("face")
            || e.parsed_reason() == Ok(Some(EventReason::UnknownFace))
        {
            summary.face_events += 1;
        }
        writeln!(out, "{}", describe(&e))?;
    }
    Ok(camera_ended)
}

/// One line per event, the way a guard would read it.
pub fn describe(e: &EventRecord) -> String {
    let time = e.at.get(11..19).unwrap_or(&e.at);
    let what = match (e.kind, e.result) {
        (EventKind::Access, Some(AccessResult::Granted)) => "GRANTED",
        (EventKind::Access, Some(AccessResult::Denied)) => "DENIED ",
        (EventKind::Alarm, _) => "ALARM  ",
        _ => "event  ",
    };
    let mut line = format!(
        "  #{:<3} {time} {what} {:<8}",
        e.seq,
        e.gate.as_deref().unwrap_or("-")
    );
    if let Some(kind) = &e.credential_kind {
        line.push_str(&format!(" {kind}"));
    }
    if let Some(c) = &e.credential_masked {
        line.push_str(&format!(" {c}"));
    }
    if let Some(n) = &e.subject_name {
        line.push_str(&format!(" {n}"));
    }
    if let Some(s) = e.score {
        line.push_str(&format!(" score {s:.2}"));
    }
    if let Some(r) = &e.reason {
        line.push_str(&format!(" ({r})"));
    }
    line
}

fn write_summary(
    out: &mut (dyn std::io::Write + Send),
    s: &Summary,
    config: &Config,
) -> Result<()> {
    writeln!(out, "\n— summary —")?;
    writeln!(
        out,
        "residents enrolled: {} ({} face photo(s))",
        s.residents, s.faces_enrolled
    )?;
    writeln!(
        out,
        "decisions: {} granted, {} denied; alarms: {}; face events: {}",
        s.granted, s.denied, s.alarms, s.face_events
    )?;
    writeln!(
        out,
        "event log hash chain: {}",
        if s.chain_ok { "intact" } else { "BROKEN" }
    )?;
    match &config.uplink.broker {
        Some(b) => writeln!(out, "uplink: events published to {b}; {} still queued", s.outbox_depth)?,
        None => writeln!(
            out,
            "uplink: no broker configured, so {} event(s) wait in the outbox (run `gatehouse demo --broker mqtt://HOST:1883` to publish them)",
            s.outbox_depth
        )?,
    }
    writeln!(out, "look around: {} log", cli_prefix(&s.data_dir))?;
    Ok(())
}

/// `../shared/faces/identities` beside the checkout or the working directory, if present.
pub fn default_faces_dir() -> Option<PathBuf> {
    ["../shared/faces/identities", "shared/faces/identities"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
}

/// `../shared/models` (the test models' mirror), if present.
pub fn default_models_mirror() -> Option<PathBuf> {
    ["../shared/models", "shared/models"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_dir())
}

/// `../shared/faces/video/short_hamilton_clip.mp4`, if present.
pub fn default_video() -> Option<String> {
    let p = Path::new("../shared/faces/video/short_hamilton_clip.mp4");
    p.exists().then(|| p.display().to_string())
}

/// How the demo's suggested commands name its gateway: its configuration
/// (written beside the data) and its data directory.
fn cli_prefix(data_dir: &Path) -> String {
    format!(
        "gatehouse --config {} --data-dir {}",
        data_dir.join("demo.toml").display(),
        data_dir.display()
    )
}
