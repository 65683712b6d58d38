//! The HTTP endpoint LPR cameras push to (axum on `[lpr] listen`).
//!
//! Every request passes the same checks, cheapest first: the peer address
//! against `[lpr] allow` (403, at accept, before a byte is read, and again
//! per request for in-process use), the shared secret (401), the body size (413),
//! the body itself (400), the gate (404). Only a request that passes all of
//! them saves a picture or reaches the sink, so bad input changes nothing.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use chrono::Utc;
use sha2::{Digest, Sha256};

use super::hikvision::{self, HikEvent};
use super::{
    json, read_plate, snapshot, CameraEvent, CameraText, EventSite, PlateReading, PlateSink,
    PlateSource, Verdict,
};
use crate::config::{check_token, Config, GateKind, Lpr};
use crate::domain::GateId;

/// The header cameras send the shared secret in.
pub const TOKEN_HEADER: &str = "x-gatehouse-token";

/// Everything the endpoint needs from the config, with the secret loaded.
#[derive(Clone)]
pub struct LprServerSettings {
    pub lpr: Lpr,
    pub token: String,
    /// Every configured gate and its kind.
    pub gates: HashMap<GateId, GateKind>,
    pub snapshots_dir: PathBuf,
    pub utc_offset_minutes: i32,
}

impl std::fmt::Debug for LprServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LprServerSettings")
            .field("lpr", &self.lpr)
            .field("token", &"<redacted>")
            .field("gates", &self.gates)
            .field("snapshots_dir", &self.snapshots_dir)
            .field("utc_offset_minutes", &self.utc_offset_minutes)
            .finish()
    }
}

impl LprServerSettings {
    /// Reads `token_file` when the config names one.
    pub fn from_config(config: &Config) -> Result<LprServerSettings> {
        let lpr = config.lpr.clone();
        let token = match (&lpr.token, &lpr.token_file) {
            (Some(token), _) => token.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("lpr.token_file: cannot read {}", path.display()))?;
                let token = text.lines().next().unwrap_or("").trim().to_string();
                check_token(&token)
                    .map_err(|p| anyhow::anyhow!("lpr.token_file {}: {p}", path.display()))?;
                token
            }
            (None, None) => anyhow::bail!("[lpr] needs token_file or token"),
        };
        Ok(LprServerSettings {
            lpr,
            token,
            gates: config
                .gates
                .iter()
                .map(|g| (g.id.clone(), g.kind))
                .collect(),
            snapshots_dir: snapshot::dir(config.data_dir()),
            utc_offset_minutes: config.site.utc_offset_minutes,
        })
    }
}

/// The bound endpoint, ready to serve.
pub struct LprServer {
    listener: tokio::net::TcpListener,
    router: Router,
    lpr: Lpr,
}

impl LprServer {
    /// Binds `[lpr] listen` and loads the secret; nothing is served until [`LprServer::serve`].
    pub async fn bind<S: PlateSink>(config: &Config, sink: S) -> Result<LprServer> {
        let listen = config
            .lpr
            .listen
            .context("lpr.listen is not set, so the LPR endpoint is off")?;
        let settings = LprServerSettings::from_config(config)?;
        crate::http_server::raise_open_files_limit();
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen for LPR cameras on {listen}"))?;
        Ok(LprServer {
            listener,
            lpr: settings.lpr.clone(),
            router: router(settings, sink),
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .context("LPR listener has no local address")
    }

    /// Serves until `shutdown` completes, under `[lpr]`'s limits on slow and
    /// idle clients; an address off `[lpr] allow` is answered 403 and closed
    /// at accept, so it holds nothing (see `http_server`).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let addr = self.local_addr()?;
        tracing::info!(%addr, "LPR cameras: POST http://{addr}/lpr/json or /lpr/hikvision");
        let lpr = self.lpr.clone();
        let admit: crate::http_server::Admit = Arc::new(move |ip: IpAddr| {
            if lpr.allows(ip) {
                Ok(())
            } else {
                count("any", "forbidden");
                Err(crate::http_server::Refusal {
                    status: 403,
                    reason: "Forbidden",
                    message: format!("address {ip} is not in [lpr] allow"),
                })
            }
        });
        let options = crate::http_server::Options {
            name: "LPR",
            limits: self.lpr.limits(),
            admit: Some(admit),
            tls: None,
        };
        crate::http_server::serve(self.listener, self.router, options, shutdown)
            .await
            .context("LPR endpoint stopped")
    }
}

struct App<S> {
    settings: LprServerSettings,
    sink: S,
    /// The last answer per (gate, plate as read), for repeats within `repeat_window_s`.
    answered: std::sync::Mutex<HashMap<(GateId, String), (std::time::Instant, serde_json::Value)>>,
}

/// The routes, for serving or for calling in-process (the peer address comes
/// from the `ConnectInfo<SocketAddr>` request extension).
pub fn router<S: PlateSink>(settings: LprServerSettings, sink: S) -> Router {
    let limit = settings.lpr.max_body_kb as usize * 1024;
    let app = Arc::new(App {
        settings,
        sink,
        answered: Default::default(),
    });
    Router::new()
        .route("/lpr/json", post(post_json::<S>))
        .route("/lpr/hikvision", post(post_hikvision::<S>))
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(app.clone(), guard::<S>))
        .with_state(app)
}

