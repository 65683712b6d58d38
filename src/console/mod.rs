//! The property manager's web console: an HTTP server in the daemon on
//! `[console] listen`, Chinese first, for the office PC or a phone on the
//! compound's LAN, with no internet (pages, CSS and JS are in the binary).
//!
//! Accounts have a role (manager, guard, auditor), Argon2 password hashes and
//! no default password: while no account exists the daemon logs a one-time
//! setup link. Sessions expire, sign-in is limited per address and per
//! account (counted before the password is hashed, at most two hashes at
//! once), every form carries a CSRF token and a post without it is refused.
//! Both listeners (this and LPR) are served by `http_server`, with header,
//! idle and connection limits.
//!
//! Architecture Invariant: the console changes nothing itself. Every read and
//! change goes through the same `store` and `enrol` functions as the CLI:
//! changes and audited reads on the daemon's one writer connection
//! (`GateHandle::with_store`, via `Ctx::store`), reads that write nothing on
//! read-only connections (`GateHandle::read`, via `Ctx::read`), which never
//! wait for the writer; what people are shown is audited under
//! `console:<account>`; gates are reached through `GateHandle`.

mod auth;
mod i18n;
mod layout;
mod pages;
pub(crate) mod password;
mod qr;
mod tls;
mod web;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::config::Config;
use crate::daemon::GateHandle;

pub use auth::{allows, Perm};
pub use i18n::Lang;

/// How long the console waits for a card at a reader ("present the card now").
pub const CARD_CAPTURE_TIMEOUT: Duration = Duration::from_secs(30);

/// What every request handler shares.
pub(crate) struct App {
    pub handle: GateHandle,
    pub config: Config,
    pub sessions: auth::Sessions,
    pub limiter: auth::LoginLimiter,
    pub setup: auth::SetupToken,
    /// Cookies get `Secure` (the console is served over TLS).
    pub secure: bool,
    pub started_at: chrono::DateTime<chrono::Utc>,
    /// The face matcher (models and gallery), opened when the face page is first used.
    pub faces: std::sync::Mutex<Option<crate::face::enrol::Matcher>>,
    /// Becomes `true` when the console stops, so live streams end.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

pub(crate) type AppRef = Arc<App>;

/// The bound console, ready to serve.
pub struct ConsoleServer {
    listener: tokio::net::TcpListener,
    router: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    app: AppRef,
}

impl ConsoleServer {
    /// Binds `[console] listen`, loads the TLS certificate if configured and,
    /// while no account exists, logs the one-time setup link.
    pub async fn bind(config: &Config, handle: GateHandle) -> Result<ConsoleServer> {
        let listen = config
            .console
            .listen
            .context("console.listen is not set, so the console is off")?;
        let tls = match (&config.console.tls_cert, &config.console.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key)?),
            _ => None,
        };
        crate::http_server::raise_open_files_limit();
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen for the console on {listen}"))?;
        let local = listener
            .local_addr()
            .context("console listener has no address")?;
        let app = Arc::new(App {
            handle: handle.clone(),
            config: config.clone(),
            sessions: auth::Sessions::new(Duration::from_secs(
                u64::from(config.console.session_minutes) * 60,
            )),
            limiter: auth::LoginLimiter::default(),
            setup: auth::SetupToken::default(),
            secure: tls.is_some(),
            started_at: chrono::Utc::now(),
            faces: std::sync::Mutex::new(None),
            stopping: tokio::sync::watch::channel(false).0,
        });
        let accounts = handle.read(crate::store::console::count).await??;
        // Addresses each account signed in from lately stay familiar across a
        // restart, so guesses from elsewhere cannot hold the manager back.
        let since = chrono::Utc::now()
            - chrono::Duration::from_std(auth::KNOWN_FOR).unwrap_or(chrono::Duration::days(90));
        let logins = handle
            .read(move |conn| {
                crate::store::console::audit_rows(
                    conn,
                    &crate::store::console::AuditFilter {
                        since: Some(since),
                        action: Some("console.login".into()),
                        limit: Some(5000),
                        ..Default::default()
                    },
                )
            })
            .await??;
        for row in logins.iter().filter(|r| r.action == "console.login") {
            let peer = row
                .detail
                .as_deref()
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .and_then(|d| d.get("peer").and_then(|p| p.as_str()).map(str::to_string));
            if let (Some(name), Some(peer)) = (&row.subject, peer) {
                app.limiter.remember(name, &peer);
            }
        }
        let scheme = if tls.is_some() { "https" } else { "http" };
        if accounts == 0 {
            let token = app.setup.issue();
            let host = if local.ip().is_unspecified() {
                "<this gateway's address>".to_string()
            } else {
                local.to_string()
            };
            tracing::warn!(
                "console: no account yet. Create the first manager account at {scheme}://{host}/setup?token={token} (the link works once, and only until this daemon stops)"
            );
        }
        Ok(ConsoleServer {
            listener,
            router: router(app.clone()),
            tls,
            app,
        })
    }

    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .context("console listener has no local address")
    }

    /// Serves until `shutdown` completes, under `[console]`'s limits on slow
    /// and idle clients (see `http_server`).
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let addr = self.local_addr()?;
        let app = self.app.clone();
        let shutdown = async move {
            shutdown.await;
            let _ = app.stopping.send(true);
        };
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        tracing::info!(%addr, "console: {scheme}://{addr}/");
        let options = crate::http_server::Options {
            name: "console",
            limits: self.app.config.console.limits(),
            admit: None,
            tls: self.tls,
        };
        crate::http_server::serve(self.listener, self.router, options, shutdown)
            .await
            .context("console stopped")
    }
}

