//! Prompt templates: Handlebars in strict mode, with no HTML escaping, no partials
//! and no helpers that reach outside the template (SPEC §2: a shared workflow must
//! not be able to pull a file or an environment variable into a prompt).
//!
//! References are read from the parsed template, not by regex: every
//! `inputs.NAME`, `agents.NAME.output`, `agents.NAME.json…` and `agents.NAME.citations` it mentions, with
//! its offset in the template text so errors can point at it.

mod compile;
mod render;
pub mod scan;

use handlebars::Path;
use handlebars::template::{Parameter, TemplateElement};

pub use render::{MAX_RENDERED_BYTES, MAX_STEPS, RenderFailure, Renderer, Values};

/// Helpers built into Handlebars that templates may use.
pub const HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or",
    "not", "len",
];

/// Helpers whose block changes the context (`this`), so bare names inside are relative.
const SCOPING_HELPERS: &[&str] = &["each", "with"];

/// How deep `each`/`with` blocks may nest: rendering nested loops costs items to the
/// power of the depth, and a prompt is rendered before anything can interrupt it.
const MAX_NESTING: usize = 3;

/// What a template refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `inputs.NAME`
    Input(String),
    /// `agents.NAME.output` or `agents.NAME.citations` (`json: false`), or
    /// `agents.NAME.json…` (`json: true`)
    Agent { name: String, json: bool },
    /// `agents.NAME.outputs`: a map agent's texts, one per item.
    AgentOutputs(String),
    /// `item`, `item.FIELD…` or `item_index`: a map agent's item.
    Item,
}

/// One reference in a template, or a name the template may not use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub target: Result<Target, String>,
    /// The path as written, like `agents.writer.output`.
    pub raw: String,
    /// Byte offset of the path in the template text.
    pub offset: usize,
}

/// A template problem: a message, the (1-based line, 1-based column) in the
/// template, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    pub message: String,
    pub at: Option<(usize, usize)>,
    pub help: String,
}

/// What to do about a Handlebars syntax error.
const SYNTAX_HELP: &str =
    "fix the Handlebars syntax: `{{inputs.NAME}}`, `{{agents.NAME.output}}`, `{{#if …}}…{{/if}}`";

/// How to get a file's text into a prompt instead.
const INPUT_HELP: &str = "pass it with `--input NAME=@FILE` and write `{{inputs.NAME}}`";

impl TemplateProblem {
    /// A problem at byte `offset` of `text` (or nowhere in particular).
    fn new(text: &str, offset: Option<usize>, message: String, help: impl Into<String>) -> Self {
        TemplateProblem {
            message,
            at: offset.map(|o| line_col(text, o)),
            help: help.into(),
        }
    }
}

/// The 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Parses a template and lists what it refers to.
pub fn references(text: &str) -> Result<Vec<Reference>, TemplateProblem> {
    if let Some(tags) = compile::plain_tags(text) {
        // Only plain paths: what the parser would make of them is known.
        let mut refs = Vec::new();
        let mut cursor = 0;
        for (start, end) in tags {
            push_raw_path(&text[start + 2..end - 2], text, &mut cursor, 0, &mut refs);
        }
        return Ok(refs);
    }
    parsed_references(text)
}

/// [`references`] read from the parsed template.
fn parsed_references(text: &str) -> Result<Vec<Reference>, TemplateProblem> {
    let cuts = scan::scan(text)?;
    let template = compile::compile(text, &cuts).map_err(|e| match unbalanced(text) {
        Some((offset, message)) => TemplateProblem::new(text, Some(offset), message, SYNTAX_HELP),
        None => TemplateProblem {
            message: match e.reason().to_string() {
                m if m.starts_with("invalid handlebars syntax") => "invalid Handlebars syntax: an unclosed `{{`, a block without its `{{/…}}`, or a stray character in an expression".to_string(),
                m => m,
            },
            at: e.pos().map(|(l, c)| (l, c.max(1))),
            help: SYNTAX_HELP.to_string(),
        },
    })?;
    let mut refs = Vec::new();
    let mut cursor = 0;
    walk(&template.elements, text, &mut cursor, 0, &mut refs)?;
    Ok(refs)
}