/// Address first, then the secret: both before the body is read.
async fn guard<S: PlateSink>(
    State(app): State<Arc<App<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let ip = peer.ip();
    // A fixed label set: paths come from anyone and must not grow the metrics.
    let endpoint = match request.uri().path() {
        "/lpr/json" => "json",
        "/lpr/hikvision" => "hikvision",
        _ => "other",
    };
    if !app.settings.lpr.allows(ip) {
        count(endpoint, "forbidden");
        tracing::warn!(%ip, path = request.uri().path(), "LPR request from an address not in lpr.allow");
        return reject(
            StatusCode::FORBIDDEN,
            format!("address {ip} is not in [lpr] allow"),
        );
    }
    // Cameras that cannot set headers (most Hikvision firmware) put it in the URL.
    let from_query = Query::<HashMap<String, String>>::try_from_uri(request.uri())
        .ok()
        .and_then(|Query(q)| q.get("token").cloned());
    let given = request
        .headers()
        .get(TOKEN_HEADER)
        .map(|v| v.as_bytes().to_vec())
        .or(from_query.map(String::into_bytes));
    let Some(given) = given else {
        count(endpoint, "unauthorized");
        return reject(
            StatusCode::UNAUTHORIZED,
            "missing X-Gatehouse-Token header".into(),
        );
    };
    if !same_secret(&given, app.settings.token.as_bytes()) {
        count(endpoint, "unauthorized");
        tracing::warn!(%ip, "LPR request with a wrong token");
        return reject(StatusCode::UNAUTHORIZED, "wrong X-Gatehouse-Token".into());
    }
    next.run(request).await
}

/// Compares digests so the time taken says nothing about the secret.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

async fn post_json<S: PlateSink>(
    State(app): State<Arc<App<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    match json::parse(&body) {
        Ok(event) => app.accept(event, PlateSource::Json, peer.ip()).await,
        Err(problem) => bad_request(PlateSource::Json, peer.ip(), problem),
    }
}

async fn post_hikvision<S: PlateSink>(
    State(app): State<Arc<App<S>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match hikvision::parse(content_type, &body, app.settings.utc_offset_minutes) {
        Ok(HikEvent::Anpr(event)) => app.accept(event, PlateSource::Hikvision, peer.ip()).await,
        Ok(HikEvent::Other(kind)) => ignored(format!("event type {kind:?} is not ANPR")),
        Err(problem) => bad_request(PlateSource::Hikvision, peer.ip(), problem),
    }
}

