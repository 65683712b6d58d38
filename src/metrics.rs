//! Prometheus text metrics on a local port: decisions by result, face
//! pipeline latency, camera frames, outbox depth, uplink state, reader faults.
//!
//! Series the daemon exports (names are the contract with dashboards):
//! - `gatehouse_build_info{version}`: always 1; the running version.
//! - `gatehouse_decisions_total{gate,result}`: every access decision.
//! - `gatehouse_reader_rejections_total{gate,kind}`: Wiegand frames refused
//!   (`parity`, `length`, `noise`); `gatehouse_reader_faults_total{gate}`: a
//!   reader that kept sending bad frames (the `reader_fault` event).
//! - `gatehouse_lpr_events_total{endpoint,result}`: plate pushes by outcome
//!   (endpoint `json`, `hikvision`, or `frigate` for Frigate's MQTT readings).
//! - `gatehouse_frigate_connected`: 1 while subscribed on Frigate's broker;
//!   `gatehouse_frigate_available`: 1 while Frigate says it is `online`.
//! - `gatehouse_face_frame_seconds{camera}`: one frame through the face
//!   pipeline; `gatehouse_camera_frames_total{camera}`: frames processed
//!   (`rate()` of it is the camera's fps).
//! - `gatehouse_event_write_seconds`: storing one event (and its outbox row).
//! - `gatehouse_outbox_events` / `gatehouse_outbox_bytes`: what waits for the
//!   station, sampled every few seconds; `gatehouse_uplink_connected`: 1 while
//!   the broker session is up.
//!
//! [`declare_known`] creates every series whose labels the configuration
//! fixes at zero, so a dashboard's `rate()` works before the first event.
//! A tiny registry of named series behind one mutex: updates happen a few
//! times per second at most, so simplicity beats lock-free cleverness. The
//! endpoint is an axum route: exactly `/metrics`, `GET` and `HEAD`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex};

use anyhow::{Context, Result};
use axum::http::{header, StatusCode};
use axum::routing::get;
use axum::Router;

use crate::config::Config;

/// Latency buckets in seconds: event writes take about a millisecond, the
/// face pipeline 5–200 ms.
const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// The exposition format's content type (text format 0.0.4).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub const DECISIONS: (&str, &str) = (
    "gatehouse_decisions_total",
    "Access decisions, by gate and result.",
);
pub const READER_REJECTIONS: (&str, &str) = (
    "gatehouse_reader_rejections_total",
    "Wiegand frames refused by the decoder, by gate and kind.",
);
pub const READER_FAULTS: (&str, &str) = (
    "gatehouse_reader_faults_total",
    "Readers that kept sending bad frames (reader_fault events), by gate.",
);
pub const LPR_EVENTS: (&str, &str) = (
    "gatehouse_lpr_events_total",
    "Plate events from LPR cameras, by endpoint and result",
);
pub const FACE_FRAME: (&str, &str) = (
    "gatehouse_face_frame_seconds",
    "Time for one camera frame through detection, quality, embedding and matching.",
);
pub const CAMERA_FRAMES: (&str, &str) = (
    "gatehouse_camera_frames_total",
    "Frames the face pipeline processed, by camera (rate() is the camera's fps).",
);
pub const EVENT_WRITE: (&str, &str) = (
    "gatehouse_event_write_seconds",
    "Time to store a batch of events with their outbox rows (one SQLite transaction, one sync).",
);
pub const OUTBOX_EVENTS: (&str, &str) = (
    "gatehouse_outbox_events",
    "Events stored but not yet acknowledged by the station's broker.",
);
pub const OUTBOX_BYTES: (&str, &str) = (
    "gatehouse_outbox_bytes",
    "Size of the events waiting in the outbox.",
);
pub const UPLINK_CONNECTED: (&str, &str) = (
    "gatehouse_uplink_connected",
    "1 while the MQTT session with the station's broker is up, else 0.",
);
pub const FRIGATE_CONNECTED: (&str, &str) = (
    "gatehouse_frigate_connected",
    "1 while subscribed to Frigate's plate recognitions on its broker, else 0.",
);
pub const FRIGATE_AVAILABLE: (&str, &str) = (
    "gatehouse_frigate_available",
    "1 while Frigate's available topic says online, else 0.",
);
pub const BUILD_INFO: (&str, &str) = (
    "gatehouse_build_info",
    "Always 1; the version label names the running gatehouse.",
);

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(String, String), f64>,
    gauges: BTreeMap<(String, String), f64>,
    histograms: BTreeMap<(String, String), Histogram>,
    help: BTreeMap<String, (&'static str, &'static str)>,
}

