//! Progress of a dataset run on stderr: rows done out of the total, failed rows,
//! dollars so far, the rate and the time left. On a terminal, a bar (indicatif);
//! elsewhere (CI logs, pipes) a plain line every [`EVERY`] and at the end. The
//! first failed rows are named as they are told, with their errors.

use std::io::Write;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::dataset::record::{RowResult, RowStatus};
use crate::events::{Event, Subscriber};
use crate::printable;

/// How often the plain progress line is printed.
pub const EVERY: Duration = Duration::from_secs(10);

/// How many failed rows are named as they come (the results have them all).
const NAMED: u64 = 20;

/// Counts of the rows told so far.
struct Tally {
    start: Instant,
    total: Option<u64>,
    done: u64,
    failed: u64,
    /// Dollars of the rows told (priced calls only).
    spent: f64,
    unpriced: bool,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            start: Instant::now(),
            total: None,
            done: 0,
            failed: 0,
            spent: 0.0,
            unpriced: false,
        }
    }
}

impl Tally {
    fn add(&mut self, result: &RowResult) {
        self.done += 1;
        self.failed += u64::from(result.status == RowStatus::Failed);
        match result.cost_usd {
            Some(usd) => self.spent += usd,
            None => self.unpriced = true,
        }
    }

    fn dollars(&self) -> String {
        let spent = format!("${:.4}", self.spent);
        if self.unpriced {
            format!(">= {spent}")
        } else {
            spent
        }
    }

    /// `1200/10000 rows, 20 failed, $0.1234, 240 rows/s, about 37s left`
    fn line(&self) -> String {
        let seconds = self.start.elapsed().as_secs_f64();
        let rate = if seconds > 0.0 {
            self.done as f64 / seconds
        } else {
            0.0
        };
        let mut text = match self.total {
            Some(total) => format!("{}/{total} rows", self.done),
            None => format!("{} rows", self.done),
        };
        text.push_str(&format!(
            ", {} failed, {}, {rate:.1} rows/s",
            self.failed,
            self.dollars()
        ));
        if let Some(total) = self.total.filter(|_| rate > 0.0) {
            let left = total.saturating_sub(self.done) as f64 / rate;
            if self.done < total {
                text.push_str(&format!(", about {} left", duration(left)));
            }
        }
        text
    }
}

/// `37s`, `4m10s`, `2h05m`.
fn duration(seconds: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let s = seconds.round().max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// The line that names a failed row; its error can quote a server, so control
/// characters are shown escaped.
pub fn failed_line(result: &RowResult) -> String {
    let Some(error) = &result.error else {
        return format!("row {} failed", result.row);
    };
    let place = match error.record {
        Some(record) => format!("record {record}, line {}", error.line),
        None => format!("line {}", error.line),
    };
    let agent = error
        .agent
        .as_ref()
        .map_or_else(String::new, |a| format!("{a}: "));
    format!(
        "row {} ({place}) failed: {}{}",
        result.row,
        printable::escape(&agent),
        printable::escape(&error.message)
    )
}

/// Plain lines, for logs.
pub struct Plain {
    tally: Tally,
    last: Instant,
}

impl Default for Plain {
    fn default() -> Self {
        Plain {
            tally: Tally::default(),
            last: Instant::now(),
        }
    }
}

impl Plain {
    fn print(&self, line: &str) -> std::io::Result<()> {
        let elapsed = self.tally.start.elapsed().as_secs_f64();
        writeln!(std::io::stderr().lock(), "[{elapsed:7.2}s] {line}")
    }
}

impl Subscriber for Plain {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        match event {
            Event::RowsStarted { rows, agents, .. } => {
                self.tally = Tally {
                    total: *rows,
                    ..Tally::default()
                };
                self.last = Instant::now();
                let rows =
                    rows.map_or_else(|| "rows as they come".to_string(), |n| format!("{n} rows"));
                self.print(&format!(
                    "started  {rows}, {} each",
                    crate::workflow::diagnostic::counted(agents.len(), "agent")
                ))
            }
            Event::RowFinished { result, .. } => {
                self.tally.add(result);
                if result.status == RowStatus::Failed && self.tally.failed <= NAMED {
                    self.print(&format!("failed   {}", failed_line(result)))?;
                    if self.tally.failed == NAMED {
                        self.print("failed   (more failed rows are not named here; the results have them all)")?;
                    }
                }
                if self.last.elapsed() >= EVERY {
                    self.last = Instant::now();
                    self.print(&format!("rows     {}", self.tally.line()))?;
                }
                Ok(())
            }
            Event::RowsFinished { record } => self.print(&format!(
                "finished {} in {:.2}s, {}",
                super::table::counts(&record.rows),
                record.seconds,
                self.tally.dollars()
            )),
            Event::Warning { message } => {
                self.print(&format!("warning  {}", printable::escape(message)))
            }
            _ => Ok(()),
        }
    }
}

