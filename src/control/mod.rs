//! The local control socket: `<data_dir>/gatehouse.sock`, mode 0660, one JSON
//! request per line and one JSON response per line. Local tools
//! (`gatehouse simulate`, `gatehouse gate open|status`) talk to the running
//! daemon through it.
//!
//! Architecture Invariant: a thin adapter over [`GateHandle`]; anything the
//! socket can do, a task in the daemon can do by calling the handle.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use crate::daemon::GateHandle;
use crate::domain::{CardFormat, CardNumber, GateId, Plate};
use crate::wiegand::format;

pub const SOCKET_NAME: &str = "gatehouse.sock";
/// Longest request line accepted.
const MAX_LINE: usize = 64 * 1024;

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// A Wiegand frame: a card (`10:12345`, `raw:0101…`) or literal bits.
    SimulateWiegand {
        gate: GateId,
        #[serde(default)]
        card: Option<CardNumber>,
        #[serde(default)]
        bits: Option<String>,
        #[serde(default)]
        format: Option<CardFormat>,
    },
    SimulatePin {
        gate: GateId,
        pin: String,
        #[serde(default)]
        eight_bit: bool,
    },
    SimulateDoor {
        gate: GateId,
        open: bool,
    },
    SimulateButton {
        gate: GateId,
    },
    SimulateVehicle {
        gate: GateId,
        present: bool,
    },
    SimulatePlate {
        gate: GateId,
        plate: String,
    },
    /// A manual open; `actor` is who asked (the daemon adds the peer's uid).
    GateOpen {
        gate: GateId,
        reason: String,
        actor: String,
    },
    GateStatus,
    /// Reload the register now.
    Reload,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

/// Fails if a daemon is already answering on `path` (call before claiming
/// any hardware); removes a stale socket file left by a crash.
pub async fn ensure_free(path: &Path) -> Result<()> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            bail!(
                "{} is in use: another gatehouse daemon is running with this data directory",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    Ok(())
}

/// Binds the socket (replacing a stale one) and serves until `shutdown`.
pub async fn serve(
    handle: GateHandle,
    path: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>> {
    ensure_free(&path).await?;
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("cannot set permissions of {}", path.display()))?;
    tracing::info!(socket = %path.display(), "control socket listening");
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let handle = handle.clone();
                        tokio::spawn(async move {
                            if let Err(e) = connection(handle, stream).await {
                                tracing::debug!("control connection ended: {e:#}");
                            }
                        });
                    }
                    Err(e) => {
                        tracing::error!("control socket accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
        let _ = std::fs::remove_file(&path);
    }))
}

async fn connection(handle: GateHandle, stream: UnixStream) -> Result<()> {
    let uid = stream.peer_cred().ok().map(|c| c.uid());
    let (read, mut write) = stream.into_split();
    let mut reader = AsyncBufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let response = if line.len() > MAX_LINE {
            failure(anyhow!("request longer than {MAX_LINE} bytes"))
        } else {
            match serde_json::from_str::<Request>(line.trim()) {
                Ok(req) => match handle_request(&handle, req, uid).await {
                    Ok(result) => Response {
                        ok: true,
                        error: None,
                        result: Some(result),
                    },
                    Err(e) => failure(e),
                },
                Err(e) => failure(anyhow!("bad request: {e}")),
            }
        };
        let mut out = serde_json::to_string(&response)?;
        out.push('\n');
        write.write_all(out.as_bytes()).await?;
        if line.len() > MAX_LINE {
            return Ok(());
        }
    }
}

fn failure(e: anyhow::Error) -> Response {
    Response {
        ok: false,
        error: Some(format!("{e:#}")),
        result: None,
    }
}

async fn handle_request(handle: &GateHandle, req: Request, uid: Option<u32>) -> Result<Value> {
    let outcome = match req {
        Request::SimulateWiegand {
            gate,
            card,
            bits,
            format: fmt,
        } => {
            let bits = match (card, bits) {
                (Some(card), None) => format::encode_card(&card, fmt).map_err(|e| anyhow!(e))?,
                (None, Some(bits)) => format::parse_bits(&bits).map_err(|e| anyhow!(e))?,
                _ => bail!("give either a card or bits"),
            };
            handle.simulate_wiegand(&gate, &bits).await?
        }
        Request::SimulatePin {
            gate,
            pin,
            eight_bit,
        } => handle.simulate_pin(&gate, &pin, eight_bit).await?,
        Request::SimulateDoor { gate, open } => handle.simulate_door(&gate, open).await?,
        Request::SimulateButton { gate } => handle.simulate_button(&gate).await?,
        Request::SimulateVehicle { gate, present } => {
            handle.simulate_vehicle(&gate, present).await?
        }
        Request::SimulatePlate { gate, plate } => {
            let plate: Plate = plate.parse().map_err(|e: String| anyhow!(e))?;
            handle.simulate_plate(&gate, plate).await?
        }
        Request::GateOpen {
            gate,
            reason,
            actor,
        } => {
            let actor = match uid {
                Some(uid) => format!("{actor} (uid {uid})"),
                None => actor,
            };
            let presented = handle.open(&gate, &actor, &reason).await?;
            return Ok(serde_json::to_value(presented.view)?);
        }
        Request::GateStatus => return Ok(serde_json::to_value(handle.status().await)?),
        Request::Reload => {
            let changed = handle.reload_register(true).await?;
            return Ok(
                serde_json::json!({ "reloaded": changed, "persons": handle.register().person_count() }),
            );
        }
    };
    Ok(serde_json::to_value(outcome)?)
}

/// Sends one request to the daemon listening at `path` and returns its result.
pub fn request(path: &Path, req: &Request) -> Result<Value> {
    let stream = std::os::unix::net::UnixStream::connect(path).with_context(|| {
        format!(
            "cannot connect to {}: is `gatehouse run` running with this data directory?",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    let mut writer = stream.try_clone()?;
    let mut line = serde_json::to_string(req)?;
    line.push('\n');
    writer
        .write_all(line.as_bytes())
        .context("cannot send the request")?;
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .context("no answer from the daemon")?;
    let response: Response = serde_json::from_str(reply.trim())
        .with_context(|| format!("unreadable answer from the daemon: {reply:?}"))?;
    if !response.ok {
        bail!(
            "{}",
            response
                .error
                .unwrap_or_else(|| "the daemon refused the request".into())
        );
    }
    Ok(response.result.unwrap_or(Value::Null))
}
