//! Map agents (SPEC §8): an agent with `for_each` runs once per item of a list,
//! an input holding a JSON array (`for_each: inputs.NAME`) or an array in an
//! upstream `output: json` agent's reply (`for_each: agents.NAME.json.FIELD`,
//! which needs `max_items`). This module reads `for_each` and checks what only a
//! map agent may do: its source, `max_items`, `{{item}}` and `{{item_index}}`
//! only in its own templates, and downstream agents reading its `outputs` (a list)
//! rather than an `output`.

use serde_json::Value as Json;

use super::diagnostic::{Diagnostic, Span};
use super::model::{OutputKind, Workflow};
use super::tree::{PosIndex, escape};
use crate::template::Target;

/// Where a map agent's items come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `inputs.NAME`: the input's value, a JSON array.
    Input(String),
    /// `agents.NAME.json.A.B`: the array at that path in the agent's reply (`path`
    /// empty for the reply itself).
    Agent { name: String, path: Vec<String> },
}

/// Reads `for_each`.
pub fn parse(text: &str) -> Result<Source, String> {
    let parts: Vec<&str> = text.trim().split('.').collect();
    match parts.as_slice() {
        ["inputs", name] if is_name(name) => Ok(Source::Input((*name).to_string())),
        ["agents", name, "json", path @ ..]
            if is_name(name) && path.iter().all(|p| !p.is_empty()) =>
        {
            Ok(Source::Agent {
                name: (*name).to_string(),
                path: path.iter().map(|p| (*p).to_string()).collect(),
            })
        }
        ["agents", name, "output" | "outputs", ..] => Err(format!(
            "`for_each: {text}` reads text; a map agent runs over a list: `agents.{name}.json.FIELD` of an `output: json` agent"
        )),
        _ => Err(format!("`for_each: {text}` names no list")),
    }
}

/// The items of an input list (`for_each: inputs.NAME`) whose value is `text`: a
/// JSON array; or why the map agent fails before any call. `run` and `estimate`
/// both read an input list here, so they agree.
pub fn input_items(name: &str, text: &str) -> Result<Vec<Json>, String> {
    match serde_json::from_str::<Json>(text) {
        Ok(Json::Array(items)) => Ok(items),
        Ok(other) => Err(format!(
            "`for_each: inputs.{name}` is {}, not a list; pass a JSON array, like [\"a\", \"b\"] (`--input {name}=@list.json`, or an array in the row)",
            kind(&other)
        )),
        Err(e) => Err(format!(
            "`for_each: inputs.{name}` is not JSON ({e}); pass a JSON array, like [\"a\", \"b\"] (`--input {name}=@list.json`, or an array in the row)"
        )),
    }
}

/// Refuses a list of `len` items over `max_items` (the map agent then fails before
/// any call): says how many it holds; the caller adds what to do.
pub fn within_max(source: &Source, len: usize, max_items: Option<u32>) -> Result<(), String> {
    match max_items {
        Some(max) if len > max as usize => Err(format!(
            "`for_each: {}` holds {len} items, more than `max_items: {max}`",
            source.describe()
        )),
        _ => Ok(()),
    }
}

/// "a string", "an object", … for messages.
pub fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

fn is_name(text: &str) -> bool {
    super::validate::is_identifier(text)
}

impl Source {
    /// The `for_each` text of this source.
    pub fn describe(&self) -> String {
        match self {
            Source::Input(name) => format!("inputs.{name}"),
            Source::Agent { name, path } => {
                let mut text = format!("agents.{name}.json");
                for p in path {
                    text.push('.');
                    text.push_str(p);
                }
                text
            }
        }
    }
}

