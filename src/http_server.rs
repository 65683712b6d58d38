//! One way to serve HTTP for the console and the LPR endpoint, so a slow or
//! idle client cannot starve the cameras: every connection must send its
//! request head within a header-read timeout (counted from the connection's
//! start or the end of the previous answer, so idle keep-alive connections
//! go too), a request body or an answer that moves no byte for the idle
//! timeout is dropped, and each listener holds at most `max_connections`
//! (at most `max_per_address` from one address). A listener may refuse an
//! address at accept, before a byte is read (the LPR allow-list).
//!
//! axum's own `serve` has no header timeout and no cap, hence hyper's
//! connection builder here.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::body::Bytes;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Refusals written at once; beyond that a refused connection is just closed.
const REFUSALS_AT_ONCE: usize = 64;
/// How long a refused connection may take to read its answer.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);
/// How long a stopping listener waits for answers in progress.
const DRAIN: Duration = Duration::from_secs(5);

pub use crate::config::HttpLimits as Limits;

/// What a refused connection is told before it is closed: a complete HTTP
/// answer (plain listeners), or nothing (TLS).
#[derive(Clone, Debug)]
pub struct Refusal {
    pub status: u16,
    pub reason: &'static str,
    /// The JSON answer's `error`.
    pub message: String,
}

impl Refusal {
    fn bytes(&self) -> Vec<u8> {
        let body = serde_json::json!({ "error": self.message }).to_string();
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            self.status,
            self.reason,
            body.len()
        )
        .into_bytes()
    }
}

/// Decides at accept, from the peer's address alone, whether to serve it.
pub type Admit = Arc<dyn Fn(IpAddr) -> Result<(), Refusal> + Send + Sync>;

/// How a listener serves.
pub struct Options {
    /// `console` or `LPR`: for logs and metrics.
    pub name: &'static str,
    pub limits: Limits,
    pub admit: Option<Admit>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Raises the soft limit on open files to the hard limit, once: each
/// connection is a file, and the default soft limit (1,024) is reached long
/// before the listeners' caps.
pub fn raise_open_files_limit() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read and write the struct passed.
        let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
        if got != 0 {
            tracing::warn!(
                "cannot read the open-files limit: {}",
                std::io::Error::last_os_error()
            );
            return;
        }
        if lim.rlim_cur >= lim.rlim_max {
            return;
        }
        let before = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            tracing::warn!(
                "cannot raise the open-files limit from {before}: {}",
                std::io::Error::last_os_error()
            );
        } else {
            tracing::debug!("open-files limit raised from {before} to {}", lim.rlim_max);
        }
    });
}

fn count(listener: &str, why: &str) {
    crate::metrics::inc(
        "gatehouse_http_refused_total",
        "Connections refused at accept, by listener and reason",
        &[("listener", listener), ("why", why)],
    );
}

/// Logs a refusal at most every ten seconds per listener, with how many
/// were not logged: a flood must not flood the journal.
struct RefusalLog {
    last: Mutex<(Option<Instant>, u64)>,
}

impl RefusalLog {
    fn note(&self, name: &str, ip: IpAddr, why: &str) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if last
            .0
            .is_some_and(|t| now.duration_since(t) < Duration::from_secs(10))
        {
            last.1 += 1;
            return;
        }
        let quiet = std::mem::take(&mut last.1);
        last.0 = Some(now);
        tracing::warn!(%ip, "{name}: connection refused: {why} ({quiet} more refusals not logged)");
    }
}

/// Open connections per address.
#[derive(Default)]
struct PerAddress {
    open: Mutex<HashMap<IpAddr, usize>>,
}

struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn take(table: &Arc<PerAddress>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut open = table.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: table.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown`, then lets answers in
/// progress finish (a few seconds at most).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let Options {
        name,
        limits,
        admit,
        tls,
    } = options;
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let refusing = Arc::new(Semaphore::new(REFUSALS_AT_ONCE));
    let log = RefusalLog {
        last: Mutex::new((None, 0)),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of files, most likely: wait for some to close.
                    tracing::warn!("{name}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let ip = peer.ip().to_canonical();
        let tell = tls.is_none();
        if let Some(admit) = &admit {
            if let Err(refusal) = admit(ip) {
                count(name, "address");
                log.note(name, ip, &refusal.message);
                refuse(tcp, tell.then_some(refusal), &refusing);
                continue;
            }
        }
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            count(name, "full");
            log.note(name, ip, "the listener is full");
            let refusal = Refusal {
                status: 503,
                reason: "Service Unavailable",
                message: format!(
                    "{name}: {} connections are open, the most allowed; try again shortly",
                    limits.max_connections
                ),
            };
            refuse(tcp, tell.then_some(refusal), &refusing);
            continue;
        };
        let Some(slot) = PerAddress::take(&per_address, ip, limits.max_per_address) else {
            count(name, "address_full");
            log.note(name, ip, "too many connections from this address");
            let refusal = Refusal {
                status: 503,
                reason: "Service Unavailable",
                message: format!(
                    "{name}: {} connections from {ip} are open, the most allowed from one address",
                    limits.max_per_address
                ),
            };
            refuse(tcp, tell.then_some(refusal), &refusing);
            continue;
        };
        let router = router.clone();
        let tls = tls.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let _held = (permit, slot);
            let _ = tcp.set_nodelay(true);
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => connection(stream, peer, router, limits, stop).await,
                        Ok(Err(e)) => tracing::debug!(%peer, "{name}: TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "{name}: TLS handshake timed out"),
                    }
                }
                None => connection(tcp, peer, router, limits, stop).await,
            }
        });
    }
    let _ = stop_tx.send(true);
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN, connections.acquire_many(all)).await;
    Ok(())
}

/// Writes the refusal (if any) without reading the request, then closes.
fn refuse(mut tcp: TcpStream, refusal: Option<Refusal>, refusing: &Arc<Semaphore>) {
    let (Some(refusal), Ok(permit)) = (refusal, refusing.clone().try_acquire_owned()) else {
        return;
    };
    tokio::spawn(async move {
        let _permit = permit;
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            tcp.write_all(&refusal.bytes()).await?;
            tcp.shutdown().await?;
            // Closing with unread bytes would reset the connection and lose
            // the answer: discard what the client sent (a little, briefly).
            let mut sink = [0u8; 4096];
            let mut left = 64 * 1024usize;
            while left > 0 {
                let n = tcp.read(&mut sink).await?;
                if n == 0 {
                    break;
                }
                left = left.saturating_sub(n);
            }
            std::io::Result::Ok(())
        })
        .await;
    });
}

/// One connection: HTTP/1.1 with the header-read timeout, request bodies
/// and answers under the idle timeout, until the client leaves or the
/// listener stops.
async fn connection<IO>(
    io: IO,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stall = Arc::new(Stall::default());
    let io = Watched {
        inner: io,
        stall: stall.clone(),
    };
    let idle = limits.idle_timeout;
    let router = hyper_util::service::TowerToHyperService::new(router);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let request = request.map(|body| axum::body::Body::new(IdleBody::new(body, idle)));
        hyper::service::Service::call(&router, request)
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                if changed.is_err() || *stop.borrow() {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
            () = stall.expired(idle) => {
                tracing::debug!(%peer, "connection dropped: the client read nothing for {idle:?}");
                return;
            }
        }
    }
}

/// Since when writes to the client have been blocked (0: they are not).
#[derive(Default)]
struct Stall {
    since_ms: AtomicU64,
}

fn base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

impl Stall {
    fn blocked(&self) {
        let now = u64::try_from(base().elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let _ = self
            .since_ms
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    fn moved(&self) {
        self.since_ms.store(0, Ordering::Relaxed);
    }

    /// Completes once writes have been blocked for `idle`.
    async fn expired(&self, idle: Duration) {
        loop {
            match self.since_ms.load(Ordering::Relaxed) {
                0 => tokio::time::sleep(idle).await,
                since => {
                    let deadline = base() + Duration::from_millis(since) + idle;
                    if Instant::now() >= deadline {
                        return;
                    }
                    tokio::time::sleep_until(deadline.into()).await;
                }
            }
        }
    }
}

/// The connection's socket, noting when writing to the client blocks.
struct Watched<IO> {
    inner: IO,
    stall: Arc<Stall>,
}

impl<IO> Watched<IO> {
    fn note<T>(&self, poll: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        match &poll {
            Poll::Pending => self.stall.blocked(),
            Poll::Ready(_) => self.stall.moved(),
        }
        poll
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(poll)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let poll = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.note(poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request body that fails when the client sends nothing for the idle
/// timeout (the clock starts when the handler first reads it).
struct IdleBody {
    inner: Incoming,
    idle: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl IdleBody {
    fn new(inner: Incoming, idle: Duration) -> IdleBody {
        IdleBody {
            inner,
            idle,
            timer: None,
        }
    }
}

impl Body for IdleBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.timer = None;
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = this.idle;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(format!(
                        "the client sent no body data for {} s",
                        idle.as_secs()
                    )
                    .into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
