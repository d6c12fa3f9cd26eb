//! What a change to a workflow does to its cost (`estimate --diff REF`): the
//! estimate of the workflow before and after, agent by agent (added, removed,
//! changed or unchanged; model, expected and maximum dollars on each side), and
//! the change of the totals in dollars and percent. Where the file comes from
//! (git) is the command's business; this compares two estimates.

use serde::Serialize;

use super::Usd;
use super::estimate::{AgentEstimate, Estimate};
use crate::workflow::Workflow;

/// How an agent changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Added,
    Removed,
    /// Its definition, or what it is estimated to cost, changed.
    Changed,
    Unchanged,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
            Change::Unchanged => "unchanged",
        }
    }
}

/// One side of an agent: its model and estimate.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// `PROVIDER/MODEL`.
    pub model: String,
    /// `null` when unpriced.
    pub expected_usd: Option<Usd>,
    /// `null` when unpriced or unbounded.
    pub max_usd: Option<Usd>,
}

impl Side {
    fn of(estimate: &AgentEstimate) -> Side {
        Side {
            model: estimate.model.clone(),
            expected_usd: estimate.expected_usd,
            max_usd: estimate.max_usd,
        }
    }
}

/// One agent, before and after.
#[derive(Debug, Clone, Serialize)]
pub struct AgentDiff {
    pub name: String,
    pub change: Change,
    pub before: Option<Side>,
    pub after: Option<Side>,
}

/// A whole run's estimate on one side.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    pub expected_usd: Usd,
    pub max_usd: Usd,
    /// Agents whose model is unpriced: the totals leave them out.
    pub unpriced: Vec<String>,
    /// Agents with no bound on their output: `max_usd` leaves them out.
    pub unbounded: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
}

impl Totals {
    fn of(estimate: &Estimate) -> Totals {
        Totals {
            expected_usd: estimate.total.expected_usd,
            max_usd: estimate.total.max_usd,
            unpriced: estimate.total.unpriced.clone(),
            unbounded: estimate.total.unbounded.clone(),
            budget_usd: estimate.budget_usd,
        }
    }

    fn empty() -> Totals {
        Totals {
            expected_usd: Usd::ZERO,
            max_usd: Usd::ZERO,
            unpriced: Vec::new(),
            unbounded: Vec::new(),
            budget_usd: None,
        }
    }
}

/// The change of an amount.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Delta {
    /// After minus before, in dollars.
    pub usd: f64,
    /// The change in percent of before; `null` when before was $0.
    pub percent: Option<f64>,
}

impl Delta {
    pub fn between(before: Usd, after: Usd) -> Delta {
        let (b, a) = (before.dollars(), after.dollars());
        Delta {
            usd: ((a - b) * 1e6).round() / 1e6,
            percent: (before > Usd::ZERO).then(|| ((a - b) / b * 1000.0).round() / 10.0),
        }
    }
}

/// The comparison of a workflow at a git ref with the working tree.
#[derive(Debug, Clone, Serialize)]
pub struct Diff {
    /// The workflow file, as given.
    pub file: String,
    /// The git ref compared with.
    pub base: String,
    pub agents: Vec<AgentDiff>,
    /// `null` when the file did not exist at the ref.
    pub before: Option<Totals>,
    /// `null` when the file no longer exists.
    pub after: Option<Totals>,
    pub expected: Delta,
    pub max: Delta,
    /// Where prices come from.
    pub prices: String,
    /// Required inputs that had no value and were estimated as empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub empty_inputs: Vec<String>,
}

/// One side of the comparison: the workflow and its estimate.
pub struct Version<'a> {
    pub workflow: &'a Workflow,
    pub estimate: &'a Estimate,
}

/// Compares `before` (at `base`) with `after`; either may be missing (the file
/// was added or removed). Agents are listed in the order of `after`, then the
/// removed ones in the order of `before`.
pub fn diff(
    file: &str,
    base: &str,
    before: Option<Version<'_>>,
    after: Option<Version<'_>>,
    prices: String,
    empty_inputs: Vec<String>,
) -> Diff {
    fn find<'a>(
        v: Option<&Version<'a>>,
        name: &str,
    ) -> Option<(Option<&'a crate::workflow::Agent>, &'a AgentEstimate)> {
        let v = v?;
        let estimate = v.estimate.agents.iter().find(|a| a.name == name)?;
        Some((v.workflow.agents.get(name), estimate))
    }
    let mut agents = Vec::new();
    let mut names: Vec<&str> = after
        .iter()
        .flat_map(|v| v.estimate.agents.iter().map(|a| a.name.as_str()))
        .collect();
    for name in before
        .iter()
        .flat_map(|v| v.estimate.agents.iter().map(|a| a.name.as_str()))
    {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in names {
        let (old, new) = (find(before.as_ref(), name), find(after.as_ref(), name));
        let change = match (&old, &new) {
            (None, _) => Change::Added,
            (_, None) => Change::Removed,
            (Some((old_spec, old_est)), Some((new_spec, new_est))) => {
                let spec = |s: Option<&crate::workflow::Agent>| {
                    s.and_then(|a| serde_json::to_value(a).ok())
                };
                if spec(*old_spec) != spec(*new_spec)
                    || old_est.model != new_est.model
                    || old_est.expected_usd != new_est.expected_usd
                    || old_est.max_usd != new_est.max_usd
                {
                    Change::Changed
                } else {
                    Change::Unchanged
                }
            }
        };
        agents.push(AgentDiff {
            name: name.to_string(),
            change,
            before: old.map(|(_, e)| Side::of(e)),
            after: new.map(|(_, e)| Side::of(e)),
        });
    }
    let before = before.map(|v| Totals::of(v.estimate));
    let after = after.map(|v| Totals::of(v.estimate));
    let (b, a) = (
        before.clone().unwrap_or_else(Totals::empty),
        after.clone().unwrap_or_else(Totals::empty),
    );
    Diff {
        file: file.to_string(),
        base: base.to_string(),
        agents,
        expected: Delta::between(b.expected_usd, a.expected_usd),
        max: Delta::between(b.max_usd, a.max_usd),
        before,
        after,
        prices,
        empty_inputs,
    }
}

