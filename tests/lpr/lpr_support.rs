//! Support for the LPR endpoint tests and benchmark: a real plate sink over a
//! SQLite register (rows inserted with SQL per 001_registers.sql, events
//! appended to the real hash-chained log), the real axum server on a free
//! loopback port, and HTTP helpers.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use gatehouse::config::Config;
use gatehouse::domain::{Plate, ResidentId};
use gatehouse::event::EventReason;
use gatehouse::lpr::{LprServer, PlateOutcome, PlateReading, PlateSink, Resolution, Verdict};
use gatehouse::store::events::{self, AccessResult, EventKind, EventRecord, NewEvent};
use gatehouse::store::Store;
use rusqlite::{params, OptionalExtension};

pub const TOKEN: &str = "test-lpr-token-0123456789";

/// A config with a pedestrian gate and two vehicle gates; `car-in` tolerates
/// OCR confusions, `car-out` does not. Hikvision channel 1 is `car-in`,
/// channel 2 `car-out` (from 127.0.0.1).
pub fn config(data_dir: &Path, allow: &str) -> Config {
    let text = format!(
        r#"
[site]
id = "qingbo"
gateway_id = "gw-test"
name = "清波小区"

[store]
data_dir = "{data_dir}"

[[gates]]
id = "east"
name = "东门"
kind = "pedestrian"
direction = "in"
backend = "simulated"
relay_pin = 17

[[gates]]
id = "car-in"
name = "车辆入口"
kind = "vehicle"
direction = "in"
backend = "simulated"
relay_pin = 24
loop_pin = 25

[[gates]]
id = "car-out"
name = "车辆出口"
kind = "vehicle"
direction = "out"
backend = "simulated"
relay_pin = 26
loop_pin = 16

[lpr]
listen = "127.0.0.1:0"
allow = [{allow}]
token = "{TOKEN}"
max_body_kb = 1024
ocr_tolerance = ["car-in"]

[[lpr.cameras]]
address = "127.0.0.1"
channel = 1
gate = "car-in"

[[lpr.cameras]]
address = "127.0.0.1"
channel = 2
gate = "car-out"
"#,
        data_dir = data_dir.display()
    );
    Config::parse(&text, "lpr-test.toml").expect("test config is valid")
}

/// Looks plates up in a real register and records a real event per reading,
/// the way the daemon's gate handle will: registered and active → open,
/// anything else → refused with the reason in the event.
pub struct RegisterSink {
    store: Mutex<Store>,
    calls: Mutex<Vec<PlateReading>>,
}

impl RegisterSink {
    pub fn open(data_dir: &Path) -> Arc<RegisterSink> {
        let store = Store::open(&data_dir.join("gatehouse.db"), data_dir).expect("open store");
        Arc::new(RegisterSink {
            store: Mutex::new(store),
            calls: Mutex::new(Vec::new()),
        })
    }

    /// Inserts a person and their vehicle; returns the person's id.
    pub fn register(&self, name: &str, plate: &str, status: &str) -> ResidentId {
        let store = self.store.lock().unwrap();
        let now = "2026-11-27T02:00:00.000Z";
        store
            .conn()
            .execute(
                "INSERT INTO person (name, role, status, created_at, created_by, updated_at, updated_by)
                 VALUES (?1, 'owner', ?2, ?3, 'test', ?3, 'test')",
                params![name, status, now],
            )
            .expect("insert person");
        let person = store.conn().last_insert_rowid();
        store
            .conn()
            .execute(
                "INSERT INTO vehicle (plate, kind, colour, person_id, created_at, created_by)
                 VALUES (?1, 'car', 'white', ?2, ?3, 'test')",
                params![plate, person, now],
            )
            .expect("insert vehicle");
        ResidentId(person)
    }

    /// Registers `count` people with one vehicle each (plates 川A00000…), in one
    /// transaction, to give lookups a register of realistic size.
    pub fn register_many(&self, count: u32) {
        let mut store = self.store.lock().unwrap();
        let tx = store.conn_mut().transaction().expect("transaction");
        let now = "2026-11-27T02:00:00.000Z";
        for i in 0..count {
            tx.execute(
                "INSERT INTO person (name, role, status, created_at, created_by, updated_at, updated_by)
                 VALUES (?1, 'owner', 'active', ?2, 'test', ?2, 'test')",
                params![format!("居民{i}"), now],
            )
            .expect("insert person");
            let person = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO vehicle (plate, person_id, created_at, created_by) VALUES (?1, ?2, ?3, 'test')",
                params![format!("川A{:05}", i), person, now],
            )
            .expect("insert vehicle");
        }
        tx.commit().expect("commit");
    }

    /// Every plate in the register, as the daemon's in-memory snapshot would hold them.
    pub fn plates(&self) -> std::collections::HashMap<Plate, i64> {
        let store = self.store.lock().unwrap();
        let mut stmt = store
            .conn()
            .prepare("SELECT plate, person_id FROM vehicle")
            .expect("prepare");
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .expect("query");
        rows.map(|r| {
            let (plate, person) = r.expect("row");
            (plate.parse().expect("stored plate is valid"), person)
        })
        .collect()
    }

    /// Every reading the endpoint handed over, in order.
    pub fn calls(&self) -> Vec<PlateReading> {
        self.calls.lock().unwrap().clone()
    }

    pub fn events(&self) -> Vec<EventRecord> {
        let store = self.store.lock().unwrap();
        events::query(store.conn(), &events::EventFilter::default()).expect("query events")
    }
}