/// Checks every map agent's `for_each` and `max_items`; returns the problems and
/// the agents each reads its list from (an edge of the graph).
pub fn check(w: &Workflow, index: &PosIndex) -> (Vec<Diagnostic>, Vec<(usize, usize)>) {
    let mut out = Vec::new();
    let mut edges = Vec::new();
    let span = |pointer: &str| {
        let (pos, len) = index.value(pointer);
        Span::at(pos, len)
    };
    for (to, (name, agent)) in w.agents.iter().enumerate() {
        let at = |field: &str| format!("/agents/{}/{field}", escape(name));
        let Some(text) = &agent.for_each else {
            if agent.max_items.is_some() {
                out.push(
                    Diagnostic::error(
                        "workflow::max-items",
                        span(&at("max_items")),
                        "`max_items` bounds the items of a map agent, and this agent has no `for_each`",
                    )
                    .agent(name)
                    .help("add `for_each: inputs.NAME` (or `agents.NAME.json.FIELD`), or remove `max_items`"),
                );
            }
            continue;
        };
        let problem = |message: String, help: String| {
            Diagnostic::error("workflow::for-each", span(&at("for_each")), message)
                .agent(name)
                .help(help)
        };
        match parse(text) {
            Err(message) => out.push(problem(
                message,
                "write `for_each: inputs.NAME` (an input holding a JSON array) or `for_each: agents.NAME.json.FIELD` (an array in an `output: json` agent's reply)".into(),
            )),
            Ok(Source::Input(input)) => {
                if !w.inputs.contains_key(&input) {
                    let help = crate::suggest::did_you_mean(&input, w.inputs.keys().map(String::as_str))
                        .unwrap_or_else(|| format!("declare it under `inputs:`, and pass a JSON array: `--input {input}=@list.json`"));
                    out.push(problem(
                        format!("`for_each` reads input `{input}`, which is not declared"),
                        help,
                    ));
                }
            }
            Ok(Source::Agent { name: upstream, .. }) => {
                match w.agents.get_index_of(&upstream) {
                    None => {
                        let help = crate::suggest::did_you_mean(&upstream, w.agents.keys().map(String::as_str))
                            .unwrap_or_else(|| "name an agent of this workflow".to_string());
                        out.push(problem(
                            format!("`for_each` reads agent `{upstream}`, which does not exist"),
                            help,
                        ));
                    }
                    Some(from) if w.agents[from].output != OutputKind::Json => out.push(problem(
                        format!("`for_each` reads a list from `{upstream}`, whose output is text"),
                        format!("add `output: json` (with a `schema` whose field is an array) to `{upstream}`"),
                    )),
                    Some(from) => edges.push((from, to)),
                }
                if agent.max_items.is_none() {
                    out.push(
                        Diagnostic::error(
                            "workflow::max-items",
                            span(&at("for_each")),
                            format!("a list from agent `{upstream}` needs `max_items`"),
                        )
                        .agent(name)
                        .help("add `max_items: N`, the most items to run: it bounds the estimate and the budget, and more items fail the agent"),
                    );
                }
            }
        }
    }
    (out, edges)
}

/// What is wrong with a template of `agent` (none: an output template) reading
/// `target`, as far as map agents go: a message and a fix.
pub fn reference_problem(
    w: &Workflow,
    agent: Option<&String>,
    target: &Target,
) -> Option<(String, String)> {
    let is_map = |name: &str| w.agents.get(name).is_some_and(|a| a.for_each.is_some());
    match target {
        Target::Item if !agent.is_some_and(|a| is_map(a)) => Some((
            "`item` and `item_index` exist only in a map agent's templates".into(),
            match agent {
                Some(a) => format!("add `for_each: inputs.NAME` to `{a}` to run it once per item, or read something else"),
                None => "outputs are rendered once per run; read a map agent's `agents.NAME.outputs` instead".into(),
            },
        )),
        Target::Agent { name, json: false } if is_map(name) => Some((
            format!("`{name}` runs once per item: it has `outputs`, a list, not one `output`"),
            format!("read `{{{{#each agents.{name}.outputs}}}}{{{{this}}}}{{{{/each}}}}`"),
        )),
        Target::AgentOutputs(name) if w.agents.contains_key(name) && !is_map(name) => Some((
            format!("`{name}` runs once: it has one `output`, not `outputs`"),
            format!("read `agents.{name}.output`"),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inputs_and_agent_paths() {
        assert_eq!(parse("inputs.topics"), Ok(Source::Input("topics".into())));
        assert_eq!(
            parse("agents.planner.json.items"),
            Ok(Source::Agent {
                name: "planner".into(),
                path: vec!["items".into()]
            })
        );
        assert_eq!(
            parse("agents.planner.json"),
            Ok(Source::Agent {
                name: "planner".into(),
                path: Vec::new()
            })
        );
        for bad in [
            "inputs",
            "inputs.a.b",
            "agents.planner",
            "agents.planner.output",
            "agents.p.json..x",
            "topics",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
