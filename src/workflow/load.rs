//! Loading a workflow file: read, parse (positions kept), check the structure
//! against the schema, then fill in the typed model. Every structural problem is
//! reported at once, each at its place in the file.

use std::path::Path;
use std::sync::Arc;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use serde_json::Value as Json;

use super::diagnostic::{Diagnostic, FileReport, Span};
use super::model::Workflow;
use super::repair;
use super::schema;
use super::tree::{self, PosIndex};
use super::yaml;
use crate::read::{self, ReadError};
use crate::suggest;

/// The largest workflow file accepted.
pub const MAX_FILE_BYTES: usize = 256 * 1024 * 1024;

/// A workflow that parsed and passed the structural checks.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub workflow: Workflow,
    pub index: PosIndex,
}

/// Reads and parses a file; on failure the report holds every problem found.
pub fn load_file(path: &Path) -> Result<(Loaded, FileReport), FileReport> {
    let bytes = match read::file(path, MAX_FILE_BYTES as u64) {
        Ok(bytes) => bytes,
        Err(e) => {
            let d = match e {
                ReadError::TooLarge(_) => Diagnostic::error(
                    "workflow::too-large",
                    Span::NONE,
                    format!(
                        "the file is larger than {}, the limit",
                        read::size(MAX_FILE_BYTES as u64)
                    ),
                )
                .help("split the workflow, or pass long text with `--input NAME=@FILE`"),
                ReadError::NotAFile(_) => Diagnostic::error(
                    "workflow::read",
                    Span::NONE,
                    format!("cannot read the workflow: {e}"),
                )
                .help("give the path of the workflow's YAML file"),
                ReadError::Io(_) => Diagnostic::error(
                    "workflow::read",
                    Span::NONE,
                    format!("cannot read the file: {e}"),
                )
                .help("check the path; `byok-flow validate` takes the workflow file's path"),
            };
            return Err(FileReport::new(path, Arc::from(""), vec![d]));
        }
    };
    let source: Arc<str> = match String::from_utf8(bytes) {
        Ok(text) => Arc::from(text),
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]);
            let line = prefix.matches('\n').count() + 1;
            let column = prefix.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            let pos = yaml::Pos {
                line,
                column,
                offset: prefix.len(),
            };
            let d = Diagnostic::error(
                "workflow::encoding",
                Span::at(Some(pos), 1),
                format!("the file is not UTF-8 text (invalid byte at offset {valid})"),
            )
            .help("a workflow is a YAML text file saved as UTF-8; is this the right file?");
            return Err(FileReport::new(path, Arc::from(text), vec![d]));
        }
    };
    load_source(path, source)
}