/// The first `{{` never closed, or a block opened and never closed (or closed
/// under another name), with its offset: Handlebars reports these at the end of
/// the template, far from the mistake.
fn unbalanced(text: &str) -> Option<(usize, String)> {
    let mut open: Vec<(usize, &str)> = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("{{") {
        let start = from + i;
        let Some(len) = text[start..].find("}}") else {
            return Some((start, "this `{{` is never closed with `}}`".into()));
        };
        let inner = text[start + 2..start + len]
            .trim_start_matches(['{', '~'])
            .trim_start();
        if let Some(rest) = inner.strip_prefix('#') {
            open.push((start, tag_name(rest)));
        } else if let Some(rest) = inner.strip_prefix('/') {
            let closing = tag_name(rest);
            match open.pop() {
                Some((_, opened)) if opened == closing => {}
                Some((at, opened)) => {
                    return Some((
                        at,
                        format!(
                            "`{{{{#{opened} …}}}}` is closed by `{{{{/{closing}}}}}`; close it with `{{{{/{opened}}}}}`"
                        ),
                    ));
                }
                None => {
                    return Some((
                        start,
                        format!("`{{{{/{closing}}}}}` closes a block that was never opened"),
                    ));
                }
            }
        }
        from = start + len + 2;
    }
    open.pop().map(|(at, name)| {
        (
            at,
            format!(
                "`{{{{#{name} …}}}}` is never closed; add `{{{{/{name}}}}}` where the block ends"
            ),
        )
    })
}

/// The helper name at the start of a tag's body (`if` in `if inputs.x}}`).
fn tag_name(body: &str) -> &str {
    body.split([' ', '}', '~', '\n']).next().unwrap_or_default()
}

/// The offset of the first tag at or after `from` that starts with `sigil` (`>`
/// for a partial, `*` for a decorator) or, with no sigil, names the helper `name`
/// (`{{readFile`, `{{#iff`).
fn find_tag(text: &str, from: usize, sigil: &str, name: &str) -> Option<usize> {
    let mut from = from.min(text.len());
    while let Some(i) = text[from..].find("{{") {
        let start = from + i;
        from = start + 2;
        let body = text[start + 2..]
            .trim_start_matches(['{', '~'])
            .trim_start();
        if !sigil.is_empty() {
            if body.trim_start_matches('#').starts_with(sigil) {
                return Some(start);
            }
            continue;
        }
        let body = body.trim_start_matches(['#', '^']).trim_start();
        if let Some(after) = body.strip_prefix(name)
            && !after.starts_with(|c: char| c.is_alphanumeric() || "_-.".contains(c))
        {
            return Some(start);
        }
    }
    None
}

