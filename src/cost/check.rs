//! The validation checks the price table answers, each at the model's place in
//! the file: a model the prices do not cover (SPEC §2: "a warning when it is
//! merely unpriced"), and one its provider deprecated or retired (SPEC §10).

use super::lifecycle::{self, Status};
use super::prices::{PriceTable, Pricing};
use crate::suggest;
use crate::workflow::Checked;
use crate::workflow::diagnostic::{Diagnostic, Span};
use crate::workflow::tree::escape;

/// Every model of every agent (its own, then its fallbacks), with the JSON pointer
/// of its place in the file.
fn models(checked: &Checked) -> impl Iterator<Item = (&String, String, &String)> {
    checked.workflow.agents.iter().flat_map(|(name, agent)| {
        std::iter::once((
            name,
            format!("/agents/{}/model", escape(name)),
            &agent.model,
        ))
        .chain(
            agent
                .fallback
                .iter()
                .enumerate()
                .map(move |(i, m)| (name, format!("/agents/{}/fallback/{i}", escape(name)), m)),
        )
    })
}

/// Which models [`retirements`] speaks of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retirements {
    /// A retired model is a warning, not an error: a gateway still serves it.
    pub allow_retired: bool,
    /// Warn about deprecated models too (`validate`; a run only refuses retired ones).
    pub deprecated: bool,
}

/// An error for each retired model (a warning with `allow_retired`, for a gateway
/// that still serves it) and, when asked, a warning for each deprecated one, naming
/// its retirement date and successor.
pub fn retirements(checked: &Checked, table: &PriceTable, which: Retirements) -> Vec<Diagnostic> {
    let allow_retired = which.allow_retired;
    let pricing = Pricing {
        table,
        workflow: &checked.workflow,
        mock: false,
    };
    let today = lifecycle::today();
    let mut out = Vec::new();
    for (name, pointer, model) in models(checked) {
        let Some(r) = lifecycle::of(&pricing, model, &today) else {
            continue;
        };
        if r.status == Status::Deprecated && !which.deprecated {
            continue;
        }
        let (pos, len) = checked.index().value(&pointer);
        let span = Span::at(pos, len);
        let d = match r.status {
            Status::Retired if !allow_retired => Diagnostic::error(
                "workflow::retired-model",
                span,
                format!("{} {}: requests to it fail", r.named(), r.what()),
            )
            .help(format!(
                "{}; or, if a gateway still serves it, pass `--allow-retired`",
                r.instead()
            )),
            Status::Retired => Diagnostic::warning(
                "workflow::retired-model",
                span,
                format!(
                    "{} {}; called anyway (`--allow-retired`)",
                    r.named(),
                    r.what()
                ),
            )
            .help(r.instead()),
            Status::Deprecated => Diagnostic::warning(
                "workflow::deprecated-model",
                span,
                format!("{} {}", r.named(), r.what()),
            )
            .help(format!("{}, before then", r.instead())),
        };
        out.push(d.agent(name));
    }
    out
}

/// A warning for each model and fallback model that nothing prices.
pub fn unpriced(checked: &Checked, table: &PriceTable) -> Vec<Diagnostic> {
    let pricing = Pricing {
        table,
        workflow: &checked.workflow,
        mock: false,
    };
    let mut out = Vec::new();
    let mut typos: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    for (name, agent) in &checked.workflow.agents {
        let models = std::iter::once((String::from("model"), &agent.model)).chain(
            agent
                .fallback
                .iter()
                .enumerate()
                .map(|(i, m)| (format!("fallback/{i}"), m)),
        );
        for (field, model) in models {
            if pricing.resolve(model).is_some() {
                continue;
            }
            let Some((provider, id)) = model.split_once('/') else {
                continue;
            };
            let (pos, len) = checked
                .index()
                .value(&format!("/agents/{}/{field}", escape(name)));
            // Once per provider and model: 10,000 agents on one unpriced model
            // must not compare it with the whole table 10,000 times.
            let typo = typos
                .entry(model.as_str())
                .or_insert_with(|| {
                    let prefix = format!("{provider}/");
                    let known = table
                        .models
                        .keys()
                        .chain(table.aliases.keys())
                        .filter_map(|k| k.strip_prefix(&prefix));
                    suggest::did_you_mean(id, known).map_or(String::new(), |s| format!("{s} Or "))
                })
                .clone();
            out.push(
                Diagnostic::warning(
                    "cost::unpriced",
                    Span::at(pos, len),
                    format!("`{model}` has no price, so its cost is unknown: estimates show it as unpriced and their totals are lower bounds, and a budget cannot be enforced"),
                )
                .agent(name)
                .help(format!(
                    "{typo}add it under `providers: {{{provider}: {{pricing: {{{id}: {{input: 1.0, output: 2.0}}}}}}}}` (dollars per million tokens), or pass `--prices FILE`"
                )),
            );
        }
    }
    out
}
