//! Models the providers deprecate and retire (SPEC §10): the price table's
//! `deprecated` and `retired` dates and `successor` for each model, read as of
//! today. A deprecated model still answers, until its retirement date; a retired
//! one fails, except on a gateway that still serves it (`--allow-retired`).

use std::time::SystemTime;

use super::prices::{Entry, Pricing};
use crate::catalog::ProviderKind;
use crate::workflow::providers;

/// The most successors followed to reach one that is not retired itself.
const MAX_HOPS: usize = 8;

/// Where a model is in its provider's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Its retirement is announced: it still answers until the `retired` date.
    Deprecated,
    /// Past its retirement date: requests to it fail.
    Retired,
}

/// What the price table knows of a model that is deprecated or retired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// The model as the workflow names it (`anthropic/claude-3-5-sonnet-latest`).
    pub model: String,
    /// The table's row it resolves to, when that is another name.
    pub key: String,
    pub status: Status,
    /// When the retirement was announced.
    pub deprecated: Option<String>,
    /// When requests start (or started) to fail.
    pub retired: Option<String>,
    /// The first successor that is not retired itself, as this workflow would name
    /// it (on the same provider when the successor is of the same API).
    pub successor: Option<String>,
}

impl Retirement {
    /// What happened or will happen: "was retired on 2025-10-28",
    /// "is deprecated and retires on 2027-01-14".
    pub fn what(&self) -> String {
        let on = |date: &Option<String>| date.as_deref().map(|d| format!(" on {d}"));
        match self.status {
            Status::Retired => format!("was retired{}", on(&self.retired).unwrap_or_default()),
            Status::Deprecated => match &self.retired {
                Some(date) => format!("is deprecated and retires on {date}"),
                None => "is deprecated".to_string(),
            },
        }
    }

    /// "`gw/claude-3-5-sonnet-latest` (`anthropic/claude-3-5-sonnet-20241022` in the
    /// price table)" for a model found under another provider's name; the model
    /// alone otherwise.
    pub fn named(&self) -> String {
        let provider = |m: &str| m.split_once('/').map_or("", |(p, _)| p).to_string();
        if provider(&self.key) == provider(&self.model) {
            format!("`{}`", self.model)
        } else {
            format!("`{}` (`{}` in the price table)", self.model, self.key)
        }
    }

    /// What to move to: "use `anthropic/claude-sonnet-4-6`, its successor".
    pub fn instead(&self) -> String {
        match &self.successor {
            Some(s) => format!("use `{s}`, its successor"),
            None => "move to a current model (`byok-flow prices PROVIDER` lists them)".to_string(),
        }
    }

    /// One sentence for a provider's refusal of the model.
    pub fn note(&self) -> String {
        match self.status {
            Status::Retired => format!("{} {}: {}", self.named(), self.what(), self.instead()),
            Status::Deprecated => format!(
                "{} {}, and the provider may have stopped serving it already: {}",
                self.named(),
                self.what(),
                self.instead()
            ),
        }
    }
}

/// The environment variable that names the day retirements are judged on.
pub const AS_OF: &str = "BYOK_FLOW_TODAY";

/// Today, `YYYY-MM-DD` in UTC; or the day `BYOK_FLOW_TODAY` names, to see what
/// breaks on a day to come (the tests pin it, so no test fails on a calendar date).
/// A value that is not a day is refused by [`check_as_of`] before it is read here.
pub fn today() -> String {
    match std::env::var(AS_OF) {
        Ok(day) if is_date(&day) => day,
        _ => humantime::format_rfc3339_seconds(SystemTime::now()).to_string()[..10].to_string(),
    }
}

/// Whether `BYOK_FLOW_TODAY`, when set, is a day: what is wrong and how to fix it.
pub fn check_as_of() -> Result<(), (String, String)> {
    match std::env::var_os(AS_OF) {
        None => Ok(()),
        Some(day) if day.to_str().is_some_and(is_date) => Ok(()),
        Some(day) => Err((
            format!(
                "{AS_OF}={} is not a day",
                crate::printable::escape(&day.to_string_lossy())
            ),
            format!(
                "write it as YYYY-MM-DD, like 2027-01-14, or unset {AS_OF} to judge retirements as of today"
            ),
        )),
    }
}

/// Whether `text` is a `YYYY-MM-DD` date (compared as text, so the form matters).
pub fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

fn status(entry: &Entry, today: &str) -> Option<Status> {
    match (&entry.deprecated, &entry.retired) {
        (_, Some(retired)) if retired.as_str() <= today => Some(Status::Retired),
        (_, Some(_)) => Some(Status::Deprecated),
        (Some(deprecated), None) if deprecated.as_str() <= today => Some(Status::Deprecated),
        _ => None,
    }
}

/// The deprecation or retirement of `PROVIDER/MODEL` as of `today`, or `None` for
/// a model that is current, unknown to the table, or the mock's.
pub fn of(pricing: &Pricing, model: &str, today: &str) -> Option<Retirement> {
    let (provider, _) = model.split_once('/')?;
    if providers::kind(pricing.workflow, provider).ok()? == ProviderKind::Mock {
        return None;
    }
    let (key, entry) = pricing.table_row(model)?;
    let status = status(entry, today)?;
    Some(Retirement {
        model: model.to_string(),
        key: key.to_string(),
        status,
        deprecated: entry.deprecated.clone(),
        retired: entry.retired.clone(),
        successor: successor(pricing, entry, today).map(|s| as_named_by(provider, key, &s)),
    })
}