#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| Mutex::new(Registry::default()));

fn labels_text(labels: &[(&str, &str)]) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A label value as the text format wants it: `\`, `"` and newline escaped.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// `name{labels}`, or just `name` when there are none.
fn series(name: &str, labels: &str) -> String {
    if labels.is_empty() {
        name.to_string()
    } else {
        format!("{name}{{{labels}}}")
    }
}

fn with_registry(f: impl FnOnce(&mut Registry)) {
    // A poisoned lock only means another thread panicked mid-update; metrics stay usable.
    let mut guard = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut guard);
}

/// Adds 1 to a counter series.
pub fn inc(name: &str, help: &'static str, labels: &[(&str, &str)]) {
    add(name, help, labels, 1.0);
}

fn add(name: &str, help: &'static str, labels: &[(&str, &str)], by: f64) {
    with_registry(|r| {
        r.help.entry(name.to_string()).or_insert(("counter", help));
        *r.counters
            .entry((name.to_string(), labels_text(labels)))
            .or_default() += by;
    });
}

/// Sets a gauge series.
pub fn set(name: &str, help: &'static str, labels: &[(&str, &str)], value: f64) {
    with_registry(|r| {
        r.help.entry(name.to_string()).or_insert(("gauge", help));
        r.gauges
            .insert((name.to_string(), labels_text(labels)), value);
    });
}

/// Records one observation (seconds) in a histogram series.
pub fn observe(name: &str, help: &'static str, labels: &[(&str, &str)], seconds: f64) {
    record(name, help, labels, Some(seconds));
}

fn record(name: &str, help: &'static str, labels: &[(&str, &str)], seconds: Option<f64>) {
    with_registry(|r| {
        r.help
            .entry(name.to_string())
            .or_insert(("histogram", help));
        let h = r
            .histograms
            .entry((name.to_string(), labels_text(labels)))
            .or_default();
        let Some(seconds) = seconds else { return };
        for (i, upper) in BUCKETS.iter().enumerate() {
            if seconds <= *upper {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    });
}

/// Creates, at zero, every series whose label values the configuration fixes
/// (gates, cameras, LPR endpoints), plus build info and the process-wide
/// gauges. A series already counting keeps its value.
pub fn declare_known(config: &Config) {
    let ((name, help), version) = (BUILD_INFO, env!("CARGO_PKG_VERSION"));
    set(name, help, &[("version", version)], 1.0);
    for gate in &config.gates {
        let gate = gate.id.as_str();
        for result in ["granted", "denied"] {
            add(
                DECISIONS.0,
                DECISIONS.1,
                &[("gate", gate), ("result", result)],
                0.0,
            );
        }
        for kind in ["parity", "length", "noise"] {
            let (name, help) = READER_REJECTIONS;
            add(name, help, &[("gate", gate), ("kind", kind)], 0.0);
        }
        add(READER_FAULTS.0, READER_FAULTS.1, &[("gate", gate)], 0.0);
    }
    let mut endpoints = Vec::new();
    if config.lpr.listen.is_some() {
        endpoints.extend(["json", "hikvision"]);
    }
    if config.lpr.frigate.is_some() {
        endpoints.push("frigate");
        with_registry(|r| {
            for (name, help) in [FRIGATE_CONNECTED, FRIGATE_AVAILABLE] {
                r.help.entry(name.to_string()).or_insert(("gauge", help));
                r.gauges
                    .entry((name.to_string(), String::new()))
                    .or_default();
            }
        });
    }
    for endpoint in endpoints {
        for result in ["open", "refused"] {
            let labels = [("endpoint", endpoint), ("result", result)];
            add(LPR_EVENTS.0, LPR_EVENTS.1, &labels, 0.0);
        }
    }
    for camera in &config.cameras {
        let labels = [("camera", camera.id.as_str())];
        add(CAMERA_FRAMES.0, CAMERA_FRAMES.1, &labels, 0.0);
        record(FACE_FRAME.0, FACE_FRAME.1, &labels, None);
    }
    record(EVENT_WRITE.0, EVENT_WRITE.1, &[], None);
    with_registry(|r| {
        for (name, help) in [OUTBOX_EVENTS, OUTBOX_BYTES, UPLINK_CONNECTED] {
            r.help.entry(name.to_string()).or_insert(("gauge", help));
            r.gauges
                .entry((name.to_string(), String::new()))
                .or_default();
        }
    });
}

/// The Prometheus text exposition of every series.
pub fn render() -> String {
    let mut out = String::new();
    with_registry(|r| {
        let mut typed = std::collections::BTreeSet::new();
        let mut header = |out: &mut String, name: &str| {
            if typed.insert(name.to_string()) {
                if let Some((kind, help)) = r.help.get(name) {
                    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
                    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                }
            }
        };
        for ((name, labels), v) in r.counters.iter().chain(r.gauges.iter()) {
            header(&mut out, name);
            let _ = writeln!(out, "{} {v}", series(name, labels));
        }
        for ((name, labels), h) in &r.histograms {
            header(&mut out, name);
            let sep = if labels.is_empty() { "" } else { "," };
            for (i, upper) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{labels}{sep}le=\"{upper}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{} {}", series(&format!("{name}_sum"), labels), h.sum);
            let _ = writeln!(
                out,
                "{} {}",
                series(&format!("{name}_count"), labels),
                h.count
            );
        }
    });
    out
}

/// The endpoint's routes: exactly `/metrics` (GET, and HEAD without the
/// body); anything else is 404, other methods 405.
pub fn router() -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|| async { ([(header::CONTENT_TYPE, CONTENT_TYPE)], render()) }),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found; try /metrics\n") })
}

