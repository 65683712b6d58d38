//! Prometheus text metrics on a local port: decisions by result, face
//! pipeline latency, outbox depth, camera fps, reader faults.
//!
//! Series the daemon exports (names are the contract with dashboards):
//! - `gatehouse_decisions_total{gate,result}`: every access decision.
//! - `gatehouse_reader_rejections_total{gate,kind}`: Wiegand frames refused
//!   (`parity`, `length`, `noise`); `gatehouse_reader_faults_total{gate}`: a
//!   reader that kept sending bad frames (the `reader_fault` event).
//! - `gatehouse_event_write_seconds`: storing one event (and its outbox row).
//! - `gatehouse_outbox_events` / `gatehouse_outbox_bytes`: what waits for the
//!   station, sampled every few seconds.
//!
//! A tiny registry of named series behind one mutex: updates happen a few
//! times per second at most, so simplicity beats lock-free cleverness.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Latency buckets in seconds: event writes take about a millisecond, the
/// face pipeline 5–200 ms.
const BUCKETS: [f64; 13] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

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
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect::<Vec<_>>()
        .join(",")
}

fn with_registry(f: impl FnOnce(&mut Registry)) {
    // A poisoned lock only means another thread panicked mid-update; metrics stay usable.
    let mut guard = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut guard);
}

/// Adds 1 to a counter series.
pub fn inc(name: &str, help: &'static str, labels: &[(&str, &str)]) {
    with_registry(|r| {
        r.help.entry(name.to_string()).or_insert(("counter", help));
        *r.counters
            .entry((name.to_string(), labels_text(labels)))
            .or_default() += 1.0;
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
    with_registry(|r| {
        r.help
            .entry(name.to_string())
            .or_insert(("histogram", help));
        let h = r
            .histograms
            .entry((name.to_string(), labels_text(labels)))
            .or_default();
        for (i, upper) in BUCKETS.iter().enumerate() {
            if seconds <= *upper {
                h.buckets[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
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
                    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
                }
            }
        };
        for ((name, labels), v) in r.counters.iter().chain(r.gauges.iter()) {
            header(&mut out, name);
            let _ = writeln!(out, "{name}{{{labels}}} {v}");
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
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
        }
    });
    out
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
        serve_on(self.listener).await
    }
}

async fn serve_on(listener: tokio::net::TcpListener) -> Result<()> {
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            let n = match tokio::time::timeout(
                std::time::Duration::from_secs(5),
                socket.read(&mut buf),
            )
            .await
            {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if request.starts_with("GET /metrics") {
                ("200 OK", render())
            } else {
                ("404 Not Found", "not found; try /metrics\n".to_string())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            text.contains("gatehouse_test_latency_seconds_count{} 1"),
            "{text}"
        );
    }
}
