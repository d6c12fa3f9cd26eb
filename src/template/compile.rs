//! Compiling a template in pieces, so the cost is linear in its length.
//!
//! Handlebars finds each token's line by scanning from the template's start, so
//! one compile of a long prompt with many tags is quadratic. The template is cut
//! where [`super::scan`] says a piece compiles on its own to the same elements;
//! each piece is compiled, its line numbers moved to where it sits in the whole,
//! and the pieces' elements are joined into one template.
//!
//! Most pieces need no parser at all: plain text is one raw string, and a piece
//! whose only tags are plain paths (`{{inputs.topic}}`) is raw text and those
//! tags, made without the parser. Parsing every prompt twice (to validate, then
//! to render) was a third of a 100,000-agent run.

use std::sync::LazyLock;

use handlebars::template::{Parameter, TemplateElement, TemplateMapping};
use handlebars::{Path, PathSeg, Template, TemplateError};

/// `text` compiled, piece by piece at `cuts` (byte offsets, ascending).
pub fn compile(text: &str, cuts: &[usize]) -> Result<Template, TemplateError> {
    let mut whole = Template::default();
    let mut start = 0;
    let mut line = 0;
    for end in cuts.iter().copied().chain(std::iter::once(text.len())) {
        let piece = &text[start..end];
        let parsed = (!piece.contains("{{") && push_raw(&mut whole, piece, line, 0))
            || push_plain_tags(&mut whole, piece, line);
        if !parsed {
            let Ok(mut compiled) = Template::compile(piece) else {
                // A cut in a wrong place (or a piece with a mistake): the whole
                // template, compiled at once, is right, or says where it is wrong.
                return Template::compile(text);
            };
            shift_lines(&mut compiled, line);
            whole.elements.append(&mut compiled.elements);
            whole.mapping.append(&mut compiled.mapping);
        }
        line += piece.bytes().filter(|&b| b == b'\n').count();
        start = end;
    }
    Ok(whole)
}

/// `TemplateMapping` cannot be built outside Handlebars: the parser's mapping
/// of one character of text, to be moved.
static FIRST: LazyLock<Option<TemplateMapping>> =
    LazyLock::new(|| Template::compile("x").ok()?.mapping.into_iter().next());

/// The parser's mapping moved to 0-based `line` and `column` (in characters).
fn at(first: &TemplateMapping, (line, column): (usize, usize)) -> TemplateMapping {
    let mut mapping = first.clone();
    mapping.0 = line + 1;
    mapping.1 = column + 1;
    mapping
}

/// Adds plain text starting on 0-based `line` and `column`, joined to raw text
/// just before it; false if it could not (then the parser must make it).
fn push_raw(template: &mut Template, text: &str, line: usize, column: usize) -> bool {
    let Some(first) = FIRST.as_ref() else {
        return false;
    };
    push_text(template, first, text, (line, column));
    true
}

fn push_text(template: &mut Template, first: &TemplateMapping, text: &str, place: (usize, usize)) {
    if text.is_empty() {
        return;
    }
    if let Some(TemplateElement::RawString(last)) = template.elements.last_mut() {
        last.push_str(text);
        return;
    }
    template
        .elements
        .push(TemplateElement::RawString(text.to_string()));
    template.mapping.push(at(first, place));
}

/// Where each tag of `text` is (the byte range of `{{…}}`), when its only tags
/// are plain paths (`{{inputs.topic}}`, `{{agents.writer.output}}`): such a tag
/// compiles to the same expression wherever it stands (no block, no white-space
/// control, no standalone-line rule, no escape), so the text between tags is
/// raw. `None` when the text needs the parser.
pub fn plain_tags(text: &str) -> Option<Vec<(usize, usize)>> {
    if text.contains("\\{{") {
        return None;
    }
    let mut tags = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("{{") {
        let start = from + i;
        let len = text[start + 2..].find("}}")?;
        let end = start + 2 + len + 2;
        if !is_plain_path(&text[start + 2..end - 2]) || text[end..].starts_with('}') {
            return None;
        }
        tags.push((start, end));
        from = end;
    }
    Some(tags)
}

/// Adds `piece` (starting on 0-based `line`) when its only tags are plain paths
/// ([`plain_tags`]). False, with `template` untouched, when the piece needs the
/// parser.
fn push_plain_tags(template: &mut Template, piece: &str, line: usize) -> bool {
    let Some(first) = FIRST.as_ref() else {
        return false;
    };
    let Some(tags) = plain_tags(piece) else {
        return false;
    };
    let Some(elements) = tags
        .iter()
        .map(|&(start, end)| plain_tag(&piece[start + 2..end - 2]))
        .collect::<Option<Vec<_>>>()
    else {
        return false;
    };
    // Nothing can fail from here on.
    let mut done = 0;
    let mut place = (line, 0);
    for ((start, end), element) in tags.into_iter().zip(elements) {
        push_text(template, first, &piece[done..start], place);
        place = advance(place, &piece[done..start]);
        template.elements.push(element);
        template.mapping.push(at(first, place));
        place = advance(place, &piece[start..end]);
        done = end;
    }
    push_text(template, first, &piece[done..], place);
    true
}

