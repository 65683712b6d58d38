//! tracing setup: human-readable or JSON lines on stderr (journald picks them up).
//! When stderr is the journal (`JOURNAL_STREAM` names it), text lines start
//! with a syslog priority (`<3>` error … `<7>` debug) and carry no timestamp of
//! their own: journald keeps the priority, so `journalctl -p warning` works,
//! and adds its own time.
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
        LogFormat::Text if stderr_is_journal() => Box::new(layer.event_format(Journald)),
        LogFormat::Text => Box::new(layer),
        LogFormat::Json => Box::new(layer.json()),
    }
}

/// systemd sets `JOURNAL_STREAM=<dev>:<inode>` for the stream it connects to
/// stderr; a child whose stderr was redirected elsewhere inherits the
/// variable, so it counts only when stderr still is that stream.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    match std::fs::metadata("/proc/self/fd/2") {
        Ok(m) => names_stream(&var.to_string_lossy(), m.dev(), m.ino()),
        Err(_) => false,
    }
}

/// `JOURNAL_STREAM`'s `<dev>:<inode>` (decimal) names this file.
fn names_stream(var: &str, dev: u64, ino: u64) -> bool {
    var.split_once(':')
        .and_then(|(d, i)| Some((d.trim().parse::<u64>().ok()?, i.trim().parse::<u64>().ok()?)))
        == Some((dev, ino))
}

/// The syslog priority journald reads from a `<N>` line prefix.
fn syslog_priority(level: tracing::Level) -> u8 {
    match level {
        tracing::Level::ERROR => 3,
        tracing::Level::WARN => 4,
        tracing::Level::INFO => 6,
        tracing::Level::DEBUG | tracing::Level::TRACE => 7,
    }
}

/// Text lines for the journal: `<4>WARN gatehouse::uplink: message key=value`.
struct Journald;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Journald
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        write!(
            writer,
            "<{}>{} {}: ",
            syslog_priority(*meta.level()),
            meta.level(),
            meta.target()
        )?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                write!(writer, "{}: ", span.name())?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn journal_lines_carry_the_syslog_priority_and_no_timestamp() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .event_format(Journald)
                .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::error!(gate = "east", "relay failed");
            tracing::warn!("clock not synchronised");
            tracing::info!(seq = 7, "event stored");
            tracing::debug!("frame");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("<3>ERROR "), "{}", lines[0]);
        assert!(lines[0].contains("relay failed") && lines[0].contains("gate=\"east\""));
        assert!(lines[1].starts_with("<4>WARN "), "{}", lines[1]);
        assert!(lines[2].starts_with("<6>INFO "), "{}", lines[2]);
        assert!(lines[3].starts_with("<7>DEBUG "), "{}", lines[3]);
        let year = chrono::Utc::now().format("%Y-").to_string();
        assert!(!text.contains(&year), "a timestamp of its own: {text}");
    }

    #[test]
    fn journal_stream_counts_only_for_the_named_file() {
        assert!(names_stream("8:12345", 8, 12345));
        assert!(!names_stream("8:12345", 8, 999));
        assert!(!names_stream("garbage", 8, 12345));
        assert!(!names_stream("", 0, 0));
    }
}
