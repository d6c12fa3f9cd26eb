//! The validation warning for a model the prices do not cover (SPEC §2: "a
//! warning when it is merely unpriced"), at the model's place in the file.

use super::prices::{PriceTable, Pricing};
use crate::suggest;
use crate::workflow::Checked;
use crate::workflow::diagnostic::{Diagnostic, Span};
use crate::workflow::tree::escape;

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
                .index
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
