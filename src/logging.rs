//! Logging (tracing) on stderr, more with each `-v`. Every line, and a panic's
//! message, passes through the run's redactor on its way out, so no log line at
//! any `-v` can hold a key, whatever an event quotes.

use std::io::Write;

use tracing_subscriber::EnvFilter;

use crate::keys::redact;

/// Starts the log: warnings by default, then info, debug and trace with `-v`,
/// `-vv`, `-vvv`; and makes a panic's message pass through the redactor too.
pub fn init(verbosity: u8) {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !redact::active() {
            return default_hook(info);
        }
        let payload = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("Box<dyn Any>");
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("byok-flow panicked{at}: {}", redact::text(payload));
    }));
    let level = match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::new(format!("byok_flow={level},warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Redacting(Vec::new()))
        .with_target(false)
        .try_init();
}

/// One log event, held until it is complete, then redacted and written to stderr.
struct Redacting(Vec<u8>);

impl Write for Redacting {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Redacting {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let _ = std::io::stderr().write_all(redact::text(&text).as_bytes());
    }
}