fn walk(
    elements: &[TemplateElement],
    text: &str,
    cursor: &mut usize,
    depth: usize,
    out: &mut Vec<Reference>,
) -> Result<(), TemplateProblem> {
    for element in elements {
        match element {
            TemplateElement::RawString(_) | TemplateElement::Comment(_) => {}
            TemplateElement::Expression(h)
            | TemplateElement::HtmlExpression(h)
            | TemplateElement::HelperBlock(h) => {
                let helper = match &h.name {
                    Parameter::Name(name) => Some(name.as_str()),
                    Parameter::Path(path)
                        if !h.params.is_empty() || h.block || !h.hash.is_empty() =>
                    {
                        Some(raw_path(path))
                    }
                    _ => None,
                };
                if let Some(name) = helper {
                    if !HELPERS.contains(&name) {
                        let help = crate::suggest::did_you_mean(name, HELPERS.iter().copied())
                            .unwrap_or_else(|| format!("templates cannot read files or the environment; to put a file's text in a prompt, {INPUT_HELP}"));
                        return Err(TemplateProblem::new(
                            text,
                            find_tag(text, *cursor, "", name),
                            format!(
                                "unknown helper `{name}`; templates may use: {}",
                                HELPERS.join(", ")
                            ),
                            help,
                        ));
                    }
                } else if let Parameter::Path(path) = &h.name {
                    push_path(path, text, cursor, depth, out);
                }
                for param in h.params.iter().chain(h.hash.values()) {
                    param_refs(param, text, cursor, depth, out)?;
                }
                let inner = if helper.is_some_and(|n| SCOPING_HELPERS.contains(&n)) {
                    depth + 1
                } else {
                    depth
                };
                if inner > MAX_NESTING {
                    let name = helper.unwrap_or("each");
                    return Err(TemplateProblem::new(
                        text,
                        find_tag(text, *cursor, "#", name),
                        format!("`{{{{#{name}}}}}` blocks nest more than {MAX_NESTING} deep"),
                        "each level multiplies the work (items to the power of the depth), so a deeper prompt could take hours to render; flatten the loops",
                    ));
                }
                if let Some(t) = &h.template {
                    walk(&t.elements, text, cursor, inner, out)?;
                }
                if let Some(t) = &h.inverse {
                    walk(&t.elements, text, cursor, depth, out)?;
                }
            }
            TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
                return Err(TemplateProblem::new(
                    text,
                    find_tag(text, *cursor, "*", ""),
                    "decorators (`{{* …}}`) are not supported in prompts".into(),
                    "remove the decorator; prompts use `{{inputs.NAME}}`, `{{agents.NAME.output}}` and the built-in helpers",
                ));
            }
            TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_) => {
                return Err(TemplateProblem::new(
                    text,
                    find_tag(text, *cursor, ">", ""),
                    "partials (`{{> …}}`) are not supported in prompts".into(),
                    format!("write the shared text into the prompt, or {INPUT_HELP}"),
                ));
            }
            _ => {
                return Err(TemplateProblem::new(
                    text,
                    None,
                    "this Handlebars construct is not supported in prompts".into(),
                    SYNTAX_HELP,
                ));
            }
        }
    }
    Ok(())
}

fn param_refs(
    param: &Parameter,
    text: &str,
    cursor: &mut usize,
    depth: usize,
    out: &mut Vec<Reference>,
) -> Result<(), TemplateProblem> {
    match param {
        Parameter::Path(path) => push_path(path, text, cursor, depth, out),
        Parameter::Subexpression(sub) => {
            walk(
                std::slice::from_ref(&*sub.element),
                text,
                cursor,
                depth,
                out,
            )?;
        }
        _ => {}
    }
    Ok(())
}

fn raw_path(path: &Path) -> &str {
    match path {
        Path::Relative((_, raw)) | Path::Local((_, _, raw)) => raw,
    }
}

fn push_path(path: &Path, text: &str, cursor: &mut usize, depth: usize, out: &mut Vec<Reference>) {
    if let Path::Relative((_, raw)) = path {
        push_raw_path(raw, text, cursor, depth, out);
    }
}