fn router(app: AppRef) -> Router {
    let uploads = Router::new()
        .route("/import", post(pages::import::run))
        .route("/residents/{id}/face", post(pages::faces::upload))
        .layer(DefaultBodyLimit::max(web::UPLOAD_LIMIT));
    Router::new()
        .route("/", get(pages::login::home))
        .route("/static/app.css", get(css))
        .route("/static/app.js", get(js))
        .route(
            "/setup",
            get(pages::login::setup_form).post(pages::login::setup),
        )
        .route(
            "/login",
            get(pages::login::login_form).post(pages::login::login),
        )
        .route("/logout", post(pages::login::logout))
        .route("/lang/{code}", get(pages::login::switch_lang))
        .route(
            "/account/password",
            get(pages::accounts::own_password_form).post(pages::accounts::own_password),
        )
        .route("/accounts", get(pages::accounts::list))
        .route("/accounts/new", post(pages::accounts::create))
        .route("/accounts/change", post(pages::accounts::change))
        .route("/residents", get(pages::residents::list))
        .route(
            "/residents/new",
            get(pages::residents::new_form).post(pages::residents::create),
        )
        .route("/residents/{id}", get(pages::residents::show))
        .route(
            "/residents/{id}/edit",
            get(pages::residents::edit_form).post(pages::residents::update),
        )
        .route("/residents/{id}/status", post(pages::residents::set_status))
        .route("/residents/{id}/remove", post(pages::residents::remove))
        .route(
            "/residents/{id}/phone",
            post(pages::residents::reveal_phone),
        )
        .route("/residents/{id}/check-id", post(pages::residents::check_id))
        .route("/residents/{id}/face", get(pages::faces::show))
        .route(
            "/residents/{id}/face/camera",
            post(pages::faces::from_camera),
        )
        .route("/residents/{id}/face/remove", post(pages::faces::remove))
        .route("/residents/{id}/cards/capture", post(pages::cards::capture))
        .route("/residents/{id}/cards/add", post(pages::cards::add))
        .route("/residents/{id}/cards/revoke", post(pages::cards::revoke))
        .route(
            "/residents/{id}/vehicles/add",
            post(pages::cards::add_vehicle),
        )
        .route(
            "/residents/{id}/vehicles/remove",
            post(pages::cards::remove_vehicle),
        )
        .route("/households", get(pages::households::list))
        .route("/households/kind", post(pages::households::set_kind))
        .route("/households/code", post(pages::households::set_code))
        .route("/vehicles", get(pages::households::vehicles))
        .route("/vehicles/add", post(pages::households::add_vehicle))
        .route(
            "/visitors",
            get(pages::visitors::list).post(pages::visitors::issue),
        )
        .route("/visitors/{id}/revoke", post(pages::visitors::revoke))
        .route("/live", get(pages::events::live))
        .route("/live/stream", get(pages::events::stream))
        .route("/gates/open", post(pages::events::open_gate))
        .route("/log", get(pages::events::log))
        .route("/log.csv", get(pages::events::log_csv))
        .route("/audit", get(pages::events::audit))
        .route("/status", get(pages::status::show))
        .route("/strangers", get(pages::strangers::list))
        .route("/snapshots/{name}", get(pages::strangers::snapshot))
        .route("/import", get(pages::import::form_page))
        .merge(uploads)
        .fallback(pages::login::not_found)
        .layer(middleware::from_fn(security_headers))
        .with_state(app)
}

/// Headers on every response: no framing, no inline script, no sniffing.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut r = next.run(request).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    r
}

fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

async fn css() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/app.css"))
}

async fn js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    )
}