/// Parses and checks workflow text that came from `path`. When the structure is
/// wrong but can be stood in for ([`repair`]), the result is `Ok` with the
/// structural errors already in the report, for `validate::check` to add the rest.
pub fn load_source(path: &Path, source: Arc<str>) -> Result<(Loaded, FileReport), FileReport> {
    let fail = |d: Diagnostic| Err(FileReport::new(path, source.clone(), vec![d]));
    if source.len() > MAX_FILE_BYTES {
        return fail(
            Diagnostic::error(
                "workflow::too-large",
                Span::NONE,
                format!(
                    "the file is larger than {}, the limit",
                    read::size(MAX_FILE_BYTES as u64)
                ),
            )
            .help("split the workflow, or pass long text with `--input NAME=@FILE`"),
        );
    }
    if let Some(offset) = source.find('\0') {
        let before = &source[..offset];
        let pos = yaml::Pos {
            line: before.matches('\n').count() + 1,
            column: before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1,
            offset,
        };
        return fail(
            Diagnostic::error(
                "workflow::binary",
                Span::at(Some(pos), 1),
                "the file contains a NUL byte: it is binary, not YAML",
            )
            .help("a workflow is a YAML text file; is this the right file?"),
        );
    }
    let node = match yaml::parse(&source) {
        Ok(node) => node,
        Err(e) => {
            let help = e.help.unwrap_or_else(|| yaml_help(&e.message, &source));
            return fail(
                Diagnostic::error("workflow::yaml", Span::at(e.pos, 1), e.message).help(help),
            );
        }
    };
    let root = node.pos;
    let (mut json, index) = tree::to_json(node);
    match &mut json {
        Json::Object(map) => map.retain(|k, _| !k.starts_with("x-")),
        Json::Null => {
            return fail(
                Diagnostic::error("workflow::empty", Span::NONE, "the file is empty").help(
                    "a workflow needs at least `version: 1` and `agents:`; see `byok-flow schema`",
                ),
            );
        }
        _ => {
            return fail(
                Diagnostic::error(
                    "workflow::not-a-mapping",
                    Span::at(root, 1),
                    format!(
                        "a workflow is a mapping of fields, but this file holds {}",
                        describe(&json)
                    ),
                )
                .help("start the file with `version: 1`, then `agents:`"),
            );
        }
    }
    let diagnostics = structural_errors(&json, &index);
    if !diagnostics.is_empty() {
        // Check the rest on a stand-in, so every problem is reported in one pass.
        let report = FileReport::new(path, source.clone(), diagnostics);
        return match repair::stand_in(&json).map(serde_json::from_value::<Workflow>) {
            Some(Ok(workflow)) => Ok((Loaded { workflow, index }, report)),
            _ => Err(report),
        };
    }
    match serde_path_to_error::deserialize::<_, Workflow>(json) {
        Ok(mut workflow) => Ok((
            {
                // Read entry by entry, the agents' map grew by doubling: a third
                // of it would stay empty for the whole run.
                workflow.agents.shrink_to_fit();
                Loaded { workflow, index }
            },
            FileReport::new(path, source, Vec::new()),
        )),
        Err(e) => fail(typed_error(&e, &index)),
    }
}