/// Serves `GET /metrics` on `listen` until the task is dropped.
pub async fn serve(listen: SocketAddr) -> Result<()> {
    bind(listen).await?.serve().await
}

/// Binds the metrics port (so a port in use fails at start-up, and port 0
/// gets its real number); [`Endpoint::serve`] answers requests.
pub async fn bind(listen: SocketAddr) -> Result<Endpoint> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for metrics on {listen}"))?;
    let local = listener
        .local_addr()
        .with_context(|| format!("metrics socket on {listen}"))?;
    tracing::info!(listen = %local, "metrics at http://{local}/metrics");
    Ok(Endpoint { listener, local })
}

pub struct Endpoint {
    listener: tokio::net::TcpListener,
    local: SocketAddr,
}

impl Endpoint {
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Serves `GET /metrics` until the task is dropped.
    pub async fn serve(self) -> Result<()> {
        axum::serve(self.listener, router())
            .await
            .context("metrics endpoint")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn request(method: &str, path: &str) -> (StatusCode, String) {
        let response = router()
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn only_the_exact_metrics_path_answers() {
        inc("gatehouse_test_path_total", "Path test.", &[]);
        let (status, body) = request("GET", "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("gatehouse_test_path_total 1"), "{body}");
        for path in ["/metricsX", "/metrics/x", "/", "/metrics.txt"] {
            assert_eq!(
                request("GET", path).await.0,
                StatusCode::NOT_FOUND,
                "{path}"
            );
        }
        assert_eq!(
            request("POST", "/metrics").await.0,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn head_answers_without_a_body() {
        let (status, body) = request("HEAD", "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, "");
    }

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        inc(
            "gatehouse_test_escape_total",
            "Escapes.",
            &[("gate", "a\\b\"c\nd")],
        );
        let text = render();
        assert!(
            text.contains("gatehouse_test_escape_total{gate=\"a\\\\b\\\"c\\nd\"} 1\n"),
            "{text}"
        );
        assert!(
            text.lines().all(|l| !l.is_empty()),
            "a raw newline split a line: {text}"
        );
    }

    #[test]
    fn frigate_series_exist_at_zero_when_frigate_is_a_plate_source() {
        let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml");
        let text = format!(
            "{}\n[lpr.frigate]\nbroker = \"mqtt://127.0.0.1:1883\"\n\n\
             [[lpr.frigate.cameras]]\nname = \"gate_lpr\"\ngate = \"car-in\"\n",
            std::fs::read_to_string(demo).unwrap()
        );
        declare_known(&Config::parse(&text, demo).unwrap());
        let text = render();
        for series in [
            "gatehouse_lpr_events_total{endpoint=\"frigate\",result=\"open\"}",
            "gatehouse_lpr_events_total{endpoint=\"frigate\",result=\"refused\"}",
            "gatehouse_frigate_connected",
            "gatehouse_frigate_available",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{series} "))),
                "{series} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn known_series_exist_at_zero_before_any_event() {
        let demo = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml");
        let config = Config::parse(&std::fs::read_to_string(demo).unwrap(), demo).unwrap();
        declare_known(&config);
        let text = render();
        for line in [
            "gatehouse_decisions_total{gate=\"east\",result=\"denied\"} 0",
            "gatehouse_reader_rejections_total{gate=\"east-out\",kind=\"noise\"} 0",
            "gatehouse_reader_faults_total{gate=\"car-in\"} 0",
            "gatehouse_lpr_events_total{endpoint=\"hikvision\",result=\"open\"} 0",
            "gatehouse_camera_frames_total{camera=\"east-cam\"} 0",
            "gatehouse_face_frame_seconds_count{camera=\"east-cam\"} 0",
            "gatehouse_event_write_seconds_count 0",
            "gatehouse_uplink_connected 0",
            "gatehouse_outbox_events 0",
        ] {
            // Other tests in this process share the registry and may have
            // counted already: the series must exist, its value may differ.
            let series = line.rsplit_once(' ').map_or(line, |(s, _)| s);
            assert!(
                text.lines()
                    .any(|l| l.rsplit_once(' ').is_some_and(|(s, _)| s == series)),
                "no {series:?} in\n{text}"
            );
        }
        let build = format!(
            "gatehouse_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        assert!(text.lines().any(|l| l == build), "{text}");
        assert!(!text.contains("{}"), "empty label sets: {text}");
    }

    #[test]
    fn renders_counters_and_histograms_in_prometheus_text() {
        inc(
            "gatehouse_test_decisions_total",
            "Decisions.",
            &[("gate", "east"), ("result", "granted")],
        );
        inc(
            "gatehouse_test_decisions_total",
            "Decisions.",
            &[("gate", "east"), ("result", "granted")],
        );
        observe("gatehouse_test_latency_seconds", "Latency.", &[], 0.03);
        let text = render();
        assert!(
            text.contains("# TYPE gatehouse_test_decisions_total counter"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_test_decisions_total{gate=\"east\",result=\"granted\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_test_latency_seconds_bucket{le=\"0.05\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("gatehouse_test_latency_seconds_bucket{le=\"0.02\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("\ngatehouse_test_latency_seconds_count 1\n"),
            "{text}"
        );
    }

    /// The status line the real endpoint answers to a raw HTTP/1.1 request.
    async fn raw_status(addr: SocketAddr, request_line: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("{request_line}\r\nHost: gw\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        text.lines().next().unwrap_or_default().to_string()
    }

    #[tokio::test]
    async fn the_endpoint_answers_only_get_and_head_on_exactly_metrics() {
        let endpoint = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = endpoint.local_addr();
        tokio::spawn(endpoint.serve());
        assert_eq!(
            raw_status(addr, "GET /metrics HTTP/1.1").await,
            "HTTP/1.1 200 OK"
        );
        assert_eq!(
            raw_status(addr, "HEAD /metrics HTTP/1.1").await,
            "HTTP/1.1 200 OK"
        );
        assert_eq!(
            raw_status(addr, "GET /metricsX HTTP/1.1").await,
            "HTTP/1.1 404 Not Found"
        );
        assert_eq!(
            raw_status(addr, "GET /metrics/../x HTTP/1.1").await,
            "HTTP/1.1 404 Not Found"
        );
    }
}
