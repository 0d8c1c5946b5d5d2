//! Logging: JSON lines (the default, one object per event with its span's request id)
//! or human-readable lines, filtered by `RUST_LOG` (default `info`).

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the process's log subscriber, writing to stderr (stdout is the program's
/// own output: the server's `listening on` line, the CLI's answers).
pub fn init(format: LogFormat) {
    init_with_default(format, "info");
}

/// As [`init`], with `default_filter` when `RUST_LOG` is not set (the CLI logs only
/// warnings by default, so that its terminal shows the conversation).
pub fn init_with_default(format: LogFormat, default_filter: &str) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