/// A value the schema allows but the types do not (`version: 1.0` is an integer
/// to JSON Schema, not to a `u32`), said at its place.
fn typed_error(e: &serde_path_to_error::Error<serde_json::Error>, index: &PosIndex) -> Diagnostic {
    let pointer = e.path().iter().fold(String::new(), |mut pointer, segment| {
        pointer.push('/');
        pointer.push_str(&tree::escape(&segment.to_string()));
        pointer
    });
    let (pos, len) = index.value(&pointer);
    let span = Span::at(pos, len);
    let inner = e.inner().to_string();
    let float = inner
        .strip_prefix("invalid type: floating point `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(number, _)| number);
    let d = match float {
        Some(number) if pointer == "/version" => {
            let value = number
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(Json::Null, Json::Number);
            version_error(span, &value)
                .help("write the version as the whole number `1` (`version: 1`), not as a decimal")
        }
        Some(number) => Diagnostic::error(
            "workflow::type",
            span,
            format!(
                "{} must be a whole number, not {number}",
                field_name(&pointer)
            ),
        )
        .help(format!(
            "write it without a decimal point, like `{}`",
            number.split('.').next().unwrap_or(number)
        )),
        None => Diagnostic::error(
            "workflow::invalid",
            span,
            format!("{}: {inner}", field_name(&pointer)),
        ),
    };
    with_agent(d, &pointer)
}

fn yaml_help(message: &str, source: &str) -> String {
    if message.to_lowercase().contains("tab") || source.contains("\n\t") {
        "YAML indents with spaces, never tabs; replace the tabs with spaces".into()
    } else {
        "fix the YAML syntax at this place; quote text that contains `: ` or starts with `{`, `[`, `*` or `&`".into()
    }
}

/// Every way the document differs from the schema.
fn structural_errors(json: &Json, index: &PosIndex) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = Vec::new();
    for error in schema::validator().iter_errors(json) {
        let pointer = error.instance_path().as_str().to_string();
        if in_tool_entry(&pointer) {
            // Read, and every mistake placed, by the workflow checks (`tools::parse_entry`).
            continue;
        }
        let schema_path = error.schema_path().as_str().to_string();
        let instance = error.instance().as_ref();
        let d = match error.kind() {
            ValidationErrorKind::AdditionalProperties { unexpected } => {
                let parent = schema_path.rsplit_once('/').map_or("", |(p, _)| p);
                let valid = valid_fields(parent);
                let names_only = valid.is_empty();
                for name in unexpected {
                    let child = format!("{pointer}/{}", tree::escape(name));
                    let (pos, len) = index.key(&child);
                    if names_only {
                        out.push(
                            Diagnostic::error(
                                "workflow::name",
                                Span::at(pos, len),
                                format!("`{name}`{} is not a valid name", place(&pointer)),
                            )
                            .help(
                                "names use only letters, digits, `_` and `-`, like `lead-writer`",
                            ),
                        );
                        continue;
                    }
                    let mut help = suggest::did_you_mean(name, valid.iter().map(String::as_str))
                        .map(|s| format!("{s} "))
                        .unwrap_or_default();
                    help.push_str(&format!("valid fields here: {}", valid.join(", ")));
                    out.push(with_agent(
                        Diagnostic::error(
                            "workflow::unknown-field",
                            Span::at(pos, len),
                            format!("unknown field `{name}`{}", place(&pointer)),
                        )
                        .help(help),
                        &pointer,
                    ));
                }
                continue;
            }
            ValidationErrorKind::Required { property } => {
                let name = property.as_str().unwrap_or_default();
                let (pos, len) = index.key(&pointer);
                let help = match (pointer.as_str(), name) {
                    ("", "version") => "add `version: 1` at the top of the file".to_string(),
                    ("", "agents") => {
                        "add an `agents:` mapping with at least one agent".to_string()
                    }
                    (_, "model") => {
                        "add `model: PROVIDER/MODEL`, like `model: openai/gpt-4o`".to_string()
                    }
                    (_, "prompt") => {
                        "add `prompt:` with the text to send (a Handlebars template)".to_string()
                    }
                    _ => format!("add `{name}:`"),
                };
                Diagnostic::error(
                    "workflow::missing-field",
                    Span::at(pos, len),
                    format!("missing field `{name}`{}", place(&pointer)),
                )
                .help(help)
            }
            // `version: "1.0"` breaks both `type` and `const`; one message says it.
            ValidationErrorKind::Type { .. } | ValidationErrorKind::Constant { .. }
                if pointer == "/version" =>
            {
                let (pos, len) = index.value(&pointer);
                version_error(Span::at(pos, len), instance)
            }
            ValidationErrorKind::Type { kind } => {
                let (pos, len) = index.value(&pointer);
                let expected = match kind {
                    TypeKind::Single(t) => article(&t.to_string()),
                    TypeKind::Multiple(ts) => {
                        let names: Vec<String> =
                            (*ts).into_iter().map(|t| article(&t.to_string())).collect();
                        names.join(" or ")
                    }
                };
                Diagnostic::error(
                    "workflow::type",
                    Span::at(pos, len),
                    format!(
                        "{} must be {expected}, but it is {}",
                        field_name(&pointer),
                        describe(instance)
                    ),
                )
                .help(type_help(&pointer, &expected))
            }
            ValidationErrorKind::Enum { options } => {
                let choices: Vec<String> = options
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                choice(&pointer, instance, &choices, index)
            }
            // Enums with documented variants come out of schemars as `oneOf` of `const`s.
            ValidationErrorKind::OneOfNotValid { context }
            | ValidationErrorKind::AnyOf { context }
                if constants(context).is_some() =>
            {
                let choices = constants(context).unwrap_or_default();
                choice(&pointer, instance, &choices, index)
            }
            ValidationErrorKind::Pattern { .. } => {
                let (pos, len) = index.value(&pointer);
                let last = pointer.rsplit('/').next().unwrap_or_default();
                let (message, help) = if last == "model" || pointer.contains("/fallback/") {
                    (
                        format!("model {instance} is not `PROVIDER/MODEL`"),
                        "write the provider, a slash, then the model id, like `anthropic/claude-sonnet-4-6`".to_string(),
                    )
                } else {
                    (
                        format!(
                            "{} is {instance}, which is not a duration",
                            field_name(&pointer)
                        ),
                        "write a duration like `90s`, `2m` or `500ms`".to_string(),
                    )
                };
                Diagnostic::error("workflow::format", Span::at(pos, len), message).help(help)
            }
            ValidationErrorKind::MinProperties { .. } => {
                let (pos, len) = index.key(&pointer);
                Diagnostic::error(
                    "workflow::no-agents",
                    Span::at(pos, len),
                    format!("{} is empty", field_name(&pointer)),
                )
                .help("a workflow needs at least one agent")
            }
            ValidationErrorKind::Minimum { limit }
            | ValidationErrorKind::ExclusiveMinimum { limit } => {
                let (pos, len) = index.value(&pointer);
                Diagnostic::error(
                    "workflow::range",
                    Span::at(pos, len),
                    format!(
                        "{} is {instance}, below the minimum {limit}",
                        field_name(&pointer)
                    ),
                )
                .help(format!("use a value of at least {limit}"))
            }
            ValidationErrorKind::Maximum { limit }
            | ValidationErrorKind::ExclusiveMaximum { limit } => {
                let (pos, len) = index.value(&pointer);
                Diagnostic::error(
                    "workflow::range",
                    Span::at(pos, len),
                    format!(
                        "{} is {instance}, above the maximum {limit}",
                        field_name(&pointer)
                    ),
                )
                .help(format!("use a value of at most {limit}"))
            }
            _ => {
                let (pos, len) = index.value(&pointer);
                Diagnostic::error(
                    "workflow::invalid",
                    Span::at(pos, len),
                    format!("{}: {error}", field_name(&pointer)),
                )
            }
        };
        out.push(with_agent(d, &pointer));
    }
    drop_missing_that_are_typos(&mut out);
    out.sort_by_key(|d| d.span.pos.map(|p| p.offset));
    out.dedup();
    out
}

