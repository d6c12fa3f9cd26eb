//! Prompt templates: Handlebars in strict mode, with no HTML escaping, no partials
//! and no helpers that reach outside the template (SPEC §2: a shared workflow must
//! not be able to pull a file or an environment variable into a prompt).
//!
//! References are read from the parsed template, not by regex: every
//! `inputs.NAME`, `agents.NAME.output` and `agents.NAME.json…` it mentions, with
//! its offset in the template text so errors can point at it.

use handlebars::template::{Parameter, TemplateElement};
use handlebars::{Handlebars, Path, Template};
use serde_json::Value as Json;

/// Helpers built into Handlebars that templates may use.
pub const HELPERS: &[&str] = &[
    "if", "unless", "each", "with", "lookup", "eq", "ne", "gt", "gte", "lt", "lte", "and", "or",
    "not", "len",
];

/// Helpers whose block changes the context (`this`), so bare names inside are relative.
const SCOPING_HELPERS: &[&str] = &["each", "with"];

/// What a template refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `inputs.NAME`
    Input(String),
    /// `agents.NAME.output` (`json: false`) or `agents.NAME.json…` (`json: true`)
    Agent { name: String, json: bool },
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

/// A template problem: a message and the (1-based line, 1-based column) in the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    pub message: String,
    pub at: Option<(usize, usize)>,
}

/// Parses a template and lists what it refers to.
pub fn references(text: &str) -> Result<Vec<Reference>, TemplateProblem> {
    let template = Template::compile(text).map_err(|e| TemplateProblem {
        message: match e.reason().to_string() {
            m if m.starts_with("invalid handlebars syntax") => "invalid Handlebars syntax: an unclosed `{{`, a block without its `{{/…}}`, or a stray character in an expression".to_string(),
            m => m,
        },
        at: e.pos().map(|(l, c)| (l, c.max(1))),
    })?;
    let mut refs = Vec::new();
    let mut cursor = 0;
    walk(&template.elements, text, &mut cursor, 0, &mut refs)?;
    Ok(refs)
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
                        return Err(TemplateProblem {
                            message: format!(
                                "unknown helper `{name}`; templates may use: {}",
                                HELPERS.join(", ")
                            ),
                            at: None,
                        });
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
                if let Some(t) = &h.template {
                    walk(&t.elements, text, cursor, inner, out)?;
                }
                if let Some(t) = &h.inverse {
                    walk(&t.elements, text, cursor, depth, out)?;
                }
            }
            TemplateElement::DecoratorExpression(_) | TemplateElement::DecoratorBlock(_) => {
                return Err(TemplateProblem {
                    message: "decorators (`{{* …}}`) are not supported in prompts".into(),
                    at: None,
                });
            }
            TemplateElement::PartialExpression(_) | TemplateElement::PartialBlock(_) => {
                return Err(TemplateProblem {
                    message: "partials (`{{> …}}`) are not supported in prompts".into(),
                    at: None,
                });
            }
            _ => {
                return Err(TemplateProblem {
                    message: "this Handlebars construct is not supported in prompts".into(),
                    at: None,
                });
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
    let Path::Relative((_, raw)) = path else {
        return;
    };
    let offset = text[*cursor..]
        .find(raw.as_str())
        .map_or(*cursor, |i| *cursor + i);
    *cursor = (offset + raw.len()).min(text.len());
    let rooted = raw
        .strip_prefix("@root.")
        .or_else(|| raw.strip_prefix("@root/"));
    let body = rooted.unwrap_or(raw);
    let segments: Vec<&str> = body.split(['.', '/']).collect();
    let target = match segments.as_slice() {
        ["inputs", name] => Ok(Target::Input((*name).to_string())),
        ["inputs", name, ..] => Err(format!("`{raw}`: an input is text; write `inputs.{name}`")),
        ["inputs"] => Err("`inputs` alone is not text; write `inputs.NAME`".to_string()),
        ["agents", name, "output"] => Ok(Target::Agent {
            name: (*name).to_string(),
            json: false,
        }),
        ["agents", name, "json", ..] => Ok(Target::Agent {
            name: (*name).to_string(),
            json: true,
        }),
        ["agents", name, other, ..] => Err(format!(
            "`{raw}`: an agent has `output` and `json`, not `{other}`; write `agents.{name}.output`"
        )),
        ["agents", name] => Err(format!("`{raw}` is not text; write `agents.{name}.output`")),
        ["agents"] => Err("`agents` alone is not text; write `agents.NAME.output`".to_string()),
        _ if depth > 0 && rooted.is_none() => return,
        ["this" | "." | "" | ".."] => return,
        _ => Err(format!(
            "unknown variable `{raw}`; templates can read `inputs.NAME`, `agents.NAME.output` and `agents.NAME.json`"
        )),
    };
    out.push(Reference {
        target,
        raw: raw.clone(),
        offset,
    });
}

/// Compiled templates, rendered in strict mode without escaping.
pub struct Renderer {
    registry: Handlebars<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        Renderer { registry }
    }
}

impl Renderer {
    /// Compiles and keeps a template under a name.
    pub fn add(&mut self, name: &str, text: &str) -> Result<(), String> {
        self.registry
            .register_template_string(name, text)
            .map_err(|e| e.to_string())
    }

    /// Renders a kept template against a context of `inputs` and `agents`.
    pub fn render(&self, name: &str, context: &Json) -> Result<String, String> {
        self.registry
            .render(name, context)
            .map_err(|e| match e.reason() {
                handlebars::RenderErrorReason::MissingVariable(Some(path)) => {
                    format!("`{path}` has no value")
                }
                other => other.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn renders_strictly_without_escaping() {
        let mut r = Renderer::default();
        r.add("t", "<{{inputs.a}}> & {{inputs.b}}").unwrap();
        let ok = r
            .render(
                "t",
                &serde_json::json!({"inputs": {"a": "x<y", "b": "\"q\""}}),
            )
            .unwrap();
        assert_eq!(ok, "<x<y> & \"q\"");
        assert!(
            r.render("t", &serde_json::json!({"inputs": {"a": "x"}}))
                .is_err()
        );
    }
}
