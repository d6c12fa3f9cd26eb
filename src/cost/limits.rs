//! The validation error for a `max_tokens` above what a model can write, by the
//! price table's output limit: the provider would refuse the call (a 400), after
//! the agents before it were paid for.

use super::prices::{PriceTable, Pricing};
use crate::workflow::Checked;
use crate::workflow::diagnostic::{Diagnostic, Span};
use crate::workflow::tree::escape;

/// An error for each agent whose `max_tokens` (its own or from `defaults:`) is
/// above the output limit of its model or of a fallback model.
pub fn over_output_limit(checked: &Checked, table: &PriceTable) -> Vec<Diagnostic> {
    let w = &checked.workflow;
    let pricing = Pricing {
        table,
        workflow: w,
        mock: false,
    };
    let mut out = Vec::new();
    for (name, agent) in &w.agents {
        let (max_tokens, pointer) = match (agent.max_tokens, w.defaults.max_tokens) {
            (Some(own), _) => (own, format!("/agents/{}/max_tokens", escape(name))),
            (None, Some(default)) => (default, "/defaults/max_tokens".to_string()),
            (None, None) => continue,
        };
        for model in std::iter::once(&agent.model).chain(&agent.fallback) {
            let Some(limit) = pricing.resolve(model).and_then(|r| r.price.max_output) else {
                continue;
            };
            if u64::from(max_tokens) <= limit {
                continue;
            }
            let (pos, len) = checked.index().value(&pointer);
            out.push(
                Diagnostic::error(
                    "workflow::max-tokens",
                    Span::at(pos, len),
                    format!(
                        "`max_tokens` is {max_tokens}, above the {limit} output tokens `{model}` can write"
                    ),
                )
                .agent(name)
                .help(format!(
                    "lower `max_tokens` to {limit} or less (the provider refuses more); the limit is the price table's (`byok-flow prices {model}`)"
                )),
            );
            break;
        }
    }
    out
}