/// Whether a pointer is inside an entry of an agent's `tools:` list.
pub fn in_tool_entry(pointer: &str) -> bool {
    let parts: Vec<&str> = pointer.split('/').skip(1).take(4).collect();
    matches!(parts.as_slice(), ["agents", _, "tools", _])
}

/// `promt:` is one mistake: the unknown field says "did you mean `prompt`?", so the
/// "missing field `prompt`" for the same mapping is left out.
fn drop_missing_that_are_typos(out: &mut Vec<Diagnostic>) {
    // The "missing field" messages the typos explain, looked up in a set: a file
    // with thousands of each must not compare every pair.
    let explained: std::collections::HashSet<(Option<String>, String)> = out
        .iter()
        .filter(|d| d.code == "workflow::unknown-field")
        .filter_map(|d| {
            let meant = d.help.as_deref()?.strip_prefix("did you mean `")?;
            let meant = &meant[..meant.find('`')?];
            let place = d.message.split_once('`')?.1.split_once('`')?.1;
            Some((d.agent.clone(), format!("missing field `{meant}`{place}")))
        })
        .collect();
    if explained.is_empty() {
        return;
    }
    out.retain(|d| {
        d.code != "workflow::missing-field"
            || !explained.contains(&(d.agent.clone(), d.message.clone()))
    });
}

