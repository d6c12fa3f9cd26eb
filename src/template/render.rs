//! Rendering prompts: Handlebars in strict mode without escaping, within a
//! budget. A template is checked before it runs, but what it renders depends
//! on data no check sees (an upstream agent's JSON, an input file), and nested
//! `each` over long lists multiply: three levels over a 1,000-item list is a
//! billion steps. So each render may write at most [`MAX_RENDERED_BYTES`] and
//! run at most [`MAX_STEPS`] loop iterations, and fails with the template line
//! where it stopped.

use std::cell::Cell;
use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use handlebars::template::TemplateElement;
use handlebars::{
    Context, Handlebars, Helper, HelperDef, HelperResult, Output, RenderContext, RenderError,
    RenderErrorReason, Renderable, Template, WriteOutput,
};
use serde_json::Value as Json;

use super::{compile, scan};
use crate::workflow::lines::LineIndex;

/// The most one template may render: far more than any model's context window
/// (1M tokens is about 4 MiB of text), so a prompt this long is a runaway loop.
pub const MAX_RENDERED_BYTES: usize = 16 * 1024 * 1024;

/// The most loop iterations (`each` bodies) one render may run.
pub const MAX_STEPS: u64 = 1_000_000;

/// The helper counted at the start of every `each` body.
const STEP_HELPER: &str = "byok_flow_step";

thread_local! {
    /// Steps left in the render running on this thread (a render never awaits,
    /// so it runs on one thread from start to end).
    static STEPS_LEFT: Cell<u64> = const { Cell::new(MAX_STEPS) };
}

/// Why a render failed: what went wrong, and where in the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderFailure {
    pub message: String,
    /// 1-based line and column in the template, when known.
    pub at: Option<(usize, usize)>,
    pub help: Option<String>,
}

impl std::fmt::Display for RenderFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some((line, column)) = self.at {
            write!(f, "line {line}, column {column}: ")?;
        }
        f.write_str(&self.message)?;
        if let Some(help) = &self.help {
            write!(f, "; {help}")?;
        }
        Ok(())
    }
}

/// What templates are rendered against (`inputs`, `agents`, a map agent's
/// `item`), made once for every template that reads it: Handlebars would copy a
/// borrowed value on each render (for `estimate`, every agent's render copied
/// the whole squad's outputs).
pub struct Values(Context);

impl Values {
    pub fn json(&self) -> &Json {
        self.0.data()
    }

    /// The string at a dotted path (`inputs.topic`), if that is what is there.
    fn lookup(&self, path: &str) -> Option<&str> {
        let mut value = self.json();
        for name in path.split('.') {
            value = value.as_object()?.get(name)?;
        }
        value.as_str()
    }
}

impl From<Json> for Values {
    fn from(json: Json) -> Self {
        Values(Context::from(json))
    }
}

/// Templates, rendered in strict mode without escaping.
///
/// A template is kept as text and compiled when it is rendered, then dropped:
/// validation has compiled every template already, so a render cannot meet a
/// new syntax error, and a compiled template takes several times the memory
/// of its text (a run of 100,000 agents kept 2.8 KB of trees per agent).
pub struct Renderer {
    registry: Handlebars<'static>,
    /// Each template's text, and where it may be compiled in pieces.
    /// The text is shared with the workflow it came from, not copied.
    texts: HashMap<String, (Arc<str>, Vec<usize>)>,
    /// The step counted at the start of every `each` body.
    step: TemplateElement,
}

impl Default for Renderer {
    fn default() -> Self {
        let mut registry = Handlebars::new();
        registry.set_strict_mode(true);
        registry.register_escape_fn(handlebars::no_escape);
        registry.register_helper(STEP_HELPER, Box::new(Step));
        let step = Template::compile(&format!("{{{{{STEP_HELPER}}}}}"))
            .map_or(TemplateElement::RawString(String::new()), |mut t| {
                t.elements.remove(0)
            });
        Renderer {
            registry,
            texts: HashMap::new(),
            step,
        }
    }
}