/// The first successor in the chain that is not retired itself (or the last one
/// named, when the table does not know where the chain goes).
fn successor(pricing: &Pricing, entry: &Entry, today: &str) -> Option<String> {
    let mut next = entry.successor.clone()?;
    for _ in 0..MAX_HOPS {
        let Some((_, row)) = pricing.table.get(&next) else {
            return Some(next);
        };
        match (status(row, today), &row.successor) {
            (Some(Status::Retired), Some(after)) => next.clone_from(after),
            _ => return Some(next),
        }
    }
    Some(next)
}

/// A successor as the workflow would name it: on the workflow's own provider when
/// the model was found under the same table provider (a gateway of that API).
fn as_named_by(provider: &str, key: &str, successor: &str) -> String {
    let table_provider = key.split_once('/').map_or("", |(p, _)| p);
    match successor.split_once('/') {
        Some((p, id)) if p == table_provider => format!("{provider}/{id}"),
        _ => successor.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::prices::PriceTable;

    fn workflow(yaml: &str) -> crate::workflow::Workflow {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn dates_and_status() {
        assert!(is_date("2026-02-19") && !is_date("2026-2-19") && !is_date("soon"));
        let entry = |deprecated: Option<&str>, retired: Option<&str>| Entry {
            deprecated: deprecated.map(str::to_string),
            retired: retired.map(str::to_string),
            ..Entry::default()
        };
        let today = "2026-11-29";
        assert_eq!(
            status(&entry(None, Some("2025-10-28")), today),
            Some(Status::Retired)
        );
        assert_eq!(
            status(&entry(None, Some(today)), today),
            Some(Status::Retired)
        );
        assert_eq!(
            status(&entry(None, Some("2027-01-14")), today),
            Some(Status::Deprecated)
        );
        assert_eq!(
            status(&entry(Some("2026-10-14"), None), today),
            Some(Status::Deprecated)
        );
        assert_eq!(status(&entry(Some("2027-06-01"), None), today), None);
        assert_eq!(status(&entry(None, None), today), None);
    }

    /// Issue 14 item 7: the example that failed on its first real run.
    #[test]
    fn claude_3_5_sonnet_is_retired_with_a_current_successor() {
        let table = PriceTable::builtin();
        let w = workflow(
            "version: 1\nproviders:\n  gw: {type: anthropic, base_url: 'https://gw.example'}\nagents: {}\n",
        );
        let pricing = Pricing {
            table: &table,
            workflow: &w,
            mock: false,
        };
        let r = of(&pricing, "anthropic/claude-3-5-sonnet-latest", "2026-11-29").unwrap();
        assert_eq!(r.status, Status::Retired);
        assert_eq!(r.retired.as_deref(), Some("2025-10-28"));
        assert_eq!(r.key, "anthropic/claude-3-5-sonnet-20241022");
        assert_eq!(r.successor.as_deref(), Some("anthropic/claude-sonnet-4-6"));
        // Through a gateway of the same API, the successor keeps the gateway's name.
        let r = of(&pricing, "gw/claude-3-5-sonnet-latest", "2026-11-29").unwrap();
        assert_eq!(r.successor.as_deref(), Some("gw/claude-sonnet-4-6"));
        assert!(of(&pricing, "anthropic/claude-sonnet-4-6", "2026-11-29").is_none());
        assert!(of(&pricing, "mock/claude-3-5-sonnet-latest", "2026-11-29").is_none());
        // Before its retirement date the same model was only deprecated.
        let r = of(&pricing, "anthropic/claude-3-5-sonnet-latest", "2025-09-01").unwrap();
        assert_eq!(r.status, Status::Deprecated);
        assert_eq!(r.what(), "is deprecated and retires on 2025-10-28");
    }

    #[test]
    fn successor_chains_skip_retired_models() {
        let table = PriceTable::parse(
            r#"{"models": {
                "p/a": {"input": 1, "output": 1, "retired": "2020-01-01", "successor": "p/b"},
                "p/b": {"input": 1, "output": 1, "retired": "2021-01-01", "successor": "p/c"},
                "p/c": {"input": 1, "output": 1},
                "p/loop": {"input": 1, "output": 1, "retired": "2020-01-01", "successor": "p/loop"}
            }}"#,
        )
        .unwrap();
        let w = workflow(
            "version: 1\nproviders:\n  p: {type: openai-compatible, base_url: 'https://p.example/v1'}\nagents: {}\n",
        );
        let pricing = Pricing {
            table: &table,
            workflow: &w,
            mock: false,
        };
        let r = of(&pricing, "p/a", "2026-01-01").unwrap();
        assert_eq!(r.successor.as_deref(), Some("p/c"));
        assert_eq!(
            of(&pricing, "p/loop", "2026-01-01")
                .unwrap()
                .successor
                .as_deref(),
            Some("p/loop")
        );
    }
}
