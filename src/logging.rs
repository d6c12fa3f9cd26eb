//! Logging (tracing) on stderr, more with each `-v`.

use tracing_subscriber::EnvFilter;

/// Starts the log: warnings by default, then info, debug and trace with `-v`, `-vv`, `-vvv`.
pub fn init(verbosity: u8) {
    let level = match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::new(format!("byok_flow={level},warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