impl Renderer {
    /// Keeps a template under a name, once its nesting is within the limits.
    pub fn add(&mut self, name: &str, text: impl Into<Arc<str>>) -> Result<(), String> {
        let text = text.into();
        let cuts = scan::scan(&text).map_err(|p| p.message)?;
        self.texts.insert(name.to_string(), (text, cuts));
        Ok(())
    }

    /// Renders a kept template against a context of `inputs` and `agents`.
    pub fn render(&self, name: &str, values: &Values) -> Result<String, RenderFailure> {
        let Some((text, cuts)) = self.texts.get(name) else {
            return Err(failed(format!("no template named `{name}`")));
        };
        if let Some(rendered) = Self::render_plain(text, |path| values.lookup(path)) {
            return Ok(rendered);
        }
        self.render_cut(name, text, cuts, values)
    }

    /// Renders a template that is not kept, from its text, named `name` in errors,
    /// with Handlebars. A squad's prompts are rendered this way (a table of
    /// 200,000 names and cuts would be kept for the whole run for one render
    /// each), once [`Renderer::render_plain`] has found they need it.
    pub fn render_text(
        &self,
        name: &str,
        text: &str,
        values: &Values,
    ) -> Result<String, RenderFailure> {
        let cuts = scan::scan(text).map_err(|p| failed(p.message))?;
        self.render_cut(name, text, &cuts, values)
    }

    /// What Handlebars renders from a template whose only tags are plain paths
    /// (most prompts: `{{inputs.topic}}`, `{{agents.writer.output}}`), rendered
    /// without compiling it, when `lookup` gives each path's text as the
    /// context has it (a string). `None` when the template needs Handlebars, or
    /// `lookup` gives nothing for a path (Handlebars then renders it from the
    /// context, or says what is missing and where).
    pub fn render_plain<'a>(
        text: &str,
        lookup: impl Fn(&str) -> Option<&'a str>,
    ) -> Option<String> {
        let tags = compile::plain_tags(text)?;
        let mut out = String::with_capacity(text.len());
        let mut done = 0;
        for (start, end) in tags {
            let path = &text[start + 2..end - 2];
            if !path.contains('.') {
                return None; // `{{len}}` alone calls the helper: no helper's name has a dot
            }
            out.push_str(&text[done..start]);
            out.push_str(lookup(path)?);
            if out.len() > MAX_RENDERED_BYTES {
                return None;
            }
            done = end;
        }
        out.push_str(&text[done..]);
        (out.len() <= MAX_RENDERED_BYTES).then_some(out)
    }

    fn render_cut(
        &self,
        name: &str,
        text: &str,
        cuts: &[usize],
        values: &Values,
    ) -> Result<String, RenderFailure> {
        let context = values.json();
        let mut template = compile::compile(text, cuts).map_err(|e| failed(e.to_string()))?;
        count_steps(&mut template, &self.step);
        template.name = Some(name.to_string());
        let mut out = Limited::default();
        STEPS_LEFT.with(|s| s.set(MAX_STEPS));
        let rendered = template.render(
            &self.registry,
            &values.0,
            &mut RenderContext::new(template.name.as_ref()),
            &mut WriteOutput::new(&mut out),
        );
        let steps_left = STEPS_LEFT.with(Cell::get);
        match rendered {
            Ok(()) => Ok(String::from_utf8(out.bytes)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())),
            Err(e) => Err(Self::failure(text, context, &e, out.over, steps_left == 0)),
        }
    }

    fn failure(
        text: &str,
        context: &Json,
        e: &RenderError,
        too_long: bool,
        too_many_steps: bool,
    ) -> RenderFailure {
        let at = e.line_no.zip(e.column_no);
        let tag = at.map(|(line, column)| tag_at(text, line, column));
        let (message, help) = if too_long {
            (
                format!(
                    "it renders to more than {} MiB, the most a template may",
                    MAX_RENDERED_BYTES >> 20
                ),
                "no model reads a prompt that long: is a loop (`{{#each}}`) repeating a long text, or an input far larger than meant?".to_string(),
            )
        } else if too_many_steps {
            (
                format!("its loops ran {MAX_STEPS} times, the most one template may"),
                "nested `{{#each}}` blocks multiply: loop over fewer items, or flatten the loops"
                    .to_string(),
            )
        } else if let RenderErrorReason::MissingVariable(_)
        | RenderErrorReason::ParamNotFoundForIndex(..)
        | RenderErrorReason::ParamNotFoundForName(..) = e.reason()
        {
            // Strict mode names the path only when it is read directly; inside a
            // sub-expression or a helper's argument the path is looked up here.
            let named = match e.reason() {
                RenderErrorReason::MissingVariable(Some(path)) => Some(path.clone()),
                _ => None,
            };
            let missing = named.or_else(|| tag.as_deref().and_then(|t| missing_path(t, context)));
            let quoted = tag
                .as_deref()
                .map_or(String::new(), |t| format!(" in `{t}`"));
            let message = match missing {
                Some(path) => format!("`{path}`{quoted} has no value"),
                None if tag.as_deref().is_some_and(|t| t.contains("lookup")) => {
                    format!("a `lookup`{quoted} found nothing")
                }
                None => format!("a value read{quoted} is missing"),
            };
            (
                message,
                "check the name; an upstream agent's JSON may lack that field: guard it with `{{#if …}}`".to_string(),
            )
        } else {
            (e.reason().to_string(), String::new())
        };
        RenderFailure {
            message,
            at,
            help: Some(help).filter(|h| !h.is_empty()),
        }
    }
}

