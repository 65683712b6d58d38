//! tracing setup: human-readable or JSON lines on stdout (journald picks them up).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. `GATEHOUSE_LOG` overrides `default_filter`.
/// Safe to call more than once (later calls are ignored), which tests rely on.
pub fn init(format: LogFormat, default_filter: &str) {
    let filter = std::env::var("GATEHOUSE_LOG")
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .or_else(|| EnvFilter::try_new(default_filter).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