/// The values a `oneOf`/`anyOf` of `const` schemas allows, or `None` when it is
/// something else.
fn constants(context: &[Vec<jsonschema::ValidationError<'static>>]) -> Option<Vec<String>> {
    context
        .iter()
        .map(|alternative| {
            alternative.iter().find_map(|e| match e.kind() {
                ValidationErrorKind::Constant { expected_value } => {
                    expected_value.as_str().map(str::to_string)
                }
                _ => None,
            })
        })
        .collect()
}

/// A value that is not one of a fixed set, with the closest one or the list.
fn choice(pointer: &str, instance: &Json, choices: &[String], index: &PosIndex) -> Diagnostic {
    let (pos, len) = index.value(pointer);
    let typed = instance.as_str().unwrap_or_default();
    let help = suggest::did_you_mean(typed, choices.iter().map(String::as_str))
        .unwrap_or_else(|| format!("use one of: {}", choices.join(", ")));
    Diagnostic::error(
        "workflow::choice",
        Span::at(pos, len),
        format!(
            "{} is {instance}, which is not one of: {}",
            field_name(pointer),
            choices.join(", ")
        ),
    )
    .help(help)
}

fn version_error(span: Span, instance: &Json) -> Diagnostic {
    Diagnostic::error(
        "workflow::version",
        span,
        format!("`version` must be 1, not {instance}"),
    )
    .help("this byok-flow reads format version 1; write `version: 1`")
}

/// Names the agent when the pointer is inside one.
fn with_agent(d: Diagnostic, pointer: &str) -> Diagnostic {
    let mut parts = pointer.split('/').skip(1);
    match (parts.next(), parts.next()) {
        (Some("agents"), Some(agent)) => d.agent(agent.replace("~1", "/").replace("~0", "~")),
        _ => d,
    }
}

/// The field names the schema object at `schema_pointer` allows.
fn valid_fields(schema_pointer: &str) -> Vec<String> {
    schema::schema_at(schema_pointer)
        .and_then(|s| s.get("properties"))
        .and_then(Json::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default()
}

/// Where a field's parent is, as in "unknown field `x` in `defaults`".
fn place(pointer: &str) -> String {
    let parts: Vec<&str> = pointer.split('/').skip(1).collect();
    match parts.as_slice() {
        [] => " at the top level".to_string(),
        ["agents", _] => String::new(),
        _ => format!(" in `{}`", parts.join(".")),
    }
}

/// `` `agents.writer.max_tokens` `` for a pointer.
fn field_name(pointer: &str) -> String {
    let mut parts: Vec<&str> = pointer.split('/').skip(1).collect();
    if parts.len() > 2 && parts[0] == "agents" {
        parts.drain(..2);
    }
    if parts.is_empty() {
        "the workflow".to_string()
    } else {
        format!("`{}`", parts.join("."))
    }
}

fn article(t: &str) -> String {
    match t {
        "integer" => "an integer".into(),
        "object" => "a mapping".into(),
        "array" => "a list".into(),
        "string" => "a string".into(),
        "number" => "a number".into(),
        "boolean" => "`true` or `false`".into(),
        "null" => "empty".into(),
        other => other.into(),
    }
}

fn describe(value: &Json) -> String {
    match value {
        Json::Null => "empty".into(),
        Json::Bool(b) => format!("the boolean `{b}`"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) if s.len() > 40 => "a string".into(),
        Json::String(s) => format!("the string \"{s}\""),
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "a mapping".into(),
    }
}

fn type_help(pointer: &str, expected: &str) -> String {
    let last = pointer.rsplit('/').next().unwrap_or_default();
    match last {
        "needs" | "fallback" | "stop" | "tools" => format!("write a list, like `{last}: [a, b]`"),
        "prompt" | "system" => {
            "write the text after the colon; use `|` for text over several lines".into()
        }
        "timeout" | "latency" => {
            "write a duration with its unit, like `90s`, `2m` or `500ms`".into()
        }
        "agents" | "inputs" | "providers" | "outputs" if pointer.len() == last.len() + 1 => {
            let one = last.trim_end_matches('s');
            format!(
                "write each {one} as its name and a colon, with its fields indented under it (`writer:`, not `- name: writer`)"
            )
        }
        _ if expected.contains("mapping") && pointer.starts_with("/inputs/") => format!(
            "an input's settings go under its name, like `{last}: {{description: …, required: true}}`"
        ),
        _ if expected.contains("mapping") => {
            "indent the fields under this key, one per line as `name: value`".into()
        }
        _ if expected == "a string" => "quote the value to make it text, like \"yes\"".into(),
        _ => format!("write {expected} here"),
    }
}