/// A failure with no place in the template.
fn failed(message: String) -> RenderFailure {
    RenderFailure {
        message,
        at: None,
        help: None,
    }
}

/// Puts a step at the start of every `each` body (and its `{{else}}`), so the
/// number of loop iterations is counted. Blocks nest at most
/// [`scan::MAX_BLOCK_DEPTH`] deep.
fn count_steps(template: &mut Template, step: &TemplateElement) {
    for element in &mut template.elements {
        let TemplateElement::HelperBlock(block) = element else {
            continue;
        };
        let is_each =
            matches!(&block.name, handlebars::template::Parameter::Name(n) if n == "each");
        for inner in [&mut block.template, &mut block.inverse]
            .into_iter()
            .flatten()
        {
            count_steps(inner, step);
            if is_each {
                inner.elements.insert(0, step.clone());
                let first = inner.mapping.first().cloned();
                if let Some(first) = first {
                    inner.mapping.insert(0, first);
                }
            }
        }
    }
}

/// Counts one step of the render on this thread, and stops it past the budget.
struct Step;

impl HelperDef for Step {
    fn call<'reg: 'rc, 'rc>(
        &self,
        _: &Helper<'rc>,
        _: &'reg Handlebars<'reg>,
        _: &'rc Context,
        _: &mut RenderContext<'reg, 'rc>,
        _: &mut dyn Output,
    ) -> HelperResult {
        let left = STEPS_LEFT.with(|s| {
            let left = s.get().saturating_sub(1);
            s.set(left);
            left
        });
        if left == 0 {
            let spent = std::io::Error::other("the loop budget is spent");
            return Err(RenderErrorReason::NestedError(Box::new(spent)).into());
        }
        Ok(())
    }
}

/// What a render writes, refused past [`MAX_RENDERED_BYTES`].
#[derive(Default)]
struct Limited {
    bytes: Vec<u8>,
    over: bool,
}