/// A progress bar, for a terminal.
pub struct Live {
    tally: Tally,
    bar: ProgressBar,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            tally: Tally::default(),
            bar: ProgressBar::hidden(),
        }
    }
}

impl Subscriber for Live {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        match event {
            Event::RowsStarted { rows, .. } => {
                self.tally = Tally {
                    total: *rows,
                    ..Tally::default()
                };
                let (bar, template) = match rows {
                    Some(total) => (
                        ProgressBar::with_draw_target(Some(*total), ProgressDrawTarget::stderr()),
                        "{spinner} rows {pos}/{len} {wide_bar} {msg} · {per_sec} · ETA {eta}",
                    ),
                    None => (
                        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
                        "{spinner} rows {pos} {msg} · {per_sec} · {elapsed}",
                    ),
                };
                let style = ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
                bar.set_style(style);
                bar.enable_steady_tick(Duration::from_millis(100));
                self.bar = bar;
            }
            Event::RowFinished { result, .. } => {
                self.tally.add(result);
                self.bar.inc(1);
                self.bar.set_message(format!(
                    "{} failed, {}",
                    self.tally.failed,
                    self.tally.dollars()
                ));
                if result.status == RowStatus::Failed && self.tally.failed <= NAMED {
                    self.bar.println(format!("✗ {}", failed_line(result)));
                }
            }
            Event::RowsFinished { .. } => self.bar.finish_and_clear(),
            Event::Warning { message } => self
                .bar
                .println(format!("warning: {}", printable::escape(message))),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use indexmap::IndexMap;

    use super::*;
    use crate::dataset::record::RowError;

    fn row(row: u64, status: RowStatus, cost: Option<f64>) -> RowResult {
        RowResult {
            row,
            status,
            outputs: IndexMap::new(),
            cost_usd: cost,
            seconds: 0.0,
            error: None,
        }
    }

    #[test]
    fn the_line_has_rows_failures_dollars_rate_and_time_left() {
        let mut tally = Tally {
            start: Instant::now().checked_sub(Duration::from_secs(10)).unwrap(),
            total: Some(100),
            ..Tally::default()
        };
        for n in 0..20 {
            let status = if n % 10 == 0 {
                RowStatus::Failed
            } else {
                RowStatus::Succeeded
            };
            tally.add(&row(n, status, Some(0.001)));
        }
        let line = tally.line();
        assert!(
            line.starts_with("20/100 rows, 2 failed, $0.0200, 2.0 rows/s, about 4"),
            "{line}"
        );
        assert!(line.ends_with(" left"), "{line}");
        // An unpriced row makes the dollars a lower bound; stdin has no total.
        tally.add(&row(20, RowStatus::Succeeded, None));
        tally.total = None;
        let line = tally.line();
        assert!(
            line.starts_with("21 rows, 2 failed, >= $0.0200, "),
            "{line}"
        );
        assert!(!line.contains("left"), "{line}");
    }

    #[test]
    fn durations_read_as_seconds_minutes_hours() {
        assert_eq!(duration(0.4), "0s");
        assert_eq!(duration(37.0), "37s");
        assert_eq!(duration(250.0), "4m10s");
        assert_eq!(duration(7500.0), "2h05m");
        assert_eq!(duration(f64::NAN), "0s");
    }

    #[test]
    fn a_failed_row_is_named_with_its_place_agent_and_error() {
        let mut result = row(4, RowStatus::Failed, Some(0.0));
        result.error = Some(RowError {
            line: 7,
            record: Some(4),
            agent: Some("writer[3]".into()),
            message: "anthropic: 529 overloaded".into(),
            hint: None,
        });
        assert_eq!(
            failed_line(&result),
            "row 4 (record 4, line 7) failed: writer[3]: anthropic: 529 overloaded"
        );
        // A server's words cannot drive the terminal.
        result.error.as_mut().unwrap().message = "boom \u{1b}[2J\u{1b}]0;pwned\u{7}".into();
        let line = failed_line(&result);
        assert!(
            !line.contains('\u{1b}') && !line.contains('\u{7}'),
            "{line:?}"
        );
        assert!(
            line.ends_with("boom \\x1b[2J\\x1b]0;pwned\\x07"),
            "{line:?}"
        );
    }
}