impl Diff {
    /// Whether anything about the cost changed.
    pub fn is_unchanged(&self) -> bool {
        self.agents.iter().all(|a| a.change == Change::Unchanged)
            && self.expected.usd == 0.0
            && self.max.usd == 0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::prices::{PriceTable, Pricing};
    use crate::workflow::{Checked, load, validate};

    fn checked(yaml: &str) -> Checked {
        let (loaded, report) =
            load::load_source(std::path::Path::new("t.yaml"), std::sync::Arc::from(yaml)).unwrap();
        validate::check(loaded, report).unwrap().0
    }

    fn estimate_of(checked: &Checked, table: &PriceTable) -> Estimate {
        let pricing = Pricing {
            table,
            workflow: &checked.workflow,
            mock: false,
        };
        crate::cost::estimate::estimate(checked, &indexmap::IndexMap::new(), &pricing, None)
    }

    #[test]
    fn agents_are_added_removed_changed_or_unchanged() {
        let table = PriceTable::builtin();
        let old = checked(
            "version: 1\nagents:\n  a:\n    model: openai/gpt-4o\n    prompt: hi\n    max_tokens: 100\n  b:\n    model: openai/gpt-4o\n    prompt: bye\n    max_tokens: 100\n  c:\n    model: openai/gpt-4o-mini\n    prompt: same\n    max_tokens: 100\n",
        );
        let new = checked(
            "version: 1\nagents:\n  a:\n    model: openai/gpt-4o-mini\n    prompt: hi\n    max_tokens: 100\n  c:\n    model: openai/gpt-4o-mini\n    prompt: same\n    max_tokens: 100\n  d:\n    model: openai/gpt-4o\n    prompt: new\n    max_tokens: 100\n",
        );
        let (e_old, e_new) = (estimate_of(&old, &table), estimate_of(&new, &table));
        let d = diff(
            "t.yaml",
            "main",
            Some(Version {
                workflow: &old.workflow,
                estimate: &e_old,
            }),
            Some(Version {
                workflow: &new.workflow,
                estimate: &e_new,
            }),
            "test prices".into(),
            Vec::new(),
        );
        let changes: Vec<(&str, Change)> = d
            .agents
            .iter()
            .map(|a| (a.name.as_str(), a.change))
            .collect();
        assert_eq!(
            changes,
            [
                ("a", Change::Changed),
                ("c", Change::Unchanged),
                ("d", Change::Added),
                ("b", Change::Removed)
            ]
        );
        assert_eq!(d.agents[0].before.as_ref().unwrap().model, "openai/gpt-4o");
        assert_eq!(
            d.agents[0].after.as_ref().unwrap().model,
            "openai/gpt-4o-mini"
        );
        let (before, after) = (d.before.unwrap(), d.after.unwrap());
        let expected = Delta::between(before.expected_usd, after.expected_usd);
        assert!((d.expected.usd - expected.usd).abs() < 1e-12);
        assert!(d.expected.usd < 0.0, "gpt-4o-mini is cheaper");
        // A file that is new has everything added, and no percent.
        let added = diff(
            "t.yaml",
            "main",
            None,
            Some(Version {
                workflow: &new.workflow,
                estimate: &e_new,
            }),
            String::new(),
            Vec::new(),
        );
        assert!(added.agents.iter().all(|a| a.change == Change::Added));
        assert_eq!(added.expected.percent, None);
    }

    #[test]
    fn deltas_in_dollars_and_percent() {
        let d = Delta::between(Usd::from_dollars(0.04), Usd::from_dollars(0.05));
        assert!((d.usd - 0.01).abs() < 1e-12);
        assert_eq!(d.percent, Some(25.0));
        let d = Delta::between(Usd::ZERO, Usd::from_dollars(0.05));
        assert_eq!(d.percent, None, "no percent of nothing");
        let d = Delta::between(Usd::from_dollars(0.03), Usd::from_dollars(0.01));
        assert_eq!(d.percent, Some(-66.7));
    }
}