/// (person id, status) of the vehicle with this plate.
fn vehicle_owner(store: &Store, plate: &Plate) -> anyhow::Result<Option<(i64, String)>> {
    store
        .conn()
        .query_row(
            "SELECT p.id, p.status FROM vehicle v JOIN person p ON p.id = v.person_id WHERE v.plate = ?1",
            params![plate.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .context("vehicle lookup")
}

impl PlateSink for RegisterSink {
    async fn present(&self, reading: PlateReading) -> anyhow::Result<PlateOutcome> {
        self.calls.lock().unwrap().push(reading.clone());
        let store = self.store.lock().unwrap();
        let resolution = reading.resolve(|p| matches!(vehicle_owner(&store, p), Ok(Some(_))));
        let (verdict, plate, reason, subject) = match resolution {
            Resolution::Present(candidate) => match vehicle_owner(&store, &candidate.plate)? {
                Some((id, status)) if status == "active" => (
                    Verdict::Open,
                    candidate.plate.clone(),
                    EventReason::RegisteredVehicle,
                    Some(ResidentId(id)),
                ),
                Some((id, _)) => (
                    Verdict::Refused,
                    candidate.plate.clone(),
                    EventReason::Suspended,
                    Some(ResidentId(id)),
                ),
                None => (
                    Verdict::Refused,
                    candidate.plate.clone(),
                    EventReason::UnknownCredential,
                    None,
                ),
            },
            Resolution::Ambiguous(_) => (
                Verdict::Refused,
                reading.read.primary().plate.clone(),
                EventReason::AmbiguousPlate,
                None,
            ),
        };
        let event = events::append(
            store.conn(),
            &NewEvent {
                at: reading.received_at,
                clock_synced: true,
                kind: Some(EventKind::Access),
                gate: Some(reading.gate.clone()),
                direction: Some("in".into()),
                credential_kind: Some("plate".into()),
                credential_masked: Some(plate.masked()),
                subject_id: subject,
                subject_name: None,
                result: Some(match verdict {
                    Verdict::Open => AccessResult::Granted,
                    Verdict::Refused => AccessResult::Denied,
                }),
                reason: Some(reason),
                score: reading.confidence,
                snapshot: reading.snapshot.clone(),
                detail: Some(reading.event_detail(&plate)),
            },
        )?;
        Ok(PlateOutcome {
            verdict,
            plate,
            reason,
            subject,
            event_seq: Some(event.seq),
        })
    }
}

/// The real endpoint on a free loopback port, in its own runtime; stopped on drop.
pub struct Endpoint {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Endpoint {
    pub fn start<S: PlateSink>(config: &Config, sink: S) -> Endpoint {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = config.clone();
        let thread = std::thread::spawn(move || -> anyhow::Result<()> {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let server = LprServer::bind(&config, sink).await?;
                addr_tx.send(server.local_addr()?)?;
                server
                    .serve(async move {
                        let _ = stopped.await;
                    })
                    .await
            })
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("LPR endpoint did not start");
        Endpoint {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An HTTP answer: status and the JSON body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub json: serde_json::Value,
}

/// POSTs over real HTTP; `token` goes in X-Gatehouse-Token when given.
pub fn post(url: &str, content_type: &str, token: Option<&str>, body: &[u8]) -> Reply {
    let mut request = ureq::post(url)
        .timeout(Duration::from_secs(10))
        .set("Content-Type", content_type);
    if let Some(token) = token {
        request = request.set("X-Gatehouse-Token", token);
    }
    let response = match request.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {url}: {e}"),
    };
    let status = response.status();
    let text = response.into_string().expect("read reply");
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Reply { status, json }
}

pub fn post_json(endpoint: &Endpoint, body: &str) -> Reply {
    post(
        &endpoint.url("/lpr/json"),
        "application/json",
        Some(TOKEN),
        body.as_bytes(),
    )
}

/// A POST of a body the endpoint refuses as too large (413) once it has read
/// up to its limit. The server may answer and close before the rest of the
/// body is sent, so a write that breaks off is expected (whether it does
/// depends only on timing) and the answer is read either way.
pub fn post_oversized(endpoint: &Endpoint, path: &str, body: &[u8]) -> u16 {
    let mut stream = std::net::TcpStream::connect(endpoint.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nX-Gatehouse-Token: {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        endpoint.addr,
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send the headers");
    let _ = stream.write_all(body);
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n @ 1..) = stream.read(&mut chunk) {
        reply.extend_from_slice(&chunk[..n]);
    }
    let reply = String::from_utf8_lossy(&reply);
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {reply:?}"))
}

/// A POST from another loopback address (Linux routes all of 127/8 to lo),
/// to meet the allow-list from outside it. Returns the status code.
pub fn post_from(local: &str, endpoint: &Endpoint, path: &str, body: &str) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let raw = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(format!("{local}:0").parse().expect("local address"))?;
        let stream = socket.connect(endpoint.addr).await?;
        stream.into_std()
    });
    let mut stream = raw.expect("connect from another loopback address");
    stream.set_nonblocking(false).expect("blocking");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nX-Gatehouse-Token: {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        endpoint.addr,
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).expect("read");
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {reply:?}"))
}

/// The pictures under `<data_dir>/snapshots/`.
pub fn snapshot_files(data_dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(data_dir.join("snapshots")) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// A real JPEG photograph from ../shared.
pub fn jpeg(shared: &Path, name: &str) -> Vec<u8> {
    std::fs::read(shared.join("faces/group").join(name)).expect("shared photo")
}