impl Write for Limited {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDERED_BYTES {
            self.over = true;
            return Err(std::io::Error::other("the render budget is spent"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The tag (`{{…}}`) that starts at a 1-based line and column of `text`, cut
/// short if long.
fn tag_at(text: &str, line: usize, column: usize) -> String {
    let index = LineIndex::new(text);
    let start = index.offset(text, line, column);
    let rest = &text[start..];
    let end = rest.find("}}").map_or(rest.len(), |i| i + 2);
    let tag = &rest[..end];
    if tag.chars().count() > 80 {
        let cut: String = tag.chars().take(77).collect();
        format!("{cut}...")
    } else {
        tag.to_string()
    }
}

/// The first path in `tag` that starts at the context's top (`inputs.…`,
/// `agents.…`, `@root.…`) and has no value in `context`.
fn missing_path(tag: &str, context: &Json) -> Option<String> {
    let mut quote = None;
    let mut word = String::new();
    let mut words = Vec::new();
    for c in tag.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c.is_alphanumeric() || "_-.@/".contains(c) => word.push(c),
            None => words.push(std::mem::take(&mut word)),
        }
    }
    words.push(word);
    words.into_iter().find(|w| {
        let path = w
            .strip_prefix("@root.")
            .or_else(|| w.strip_prefix("@root/"))
            .unwrap_or(w);
        (path.starts_with("inputs.") || path.starts_with("agents."))
            && path
                .split(['.', '/'])
                .try_fold(context, |v, part| match v {
                    Json::Object(map) => map.get(part),
                    Json::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
                    _ => None,
                })
                .is_none()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PARTS: &[&str] = &[
        "text ",
        "\n",
        "{{inputs.a}}",
        "{{inputs.b}}",
        "{{inputs.n}}",
        "{{inputs.none}}",
        "{{inputs.list}}",
        "{{agents.w-1.output}}",
        "{{agents.w-1.json.x}}",
        "{{item}}",
        "{{len}}",
        "{{#if inputs.a}}",
        "{{/if}}",
        "{{",
        "}}",
        "é",
    ];

    proptest::proptest! {
        /// A template of plain paths renders without Handlebars to what
        /// Handlebars renders, or is left to it.
        #[test]
        fn plain_paths_render_as_handlebars_renders_them(parts in proptest::collection::vec(proptest::sample::select(PARTS), 0..30)) {
            let text = parts.concat();
            let values = Values::from(json!({
                "inputs": {"a": "x{{y}}\\", "b": "", "n": 3, "list": ["p", "q"]},
                "agents": {"w-1": {"output": "out é", "json": {"x": "from json"}}},
                "item": "it",
            }));
            let r = Renderer::default();
            if let Some(plain) = Renderer::render_plain(&text, |p| values.lookup(p)) {
                let cuts = scan::scan(&text).unwrap();
                let handlebars = r.render_cut("t", &text, &cuts, &values);
                proptest::prop_assert_eq!(Ok(plain), handlebars, "{:?}", text);
            }
        }
    }

    #[test]
    fn a_prompt_of_plain_paths_renders_without_handlebars() {
        let r = Renderer::default();
        let values = Values::from(json!({"inputs": {"a": "A"}, "agents": {"w": {"output": "W"}}}));
        let text = "Study {{inputs.a}}.\nNotes:\n{{agents.w.output}}\n";
        assert_eq!(
            Renderer::render_plain(text, |p| values.lookup(p)).as_deref(),
            Some("Study A.\nNotes:\nW\n")
        );
        // A missing value is left to Handlebars, which says where it is.
        assert_eq!(
            Renderer::render_plain("{{inputs.b}}", |p| values.lookup(p)),
            None
        );
        let e = r.render_text("t", "x\n {{inputs.b}}", &values).unwrap_err();
        assert_eq!(e.at, Some((2, 2)));
    }

    #[test]
    fn renders_strictly_without_escaping() {
        let mut r = Renderer::default();
        r.add("t", "<{{inputs.a}}> & {{inputs.b}}").unwrap();
        let ok = r
            .render(
                "t",
                &Values::from(json!({"inputs": {"a": "x<y", "b": "\"q\""}})),
            )
            .unwrap();
        assert_eq!(ok, "<x<y> & \"q\"");
        let e = r
            .render("t", &Values::from(json!({"inputs": {"a": "x"}})))
            .unwrap_err();
        assert_eq!(e.at, Some((1, 18)));
        assert!(e.message.contains("`inputs.b`"), "{e}");
    }

    #[test]
    fn loops_still_loop() {
        let mut r = Renderer::default();
        r.add(
            "t",
            "{{#each inputs.xs}}{{@index}}={{this}}{{#unless @last}}, {{/unless}}{{else}}none{{/each}}",
        )
        .unwrap();
        assert_eq!(
            r.render("t", &Values::from(json!({"inputs": {"xs": [1, 2]}})))
                .unwrap(),
            "0=1, 1=2"
        );
        assert_eq!(
            r.render("t", &Values::from(json!({"inputs": {"xs": []}})))
                .unwrap(),
            "none"
        );
    }

    /// Issue 11, item 6: a template bomb stops at the budget with a clear error.
    #[test]
    fn issue11_a_template_bomb_stops_at_the_step_budget() {
        let mut r = Renderer::default();
        r.add(
            "bomb",
            "start\n{{#each agents.a.json}}{{#each @root.agents.a.json}}{{#each @root.agents.a.json}}{{/each}}{{/each}}{{/each}}",
        )
        .unwrap();
        let list: Vec<u32> = (0..1_000).collect();
        let e = r
            .render(
                "bomb",
                &Values::from(json!({"agents": {"a": {"json": list}}})),
            )
            .unwrap_err();
        assert!(e.message.contains("loops ran 1000000 times"), "{e}");
        assert_eq!(e.at.map(|(line, _)| line), Some(2), "{e}");
        // The budget is per render: the next one starts afresh.
        r.add("small", "{{#each agents.a.json}}.{{/each}}").unwrap();
        let dots = r
            .render(
                "small",
                &Values::from(json!({"agents": {"a": {"json": [1, 2, 3]}}})),
            )
            .unwrap();
        assert_eq!(dots, "...");
    }

    #[test]
    fn issue11_a_render_longer_than_the_budget_stops() {
        let mut r = Renderer::default();
        r.add("long", "{{#each inputs.xs}}{{@root.inputs.big}}{{/each}}")
            .unwrap();
        let big = "x".repeat(1 << 20);
        let xs: Vec<u32> = (0..100).collect();
        let e = r
            .render(
                "long",
                &Values::from(json!({"inputs": {"big": big, "xs": xs}})),
            )
            .unwrap_err();
        assert!(e.message.contains("more than 16 MiB"), "{e}");
    }

    /// Issue 13, item 14: a value missing inside a sub-expression is named, with its place.
    #[test]
    fn issue13_a_missing_value_in_a_sub_expression_is_named() {
        let mut r = Renderer::default();
        r.add(
            "t",
            "Hello\n{{#if (eq agents.a.json.kind \"x\")}}yes{{/if}}",
        )
        .unwrap();
        let e = r
            .render("t", &Values::from(json!({"agents": {"a": {"json": {}}}})))
            .unwrap_err();
        assert!(!e.to_string().contains("None"), "{e}");
        assert!(e.message.contains("`agents.a.json.kind`"), "{e}");
        assert_eq!(e.at.map(|(line, _)| line), Some(2), "{e}");
        r.add("lookup", "{{#if (lookup agents.a.json \"k\")}}x{{/if}}")
            .unwrap();
        let e = r
            .render(
                "lookup",
                &Values::from(json!({"agents": {"a": {"json": {}}}})),
            )
            .unwrap_err();
        assert_eq!(
            e.message,
            "a `lookup` in `{{#if (lookup agents.a.json \"k\")}}` found nothing"
        );
    }
}
