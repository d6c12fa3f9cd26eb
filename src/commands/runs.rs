//! `byok-flow runs`: past runs from the history: `list`, `show RUN_ID` (the closing
//! table as it was at the end of the run) and `spend` per provider, model or
//! workflow. Results go to stdout; the work lives in `crate::history`.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Subcommand;
use serde::Serialize;

use crate::error::{Error, Exit, Result};
use crate::history::{self, Group, Store};
use crate::report::runs as render;
use crate::settings::Global;

use super::batches;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: RunsCommand,

    /// The run history [default: `history.sqlite` in `$XDG_DATA_HOME/byok-flow` or
    /// `~/.local/share/byok-flow` (`~/Library/Application Support/byok-flow` on macOS)].
    #[arg(long, value_name = "FILE", env = "BYOK_FLOW_HISTORY", global = true)]
    pub history: Option<PathBuf>,

    /// The answer cache, beside which batch runs keep their state [default: as for `run`].
    #[arg(long, value_name = "DIR", env = "BYOK_FLOW_CACHE_DIR", global = true)]
    pub cache_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// The most recent runs, newest first.
    List {
        /// How many runs to show.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One run: its status and the closing table as it was at the end of the run.
    Show {
        /// The run's id (as `runs list` shows it), or the start of it.
        run_id: String,
        /// Print the kept run record as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Collect a batch run (`run --batch`, detached or interrupted): its command
    /// again, which waits on its batches (never submitting them again) and goes on.
    Resume {
        /// The run's id (as `runs list` shows it under pending batches).
        run_id: String,
        /// Collect what is ready, submit the next batches, and exit without waiting.
        #[arg(long)]
        detach: bool,
    },
    /// Cancel a batch run's pending batches at the providers.
    Cancel {
        /// The run's id (as `runs list` shows it under pending batches).
        run_id: String,
        /// The `.byok` folder [default: the first `.byok/` in the workflow's folder or above].
        #[arg(long = "keys", value_name = "DIR")]
        keys_dir: Option<PathBuf>,
    },
    /// Dollars and tokens spent per provider, model or workflow (cached agents cost nothing).
    Spend {
        /// Runs started on or after this day, `YYYY-MM-DD` (UTC), or in the last N days,
        /// `30d` [default: the first of this month].
        #[arg(long, value_name = "DATE")]
        since: Option<String>,
        /// What to add up by.
        #[arg(long, value_enum, default_value_t = By::Provider)]
        by: By,
        /// Count `--mock` runs too (left out by default: they cost nothing).
        #[arg(long)]
        include_mock: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `--by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    Provider,
    Model,
    Workflow,
}

pub fn run(args: &Args, global: Global) -> Result<Exit> {
    // Batch runs' state is beside the cache, not in the history.
    match &args.command {
        RunsCommand::Resume { run_id, detach } => {
            let states = batches::states(args.cache_dir.as_deref())?;
            batches::resume(&states, run_id, *detach)
        }
        RunsCommand::Cancel { run_id, keys_dir } => {
            let states = batches::states(args.cache_dir.as_deref())?;
            batches::cancel(&states, run_id, keys_dir.as_deref(), global)
        }
        _ => history_command(args),
    }
}

fn history_command(args: &Args) -> Result<Exit> {
    let path = match &args.history {
        Some(path) => path.clone(),
        None => history::default_file().ok_or_else(|| {
            Error::usage("cannot tell where the run history is: no home folder")
                .hint("pass `--history FILE` or set BYOK_FLOW_HISTORY")
        })?,
    };
    let store =
        Store::open_existing(&path).map_err(|e| Error::new(Exit::AgentFailed, e.to_string()))?;
    let failed = |e: history::HistoryError| Error::new(Exit::AgentFailed, e.to_string());
    let text = match &args.command {
        RunsCommand::List { limit, json } => {
            let runs = match &store {
                Some(store) => store.list(*limit).map_err(failed)?,
                None => Vec::new(),
            };
            if *json {
                to_json(&runs)?
            } else {
                let mut text = render::list(&runs);
                if let Ok(states) = batches::states(args.cache_dir.as_deref()) {
                    text.push_str(&batches::pending_text(&states));
                }
                text
            }
        }
        RunsCommand::Show { run_id, json } => {
            let store = store.as_ref().ok_or_else(|| not_found(run_id))?;
            let ids = store.find(run_id).map_err(failed)?;
            let id = match ids.as_slice() {
                [] => return Err(not_found(run_id)),
                [id] => id,
                many => {
                    let shown = many.len().min(crate::suggest::MAX_SUGGESTIONS);
                    let mut listed = many[..shown].join(", ");
                    if many.len() > shown {
                        listed.push_str(&format!(" and {} more", many.len() - shown));
                    }
                    return Err(Error::usage(format!(
                        "`{run_id}` is the start of {} run ids: {listed}",
                        many.len()
                    ))
                    .hint("give more of the id (`byok-flow runs list` shows them)"));
                }
            };
            let (summary, record) = store
                .show(id)
                .map_err(failed)?
                .ok_or_else(|| not_found(run_id))?;
            if summary.rows.is_some() {
                let agents = store.aggregates_of(id).map_err(failed)?;
                if *json {
                    to_json(&RowsRun {
                        run: &summary,
                        agents: &agents,
                    })?
                } else {
                    render::show_rows(&summary, &agents)
                }
            } else if *json {
                to_json(&record)?
            } else {
                render::show(&summary, &record)
            }
        }
        RunsCommand::Resume { .. } | RunsCommand::Cancel { .. } => {
            unreachable!("batch commands are run above")
        }
        RunsCommand::Spend {
            since,
            by,
            include_mock,
            json,
        } => {
            let since = Since::parse(since.as_deref(), SystemTime::now())?;
            let group = match by {
                By::Provider => Group::Provider,
                By::Model => Group::Model,
                By::Workflow => Group::Workflow,
            };
            let rows = match &store {
                Some(store) => store
                    .spend(since.unix, group, *include_mock)
                    .map_err(failed)?,
                None => Vec::new(),
            };
            if *json {
                to_json(&Spend {
                    since: &since.date,
                    by: group_name(group),
                    include_mock: *include_mock,
                    groups: &rows,
                })?
            } else {
                render::spend(&rows, &since.label, group_name(group), *include_mock)
            }
        }
    };
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(Error::new(
            Exit::AgentFailed,
            format!("cannot write the results: {e}"),
        )),
        _ => Ok(Exit::Success),
    }
}

/// A dataset run as `runs show --json` prints it.
#[derive(Serialize)]
struct RowsRun<'a> {
    run: &'a history::RunSummary,
    agents: &'a [crate::dataset::record::AgentAggregate],
}

#[derive(Serialize)]
struct Spend<'a> {
    since: &'a str,
    by: &'a str,
    include_mock: bool,
    groups: &'a [history::SpendRow],
}

fn group_name(group: Group) -> &'static str {
    match group {
        Group::Provider => "provider",
        Group::Model => "model",
        Group::Workflow => "workflow",
    }
}

fn not_found(run_id: &str) -> Error {
    Error::usage(format!("no run `{run_id}` in the history"))
        .hint("`byok-flow runs list` shows the recent runs and their ids")
}

fn to_json(value: &impl Serialize) -> Result<String> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::new(Exit::AgentFailed, format!("cannot write JSON: {e}")))?;
    text.push('\n');
    Ok(text)
}

/// The start of a `spend` period.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Since {
    /// Seconds since the epoch.
    unix: i64,
    /// The first day, `YYYY-MM-DD`.
    date: String,
    /// How the period is named in the table's title.
    label: String,
}

impl Since {
    /// `YYYY-MM-DD`, `Nd`, or nothing for the first of `now`'s month (all UTC).
    fn parse(text: Option<&str>, now: SystemTime) -> Result<Since> {
        let day =
            |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string()[..10].to_string();
        let at = |date: &str| -> Option<i64> {
            let t = humantime::parse_rfc3339(&format!("{date}T00:00:00Z")).ok()?;
            i64::try_from(t.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()
        };
        let bad = |text: &str| {
            Error::usage(format!("`--since {text}` is not a date")).hint(
                "write a day as YYYY-MM-DD (like 2025-01-31), or a number of days back like 30d",
            )
        };
        match text.map(str::trim) {
            None => {
                let date = format!("{}-01", &day(now)[..7]);
                let unix = at(&date).ok_or_else(|| bad(&date))?;
                Ok(Since {
                    label: format!("this month (since {date}, UTC)"),
                    unix,
                    date,
                })
            }
            Some(t) if t.ends_with('d') => {
                let days: u64 = t[..t.len() - 1].parse().map_err(|_| bad(t))?;
                let start = now
                    .checked_sub(Duration::from_secs(days.saturating_mul(86_400)))
                    .unwrap_or(UNIX_EPOCH);
                let unix = i64::try_from(
                    start
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_secs(),
                )
                .unwrap_or_default();
                Ok(Since {
                    label: format!(
                        "the last {days} days (since {})",
                        humantime::format_rfc3339_seconds(start)
                    ),
                    unix,
                    date: day(start),
                })
            }
            Some(t) => {
                let unix = at(t).filter(|_| t.len() == 10).ok_or_else(|| bad(t))?;
                Ok(Since {
                    label: format!("{t} (UTC)"),
                    unix,
                    date: t.to_string(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_day_a_number_of_days_or_this_month() {
        // 2025-03-17T10:00:00Z
        let now = UNIX_EPOCH + Duration::from_hours(483_946);
        let month = Since::parse(None, now).unwrap();
        assert_eq!(month.date, "2025-03-01");
        assert_eq!(month.unix, 1_740_787_200);
        let day = Since::parse(Some("2025-03-10"), now).unwrap();
        assert_eq!(day.unix, 1_741_564_800);
        let days = Since::parse(Some("7d"), now).unwrap();
        assert_eq!(days.unix, 1_742_205_600 - 7 * 86_400);
        assert_eq!(days.date, "2025-03-10");
        for bad in [
            "yesterday",
            "2025-13-01",
            "2025-3-1",
            "d",
            "-3d",
            "2025-03-10T00:00:00Z",
        ] {
            assert!(Since::parse(Some(bad), now).is_err(), "{bad}");
        }
    }
}
