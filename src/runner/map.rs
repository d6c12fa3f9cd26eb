//! Map agents in a run: reading a map agent's list (from its row's inputs or an
//! upstream agent's JSON), refusing more items than `max_items`, and the template
//! context of one item (`item`, `item_index`) and of agents downstream of a map
//! agent (`agents.NAME.outputs` and `agents.NAME.json` as lists).

use std::sync::Arc;

use serde_json::{Map, Value as Json};

use super::{AgentOutput, AgentRunner};
use crate::workflow::map::{self, Source, kind};

/// A map agent's list: where it comes from, and the most items it may have.
#[derive(Debug, Clone)]
pub struct List {
    pub source: Source,
    /// The source agent's index, for a list from an agent.
    pub from: Option<usize>,
    pub max_items: Option<u32>,
}

impl AgentRunner {
    /// The items of map agent `agent` in a row with `inputs`; `None` for an agent
    /// that is one call. A list that is not one, or is over `max_items`, fails the
    /// agent before any call.
    pub(super) fn list_items(
        &self,
        inputs: &Json,
        agent: usize,
        upstream: &[(usize, Arc<AgentOutput>)],
    ) -> Result<Option<Vec<Json>>, String> {
        let Some(list) = &self.lists[agent] else {
            return Ok(None);
        };
        let fail = |message: String| Err(message);
        let shown = list.source.describe();
        let items = match &list.source {
            Source::Input(name) => {
                let text = inputs.get(name).and_then(Json::as_str).unwrap_or_default();
                map::input_items(name, text)?
            }
            Source::Agent { name, path } => {
                let reply = list
                    .from
                    .and_then(|from| upstream.iter().find(|(i, _)| *i == from))
                    .and_then(|(_, out)| out.json.as_ref());
                let Some(mut value) = reply else {
                    return fail(format!("`for_each: {shown}`: `{name}` gave no JSON"));
                };
                for (depth, step) in path.iter().enumerate() {
                    let next = match value {
                        Json::Object(map) => map.get(step),
                        Json::Array(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
                        _ => None,
                    };
                    let Some(next) = next else {
                        return fail(format!(
                            "`for_each: {shown}`: `{name}`'s reply has no `{}`",
                            path[..=depth].join(".")
                        ));
                    };
                    value = next;
                }
                match value {
                    Json::Array(items) => items.clone(),
                    other => {
                        return fail(format!(
                            "`for_each: {shown}` is {}, not a list: `{name}` did not reply with an array there",
                            kind(other)
                        ));
                    }
                }
            }
        };
        map::within_max(&list.source, items.len(), list.max_items).map_err(|refused| {
            format!("{refused}; none was run (raise `max_items`, or ask for fewer)")
        })?;
        Ok(Some(items))
    }
}

/// An upstream agent as the template context shows it: `output` (and `json`); for
/// a map agent, `outputs` (and `json`) as lists; and the sources it cites,
/// `citations`.
pub(super) fn upstream_entry(out: &AgentOutput) -> Json {
    let mut entry = Map::new();
    match &out.items {
        Some(texts) => {
            entry.insert(
                "outputs".into(),
                Json::Array(texts.iter().cloned().map(Json::String).collect()),
            );
        }
        None => {
            entry.insert("output".into(), Json::String(out.text.clone()));
        }
    }
    if let Some(json) = &out.json {
        entry.insert("json".into(), json.clone());
    }
    entry.insert(
        "citations".into(),
        serde_json::to_value(&out.citations).unwrap_or_default(),
    );
    Json::Object(entry)
}