/// Adds the reference of a path as written (`agents.writer.output`).
fn push_raw_path(
    raw: &str,
    text: &str,
    cursor: &mut usize,
    depth: usize,
    out: &mut Vec<Reference>,
) {
    // Paths are met in the order they are written, except a helper's hash
    // arguments (`a=x`), which come after its other arguments; a path not found
    // after the cursor is reported at the cursor, which stays put: moving it by the
    // path's length could leave it inside a multi-byte character.
    let found = text[*cursor..].find(raw).map(|i| *cursor + i);
    let offset = found.unwrap_or(*cursor);
    if let Some(at) = found {
        *cursor = at + raw.len();
    }
    let rooted = raw
        .strip_prefix("@root.")
        .or_else(|| raw.strip_prefix("@root/"));
    let body = rooted.unwrap_or(raw);
    let segments: Vec<&str> = body.split(['.', '/']).collect();
    let target = match segments.as_slice() {
        ["inputs", name] => Ok(Target::Input((*name).to_string())),
        ["inputs", name, ..] => Err(format!("`{raw}`: an input is text; write `inputs.{name}`")),
        ["inputs"] => Err("`inputs` alone is not text; write `inputs.NAME`".to_string()),
        // `citations`: the sources its reply cites (agents with `tools`), a list of
        // `{url, title, quoted}`.
        ["agents", name, "output"] | ["agents", name, "citations", ..] => Ok(Target::Agent {
            name: (*name).to_string(),
            json: false,
        }),
        ["agents", name, "outputs"] => Ok(Target::AgentOutputs((*name).to_string())),
        ["agents", name, "json", ..] => Ok(Target::Agent {
            name: (*name).to_string(),
            json: true,
        }),
        ["agents", name, other, ..] => Err(format!(
            "`{raw}`: an agent has `output`, `json` and `citations`, not `{other}`; write `agents.{name}.output`"
        )),
        ["agents", name] => Err(format!("`{raw}` is not text; write `agents.{name}.output`")),
        ["agents"] => Err("`agents` alone is not text; write `agents.NAME.output`".to_string()),
        _ if depth > 0 && rooted.is_none() => return,
        ["item" | "item_index"] | ["item", ..] => Ok(Target::Item),
        ["this" | "." | "" | ".."] => return,
        _ => Err(format!(
            "unknown variable `{raw}`; templates can read `inputs.NAME`, `agents.NAME.output`, `agents.NAME.json` and `agents.NAME.citations` (and in a map agent, `item` and `item_index`)"
        )),
    };
    out.push(Reference {
        target,
        raw: raw.to_string(),
        offset,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARTS: &[&str] = &[
        "text ",
        "\n",
        "inputs.topic ",
        "agents.a.output",
        "{{inputs.topic}}",
        "{{inputs.other}}",
        "{{agents.a.output}}",
        "{{agents.a-b.json.claims}}",
        "{{agents.a.outputs}}",
        "{{agents.a.colour}}",
        "{{inputs.a.b}}",
        "{{item.name}}",
        "{{item}}",
        "{{nothing.at_all}}",
        "{{#if inputs.topic}}",
        "{{/if}}",
        "{{ inputs.topic }}",
        "{{",
        "}}",
        "}",
        "\\{{inputs.x}}",
        "é",
    ];

    proptest::proptest! {
        /// A template of plain paths is read without the parser, to the same references.
        #[test]
        fn plain_paths_are_read_as_the_parser_reads_them(parts in proptest::collection::vec(proptest::sample::select(PARTS), 0..40)) {
            let text = parts.concat();
            if compile::plain_tags(&text).is_some() {
                proptest::prop_assert_eq!(references(&text), parsed_references(&text), "{:?}", text);
            }
        }
    }

    #[test]
    fn a_prompt_of_plain_paths_is_read_without_the_parser() {
        let text = "As the writer, study {{inputs.topic}}.\nNotes:\n{{agents.a-1.output}}\n";
        assert_eq!(compile::plain_tags(text).map(|t| t.len()), Some(2));
        assert_eq!(references(text), parsed_references(text));
        assert_eq!(compile::plain_tags("{{#if inputs.a}}x{{/if}}"), None);
    }

    fn targets(text: &str) -> Vec<Result<Target, String>> {
        references(text)
            .unwrap()
            .into_iter()
            .map(|r| r.target)
            .collect()
    }

    #[test]
    fn finds_inputs_and_agents() {
        let t = targets(
            "Write for {{inputs.audience}} from {{agents.researcher.output}} and {{agents.x.json.items.0}}",
        );
        assert_eq!(
            t,
            vec![
                Ok(Target::Input("audience".into())),
                Ok(Target::Agent {
                    name: "researcher".into(),
                    json: false
                }),
                Ok(Target::Agent {
                    name: "x".into(),
                    json: true
                }),
            ]
        );
    }

    #[test]
    fn finds_references_in_helpers_and_blocks() {
        let t = targets(
            "{{#if inputs.flag}}{{agents.a.output}}{{else}}{{agents.b.output}}{{/if}}{{#each agents.c.json.items}}{{this}} {{name}}{{/each}}",
        );
        assert_eq!(t.len(), 4, "{t:?}");
        assert!(t.contains(&Ok(Target::Agent {
            name: "c".into(),
            json: true
        })));
    }

    #[test]
    fn offsets_point_at_the_path() {
        let text = "a {{inputs.x}} b {{ agents.w.output }}";
        let refs = references(text).unwrap();
        assert_eq!(
            &text[refs[1].offset..refs[1].offset + 16],
            "agents.w.output "
        );
    }

    #[test]
    fn rejects_unknown_roots_and_fields() {
        let t = targets("{{topic}} {{agents.a.text}} {{env.HOME}}");
        assert!(t.iter().all(Result::is_err), "{t:?}");
    }

    /// Found by fuzzing: nested loops render in items^depth time.
    #[test]
    fn deep_loops_are_refused_shallow_ones_are_not() {
        let three = "{{#each agents.a.json.x}}{{#each @root.agents.a.json.x}}{{#each @root.agents.a.json.x}}.{{/each}}{{/each}}{{/each}}";
        assert!(references(three).is_ok());
        let four = "{{#each agents.a.json.x}}{{#with this}}{{#each @root.agents.a.json.x}}{{#each @root.agents.a.json.x}}.{{/each}}{{/each}}{{/with}}{{/each}}";
        let problem = references(four).unwrap_err();
        assert!(
            problem.message.contains("nest more than 3 deep"),
            "{problem:?}"
        );
    }

    #[test]
    fn rejects_partials_and_unknown_helpers() {
        assert!(references("{{> secrets}}").is_err());
        assert!(references("{{readFile \"/etc/passwd\"}}").is_err());
    }

    #[test]
    fn syntax_errors_have_a_position() {
        let e = references("line one\n{{#if inputs.a}}never closed").unwrap_err();
        assert!(e.at.is_some(), "{e:?}");
    }

    #[test]
    fn syntax_errors_point_at_the_mistake() {
        let e = references("one\n{{#if inputs.a}}two\nthree").unwrap_err();
        assert_eq!(e.at, Some((2, 1)), "{e:?}");
        assert!(e.message.contains("`{{#if …}}` is never closed"), "{e:?}");
        let e = references("a {{inputs.b").unwrap_err();
        assert_eq!(e.at, Some((1, 3)), "{e:?}");
        let e = references("{{#each inputs.a}}x{{/if}}").unwrap_err();
        assert!(e.message.contains("closed by `{{/if}}`"), "{e:?}");
    }

    #[test]
    fn forbidden_tags_are_located() {
        let e = references("read\n  {{readFile \"x\"}}").unwrap_err();
        assert_eq!(e.at, Some((2, 3)), "{e:?}");
        let e = references("x {{> header}}").unwrap_err();
        assert_eq!(e.at, Some((1, 3)), "{e:?}");
        let e = references("x {{>header}}").unwrap_err();
        assert_eq!(e.at, Some((1, 3)), "{e:?}");
        let e = references("a\n{{#iff inputs.a}}x{{/iff}}").unwrap_err();
        assert_eq!(e.at, Some((2, 1)), "{e:?}");
        assert_eq!(e.help, "did you mean `if`?");
    }

    /// Found by `cargo fuzz run template`: the hash argument `bbb` is walked after
    /// `c`, is not found after it, and moved the cursor three bytes on, into `é`;
    /// slicing the text there for `d` panicked.
    #[test]
    fn a_path_out_of_order_does_not_leave_the_cursor_inside_a_character() {
        let refs = references("{{lookup a=bbb c}}é{{d}}").unwrap();
        let raws: Vec<&str> = refs.iter().map(|r| r.raw.as_str()).collect();
        assert_eq!(raws, ["c", "bbb", "d"]);
        assert_eq!(refs[2].offset, "{{lookup a=bbb c}}é{{".len());
    }
}
