//! A map agent's items as the estimate counts them (SPEC §8): the real items of
//! an input's JSON array, or `max_items` of a list from an agent's reply.

use serde_json::Value as Json;

use crate::workflow::map::Source;

/// A map agent's list, as the estimate sees it.
pub struct ListOf {
    pub source: Source,
    pub from: Option<usize>,
    pub max_items: Option<u32>,
}

/// A map agent's items in one estimate.
pub enum Items {
    /// From an input: the real items (none when the input is not a list: the
    /// agent would fail).
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
    pub fn items(&self, inputs: &Json) -> Items {
        match &self.source {
            Source::Input(name) => {
                let text = inputs.get(name).and_then(Json::as_str).unwrap_or_default();
                match serde_json::from_str::<Json>(text) {
                    Ok(Json::Array(items)) => Items::Known(
                        items
                            .into_iter()
                            .take(self.max_items.map_or(usize::MAX, |m| m as usize))
                            .collect(),
                    ),
                    _ => Items::Known(Vec::new()),
                }
            }
            Source::Agent { .. } => Items::AtMost {
                count: u64::from(self.max_items.unwrap_or(1)),
                from: self.from,
            },
        }
    }
}
