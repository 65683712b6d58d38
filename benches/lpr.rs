//! Plate event received → handed to the gate, in process (goal: < 5 ms).
//!
//! The request goes through the real router (allow-list and token check,
//! body parsing, plate validation with OCR tolerance, gate mapping) into a
//! sink shaped like the daemon's gate handle: a channel to a gate task that
//! looks the plate up in an in-memory register loaded from a real SQLite
//! register of 10,000 vehicles, and answers. A second figure adds what the
//! test sink does on top (SQLite lookup and a durable, fsynced event row).
//!
//! Run: `cargo bench --bench lpr`

#[path = "../tests/lpr/lpr_support.rs"]
pub mod lpr_support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use gatehouse::domain::Plate;
use gatehouse::lpr::{
    hikvision, read_plate, router, LprServerSettings, PlateOutcome, PlateReading, PlateSink,
    Resolution, Verdict,
};
use tokio::sync::{mpsc, oneshot};
use tower::ServiceExt;

use lpr_support::{config, RegisterSink, TOKEN};

type Job = (PlateReading, oneshot::Sender<PlateOutcome>);

/// The daemon's shape: readings go over a channel to the gate's task.
struct GateTaskSink {
    jobs: mpsc::Sender<Job>,
}

impl PlateSink for GateTaskSink {
    async fn present(&self, reading: PlateReading) -> anyhow::Result<PlateOutcome> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send((reading, reply))
            .await
            .map_err(|_| anyhow::anyhow!("gate task stopped"))?;
        Ok(answer.await?)
    }
}

fn gate_task(register: HashMap<Plate, i64>) -> mpsc::Sender<Job> {
    let (jobs, mut inbox) = mpsc::channel::<Job>(64);
    tokio::spawn(async move {
        while let Some((reading, reply)) = inbox.recv().await {
            let outcome = match reading.resolve(|p| register.contains_key(p)) {
                Resolution::Present(c) => PlateOutcome {
                    verdict: if register.contains_key(&c.plate) {
                        Verdict::Open
                    } else {
                        Verdict::Refused
                    },
                    plate: c.plate.clone(),
                    reason: gatehouse::event::EventReason::RegisteredVehicle,
                    subject: None,
                    event_seq: None,
                },
                Resolution::Ambiguous(_) => PlateOutcome {
                    verdict: Verdict::Refused,
                    plate: reading.read.primary().plate.clone(),
                    reason: gatehouse::event::EventReason::AmbiguousPlate,
                    subject: None,
                    event_seq: None,
                },
            };
            let _ = reply.send(outcome);
        }
    });
    jobs
}

fn request(path: &str, content_type: &str, body: Vec<u8>) -> Request<Body> {
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut request = Request::post(path)
        .header("content-type", content_type)
        .header("x-gatehouse-token", TOKEN)
        .body(Body::from(body))
        .unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}