impl<S: PlateSink> App<S> {
    /// From a parsed event to the sink's answer.
    async fn accept(&self, event: CameraEvent, source: PlateSource, camera: IpAddr) -> Response {
        let received_at = Utc::now();
        let (gate, channel) = match self.gate_of(&event.site, camera) {
            Ok(found) => found,
            Err((status, problem)) => {
                count(source.endpoint(), "unknown_gate");
                tracing::warn!(%camera, "LPR event refused: {problem}");
                return reject(status, problem);
            }
        };
        let tolerate = self.settings.lpr.tolerates_ocr_confusion(&gate);
        let read = match read_plate(&event.plate_text, tolerate) {
            Ok(CameraText::Read(read)) => read,
            Ok(CameraText::NoPlate) => {
                return ignored(format!("the camera at gate {gate} read no plate"))
            }
            Err(problem) => return bad_request(source, camera, problem),
        };
        if let Some(mut earlier) = self.repeat_of(&gate, &read.text) {
            count(source.endpoint(), "repeat");
            tracing::debug!(gate = %gate, read = %read.text, "repeated plate reading: answered as before");
            earlier["repeat"] = serde_json::Value::Bool(true);
            return Json(earlier).into_response();
        }
        let snapshot = match event.snapshot {
            Some(jpeg) => self.save_snapshot(&gate, received_at, jpeg).await,
            None => None,
        };
        let reading = PlateReading {
            gate: gate.clone(),
            read,
            confidence: event.confidence,
            camera_time: event.camera_time,
            received_at,
            snapshot,
            source,
            camera: super::PlateCamera::Address(camera),
            channel,
            tracked_object: None,
        };
        let read_text = reading.read.text.clone();
        let snapshot = reading.snapshot.clone();
        let candidates = reading.read.clone();
        match self.sink.present(reading).await {
            Ok(outcome) => {
                let result = match outcome.verdict {
                    Verdict::Open => "open",
                    Verdict::Refused => "refused",
                };
                count(source.endpoint(), result);
                tracing::info!(gate = %gate, read = %read_text, plate = %outcome.plate, result, reason = %outcome.reason, "plate event");
                let substitution = candidates
                    .candidate(&outcome.plate)
                    .and_then(|c| c.substitution);
                let answer = serde_json::json!({
                    "result": result,
                    "gate": gate,
                    "plate": outcome.plate,
                    "read": read_text,
                    "ocr_substitution": substitution,
                    "reason": outcome.reason,
                    "subject": outcome.subject,
                    "event": outcome.event_seq,
                    "snapshot": snapshot,
                });
                self.remember(gate, read_text, &answer);
                Json(answer).into_response()
            }
            Err(err) => {
                count(source.endpoint(), "error");
                tracing::error!(gate = %gate, read = %read_text, "the gate did not act on a plate reading: {err:#}");
                reject(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the gate did not act on the reading: {err:#}"),
                )
            }
        }
    }

    /// The answer to the same reading at `gate` within the repeat window.
    fn repeat_of(&self, gate: &GateId, read: &str) -> Option<serde_json::Value> {
        let window = std::time::Duration::from_secs(u64::from(self.settings.lpr.repeat_window_s));
        let answered = self.answered.lock().unwrap_or_else(|p| p.into_inner());
        let (at, answer) = answered.get(&(gate.clone(), read.to_string()))?;
        (at.elapsed() < window).then(|| answer.clone())
    }

    fn remember(&self, gate: GateId, read: String, answer: &serde_json::Value) {
        if self.settings.lpr.repeat_window_s == 0 {
            return;
        }
        let window = std::time::Duration::from_secs(u64::from(self.settings.lpr.repeat_window_s));
        let mut answered = self.answered.lock().unwrap_or_else(|p| p.into_inner());
        // Old answers go as new ones come, so a busy entrance does not grow memory.
        answered.retain(|_, (at, _)| at.elapsed() < window);
        answered.insert((gate, read), (std::time::Instant::now(), answer.clone()));
    }

    /// The vehicle gate an event belongs to, or the response refusing it.
    fn gate_of(
        &self,
        site: &EventSite,
        camera: IpAddr,
    ) -> Result<(GateId, Option<u32>), (StatusCode, String)> {
        match site {
            EventSite::Gate(gate) => match self.settings.gates.get(gate) {
                None => Err((
                    StatusCode::NOT_FOUND,
                    format!("gate: no gate {:?} in the config", gate.as_str()),
                )),
                Some(GateKind::Pedestrian) => Err((
                    StatusCode::BAD_REQUEST,
                    format!(
                        "gate: {:?} is a pedestrian gate, not a vehicle gate",
                        gate.as_str()
                    ),
                )),
                Some(GateKind::Vehicle) => Ok((gate.clone(), None)),
            },
            EventSite::Channel(channel) => match self.settings.lpr.camera_gate(camera, *channel) {
                Some(gate) => Ok((gate.clone(), *channel)),
                None => Err((
                    StatusCode::NOT_FOUND,
                    format!(
                        "no [[lpr.cameras]] entry maps address {camera} channel {} to a gate",
                        channel.map_or("(none)".to_string(), |c| c.to_string())
                    ),
                )),
            },
        }
    }

    /// A picture that cannot be kept must not keep the barrier shut: log and go on.
    async fn save_snapshot(
        &self,
        gate: &GateId,
        at: chrono::DateTime<Utc>,
        jpeg: Vec<u8>,
    ) -> Option<String> {
        let name = snapshot::file_name(gate, at);
        let dir = self.settings.snapshots_dir.clone();
        let file = name.clone();
        let saved = tokio::task::spawn_blocking(move || snapshot::save(&dir, &file, &jpeg)).await;
        match saved {
            Ok(Ok(_)) => Some(name),
            Ok(Err(err)) => {
                tracing::error!("plate event at {gate} goes on without its picture: {err:#}");
                None
            }
            Err(err) => {
                tracing::error!("plate event at {gate} goes on without its picture: {err}");
                None
            }
        }
    }
}

/// Counts a plate event by endpoint (`json`, `hikvision`, `frigate`) and result.
pub(super) fn count(endpoint: &str, result: &str) {
    crate::metrics::inc(
        "gatehouse_lpr_events_total",
        "Plate events from LPR cameras, by endpoint and result",
        &[("endpoint", endpoint), ("result", result)],
    );
}

fn bad_request(source: PlateSource, camera: IpAddr, problem: String) -> Response {
    count(source.endpoint(), "bad_request");
    tracing::warn!(%camera, "LPR event refused: {problem}");
    reject(StatusCode::BAD_REQUEST, problem)
}

fn ignored(reason: String) -> Response {
    Json(serde_json::json!({"result": "ignored", "reason": reason})).into_response()
}

fn reject(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({"error": message}))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_equal_only_when_identical() {
        assert!(same_secret(b"demo-lpr-token-0001", b"demo-lpr-token-0001"));
        assert!(!same_secret(b"demo-lpr-token-0001", b"demo-lpr-token-0002"));
        assert!(!same_secret(b"", b"demo-lpr-token-0001"));
    }
}
