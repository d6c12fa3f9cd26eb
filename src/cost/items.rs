//! A map agent's items as the estimate counts them (SPEC §8): the real items of
//! an input's JSON array, or `max_items` of a list from an agent's reply; and the
//! input lists that would fail their agent, as `run` fails it, so that no estimate
//! shows a cost for a run that cannot happen.

use serde_json::Value as Json;

use crate::workflow::Workflow;
use crate::workflow::map::{self, Source};

/// A map agent's list, as the estimate sees it.
pub struct ListOf {
    pub source: Source,
    pub from: Option<usize>,
    pub max_items: Option<u32>,
}

/// A map agent's items in one estimate.
pub enum Items {
    /// From an input: the real items.
    Known(Vec<Json>),
    /// From an agent's reply: `max_items` of them, at most.
    AtMost { count: u64, from: Option<usize> },
}

impl Items {
    pub fn count(&self) -> u64 {
        match self {
            Items::Known(items) => items.len() as u64,
            Items::AtMost { count, .. } => *count,
        }
    }
}

impl ListOf {
    /// The items, or why the agent would fail before any call: an input that is
    /// not a JSON array, or holds more than `max_items` (what `run` refuses).
    pub fn items(&self, inputs: &Json) -> Result<Items, String> {
        match &self.source {
            Source::Input(name) => {
                let text = inputs.get(name).and_then(Json::as_str).unwrap_or_default();
                let items = map::input_items(name, text)?;
                map::within_max(&self.source, items.len(), self.max_items)
                    .map_err(|over| format!("{over}; raise `max_items`, or pass fewer items"))?;
                Ok(Items::Known(items))
            }
            Source::Agent { .. } => Ok(Items::AtMost {
                count: u64::from(self.max_items.unwrap_or(1)),
                from: self.from,
            }),
        }
    }
}

/// The first map agent of `w` whose input list, in a run with `inputs`, fails it
/// before any call, and why: such a run cannot happen as estimated.
pub fn failing_list(w: &Workflow, inputs: &Json) -> Option<(String, String)> {
    w.agents.iter().find_map(|(name, agent)| {
        let source = map::parse(agent.for_each.as_deref()?).ok()?;
        let list = ListOf {
            source,
            from: None,
            max_items: agent.max_items,
        };
        list.items(inputs).err().map(|why| (name.clone(), why))
    })
}