/// 0-based (line, column in characters) after `text`, starting at `from`.
fn advance(from: (usize, usize), text: &str) -> (usize, usize) {
    match text.rfind('\n') {
        Some(i) => (
            from.0 + text.bytes().filter(|&b| b == b'\n').count(),
            text[i + 1..].chars().count(),
        ),
        None => (from.0, from.1 + text.chars().count()),
    }
}

/// A tag's body that is a plain path: `inputs.topic`, `agents.a-b.json.x_1`:
/// names of letters, digits, `_` and `-` that start with a letter or `_`, joined
/// by dots (`this` among them is dropped by the parser). Keywords, literals, helpers, sigils and spaces are left to the parser.
fn is_plain_path(body: &str) -> bool {
    // `{{elsewhere}}` is an `else` to the parser (and a mistake).
    !body.starts_with("else")
        && !matches!(
            body.split('.').next(),
            Some("true" | "false" | "null" | "undefined" | "as")
        )
        && body.split('.').all(|name| {
            name != "this"
                && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
}

/// What the parser makes of `{{x}}`, to be given another path.
static PLAIN_TAG: LazyLock<Option<TemplateElement>> =
    LazyLock::new(|| Template::compile("{{x}}").ok()?.elements.pop());

/// The expression a plain-path tag compiles to (see [`is_plain_path`]), made
/// without the parser.
fn plain_tag(path: &str) -> Option<TemplateElement> {
    let mut element = PLAIN_TAG.clone()?;
    let TemplateElement::Expression(helper) = &mut element else {
        return None;
    };
    let names = path.split('.').map(|n| PathSeg::Named(n.to_string()));
    helper.name = Parameter::Path(Path::Relative((names.collect(), path.to_string())));
    Some(element)
}

/// Moves every element's line `by` lines down (pieces start at a line's start,
/// so columns stay). Blocks nest at most [`super::scan::MAX_BLOCK_DEPTH`] deep.
fn shift_lines(template: &mut Template, by: usize) {
    for mapping in &mut template.mapping {
        mapping.0 += by;
    }
    for element in &mut template.elements {
        if let TemplateElement::HelperBlock(block) = element {
            for inner in [&mut block.template, &mut block.inverse]
                .into_iter()
                .flatten()
            {
                shift_lines(inner, by);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::scan;

    /// The elements, raw text joined: raw text may be split into more elements;
    /// what they render is the same.
    fn flat(t: &Template) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for e in &t.elements {
            match (e, out.last_mut()) {
                (TemplateElement::RawString(s), Some(last)) if last.starts_with("raw:") => {
                    last.push_str(s);
                }
                (TemplateElement::RawString(s), _) => out.push(format!("raw:{s}")),
                (other, _) => out.push(format!("{other:?}")),
            }
        }
        out
    }

    /// Where each element that is not raw text is.
    fn lines(t: &Template) -> Vec<(usize, usize)> {
        t.elements
            .iter()
            .zip(&t.mapping)
            .filter(|(e, _)| !matches!(e, TemplateElement::RawString(_)))
            .map(|(_, m)| (m.0, m.1))
            .collect()
    }

    /// The pieces join into exactly what one compile makes.
    #[test]
    fn pieces_compile_to_the_whole() {
        let mut text = String::new();
        for i in 0..2_000 {
            text.push_str(&format!("line {i} {{{{inputs.a}}}}\n"));
            if i % 97 == 0 {
                text.push_str("{{#if inputs.b}}\n  yes {{inputs.b}}\n{{else}}\n  no\n{{/if}}\n");
            }
            if i % 101 == 0 {
                text.push_str("   {{~inputs.c~}}   \n");
            }
            if i % 103 == 0 {
                text.push_str("  {{#each inputs.d}}\n    - {{this}}\n  {{/each}}\n\t{{#if inputs.e}}\n\n{{/if}}\n");
            }
            if i % 107 == 0 {
                text.push_str("  {{! a comment }}\n  {{inputs.f}}\n\n  \n");
            }
        }
        let cuts = scan::scan(&text).unwrap();
        assert!(cuts.len() > 3, "{}", cuts.len());
        let pieces = compile(&text, &cuts).unwrap();
        let whole = Template::compile(&text).unwrap();
        assert_eq!(flat(&pieces), flat(&whole));
        assert_eq!(lines(&pieces), lines(&whole));
    }

    /// Plain text skips the parser and comes out as the parser makes it.
    #[test]
    fn plain_text_is_what_the_parser_makes() {
        for text in [
            "",
            "plain",
            "two\nlines\n",
            "  indented\r\n\ttabs } and }} and { braces\n",
            "a backslash \\ and \\{ alone",
            "unicode é 😀\n",
        ] {
            let ours = compile(text, &[]).unwrap();
            let theirs = Template::compile(text).unwrap();
            assert_eq!(ours.elements, theirs.elements, "{text:?}");
            assert_eq!(ours.mapping, theirs.mapping, "{text:?}");
        }
    }

    /// Plain lines between lines with tags are cut out and joined back.
    #[test]
    fn plain_lines_between_tags_compile_to_the_whole() {
        let text = "As the writer, study {{inputs.topic}}.\nKeep it plain.\nNo tags.\n\
                    Notes:\n{{agents.a.output}}\n  {{#each agents.b.json.claims}}- {{this}}\n  {{/each}}\n\
                    End.\n{{x~}}\n   after a trimming tag\n\n{{y}}\n";
        let cuts = scan::scan(text).unwrap();
        assert!(cuts.len() >= 3, "{cuts:?}");
        let pieces = compile(text, &cuts).unwrap();
        let whole = Template::compile(text).unwrap();
        assert_eq!(
            format!("{:?}", pieces.elements),
            format!("{:?}", whole.elements)
        );
        assert_eq!(pieces.mapping, whole.mapping);
    }

    const PARTS: &[&str] = &[
        "text",
        " ",
        "  ",
        "\t",
        "\n",
        "\n",
        "\n",
        "\r\n",
        "{{a}}",
        "{{~a}}",
        "{{a~}}",
        "{{~a~}}",
        "{{#if a}}",
        "{{/if}}",
        "{{else}}",
        "{{#each a}}",
        "{{/each}}",
        "{{! c }}",
        "\\{{a}}",
        "{{b.c-d}}",
        "{{inputs.x_1}}",
        "{{else}}",
        "{{this}}",
        "{{ a }}",
        "{{a}}}",
        "}",
        "a",
        "}}",
        "{",
        "é",
    ];

    proptest::proptest! {
        /// Whatever the text, the pieces compile to what one compile makes.
        #[test]
        fn pieces_are_the_whole(parts in proptest::collection::vec(proptest::sample::select(PARTS), 0..80)) {
            let text = parts.concat();
            let Ok(cuts) = scan::scan(&text) else { return Ok(()) };
            match (compile(&text, &cuts), Template::compile(&text)) {
                (Ok(ours), Ok(theirs)) => {
                    proptest::prop_assert_eq!(flat(&ours), flat(&theirs), "{:?} cut at {:?}", text, cuts);
                    proptest::prop_assert_eq!(lines(&ours), lines(&theirs), "{:?}", text);
                }
                (Err(_), Err(_)) => {}
                (ours, theirs) => proptest::prop_assert!(false, "{:?}: {:?} against {:?}", text, ours.is_ok(), theirs.is_ok()),
            }
        }
    }

    proptest::proptest! {
        /// A plain-path tag made without the parser is what the parser makes.
        #[test]
        fn plain_tags_are_what_the_parser_makes(path in "[a-zA-Z_][a-zA-Z0-9_-]{0,5}(\\.[a-zA-Z_][a-zA-Z0-9_-]{0,5}){0,3}") {
            proptest::prop_assume!(is_plain_path(&path));
            let parsed = Template::compile(&format!("{{{{{path}}}}}")).unwrap();
            let ours = plain_tag(&path);
            proptest::prop_assert_eq!(Some(&parsed.elements[0]), ours.as_ref());
        }
    }

    #[test]
    fn keywords_and_literals_are_not_plain_paths() {
        for body in [
            "else",
            "elsewhere",
            "else-x",
            "this",
            "this.a",
            "a.this",
            "true",
            "null",
            "a..b",
            "a.",
            ".a",
            "1",
            "a.1",
            "@index",
            "a b",
            "",
        ] {
            assert!(!is_plain_path(body), "{body}");
        }
        for body in [
            "inputs.topic",
            "agents.fact-checker-00037.output",
            "item",
            "_x.y_2",
            "a.else",
            "a.true",
            "a.null",
            "inputs.as",
            "a.undefined",
            "a.elsewhere",
            "inputs.else",
            "thistle",
            "trueish",
            "nullable",
            "a--b",
        ] {
            assert!(is_plain_path(body), "{body}");
            let parsed = Template::compile(&format!("{{{{{body}}}}}")).unwrap();
            assert_eq!(
                Some(&parsed.elements[0]),
                plain_tag(body).as_ref(),
                "{body}"
            );
        }
    }

    #[test]
    fn a_mistake_is_reported_where_it_is() {
        let mut text = "text {{inputs.a}}\n".repeat(2_000);
        text.push_str("broken {{#if}\n");
        let cuts = scan::scan(&text).unwrap();
        let error = compile(&text, &cuts).unwrap_err();
        assert_eq!(error.pos().map(|(line, _)| line), Some(2_001));
    }
}
