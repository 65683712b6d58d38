//! tracing setup: human-readable or JSON lines on stderr (journald picks them up).
//!
//! The filter and the line format sit behind reload handles, so `gatehouse
//! run` can apply `[logging]` from its config file once it has read it, and
//! again on SIGHUP, without restarting.

use std::sync::OnceLock;

use anyhow::{anyhow, Result};
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

use crate::config::LogFormat;

type Filtered = Layered<reload::Layer<EnvFilter, Registry>, Registry>;
type FormatLayer = Box<dyn Layer<Filtered> + Send + Sync>;

struct Handles {
    filter: reload::Handle<EnvFilter, Registry>,
    format: reload::Handle<FormatLayer, Filtered>,
    /// `GATEHOUSE_LOG` was set: it wins over the config file.
    filter_from_env: bool,
    /// `--log-format` was given: it wins over the config file.
    format_from_cli: bool,
}

static HANDLES: OnceLock<Handles> = OnceLock::new();

fn format_layer(format: LogFormat) -> FormatLayer {
    use std::io::IsTerminal;
    // Colour codes only for a person at a terminal, not in journald or files.
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => Box::new(layer),
        LogFormat::Json => Box::new(layer.json()),
    }
}

/// Installs the global subscriber. `GATEHOUSE_LOG` overrides `default_filter`;
/// `format` is `--log-format` if given. Safe to call more than once (later
/// calls are ignored), which tests rely on.
pub fn init(format: Option<LogFormat>, default_filter: &str) {
    let from_env = std::env::var("GATEHOUSE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok());
    let filter_from_env = from_env.is_some();
    let filter = from_env
        .or_else(|| EnvFilter::try_new(default_filter).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let (filter, filter_handle) = reload::Layer::new(filter);
    let (fmt, format_handle) = reload::Layer::new(format_layer(format.unwrap_or_default()));
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = HANDLES.set(Handles {
            filter: filter_handle,
            format: format_handle,
            filter_from_env,
            format_from_cli: format.is_some(),
        });
    }
}

/// Applies a config file's `[logging]`: the filter (unless `GATEHOUSE_LOG`
/// is set) and the line format (unless `--log-format` was given). Errors
/// name the bad filter; the previous settings stay.
pub fn apply(level: &str, format: LogFormat) -> Result<()> {
    let Some(h) = HANDLES.get() else {
        return Ok(());
    };
    if !h.filter_from_env {
        let filter = EnvFilter::try_new(level)
            .map_err(|e| anyhow!("logging.level: {level:?} is not a valid filter: {e}"))?;
        h.filter
            .reload(filter)
            .map_err(|e| anyhow!("cannot change the log filter: {e}"))?;
    }
    if !h.format_from_cli {
        h.format
            .reload(format_layer(format))
            .map_err(|e| anyhow!("cannot change the log format: {e}"))?;
    }
    Ok(())
}