fn bench(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("gatehouse-bench-lpr-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = config(&dir, "\"127.0.0.1\"");
    let register = RegisterSink::open(&dir);
    register.register_many(10_000);
    let settings = LprServerSettings::from_config(&config).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let jobs = runtime.block_on(async { gate_task(register.plates()) });
    let app = router(settings.clone(), GateTaskSink { jobs });

    let json = r#"{"gate": "car-in", "plate": "川A01234", "confidence": 0.97, "time": "2026-11-27T10:00:00+08:00"}"#;
    let xml =
        include_str!("../tests/fixtures/lpr/hikvision_anpr.xml").replace("川A12345", "川A01234");

    let misread = json.replace("川A01234", "川AD1234");
    // Sanity: each timed request really opens (a bench of an error path would be meaningless).
    for (path, ct, body) in [
        ("/lpr/json", "application/json", json.as_bytes().to_vec()),
        ("/lpr/json", "application/json", misread.as_bytes().to_vec()),
        ("/lpr/hikvision", "application/xml", xml.as_bytes().to_vec()),
    ] {
        let reply = runtime.block_on(async {
            let response = app.clone().oneshot(request(path, ct, body)).await.unwrap();
            axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap()
        });
        let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
        assert_eq!(reply["result"], "open", "{path}: {reply}");
    }

    let mut group = c.benchmark_group("lpr");
    group.bench_function("json_event_to_gate_task", |b| {
        b.iter(|| {
            let response = runtime
                .block_on(app.clone().oneshot(request(
                    "/lpr/json",
                    "application/json",
                    json.into(),
                )))
                .unwrap();
            assert_eq!(response.status(), 200);
        })
    });
    group.bench_function("hikvision_xml_event_to_gate_task", |b| {
        b.iter(|| {
            let response = runtime
                .block_on(app.clone().oneshot(request(
                    "/lpr/hikvision",
                    "application/xml",
                    xml.clone().into_bytes(),
                )))
                .unwrap();
            assert_eq!(response.status(), 200);
        })
    });
    // Tolerance on: 川A01234 read as 川AD1234 (unknown); the swap D→0 finds the registered vehicle.
    group.bench_function("json_event_ocr_swap_to_gate_task", |b| {
        b.iter(|| {
            let response = runtime
                .block_on(app.clone().oneshot(request(
                    "/lpr/json",
                    "application/json",
                    misread.clone().into(),
                )))
                .unwrap();
            assert_eq!(response.status(), 200);
        })
    });
    // With a 129 KB scene picture in a multipart push: includes writing it under snapshots/.
    let scene = std::fs::read(lpr_support_shared().join("faces/group/group_six.jpg")).unwrap();
    let (ct, multipart) = multipart(&xml, &scene);
    let snapshots = dir.join("snapshots");
    group.bench_function("hikvision_multipart_129kb_snapshot_to_gate_task", |b| {
        b.iter_batched(
            || {
                // Untimed: remove the last picture so the disk does not fill up.
                for entry in std::fs::read_dir(&snapshots)
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    let _ = std::fs::remove_file(entry.path());
                }
                request("/lpr/hikvision", &ct, multipart.clone())
            },
            |req| {
                let response = runtime.block_on(app.clone().oneshot(req)).unwrap();
                assert_eq!(response.status(), 200);
            },
            BatchSize::PerIteration,
        )
    });
    // The test sink: SQLite lookup in 10,000 vehicles and an fsynced event row per reading.
    let durable = router(settings, Arc::clone(&register));
    group.bench_function("json_event_sqlite_lookup_and_durable_event", |b| {
        b.iter(|| {
            let response = runtime
                .block_on(durable.clone().oneshot(request(
                    "/lpr/json",
                    "application/json",
                    json.into(),
                )))
                .unwrap();
            assert_eq!(response.status(), 200);
        })
    });
    group.bench_function("pure_read_plate_with_tolerance", |b| {
        b.iter(|| read_plate(std::hint::black_box("川A80125"), true).unwrap())
    });
    group.bench_function("pure_parse_hikvision_xml", |b| {
        b.iter(|| {
            hikvision::parse(
                Some("application/xml"),
                std::hint::black_box(xml.as_bytes()),
                480,
            )
            .unwrap()
        })
    });
    group.finish();
    drop(runtime);
    let _ = std::fs::remove_dir_all(&dir);
}

fn lpr_support_shared() -> std::path::PathBuf {
    std::env::var_os("GATEHOUSE_SHARED")
        .map(Into::into)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"))
}

fn multipart(xml: &str, scene: &[u8]) -> (String, Vec<u8>) {
    let boundary = "MIME_boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"anpr.xml\"; filename=\"anpr.xml\"\r\nContent-Type: application/xml\r\n\r\n{xml}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"detectionPicture.jpg\"; filename=\"detectionPicture.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(scene);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

criterion_group!(benches, bench);
criterion_main!(benches);
