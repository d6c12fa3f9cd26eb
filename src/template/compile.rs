//! Compiling a template in pieces, so the cost is linear in its length.
//!
//! Handlebars finds each token's line by scanning from the template's start, so
//! one compile of a long prompt with many tags is quadratic. The template is cut
//! where [`super::scan`] says a piece compiles on its own to the same elements;
//! each piece is compiled, its line numbers moved to where it sits in the whole,
//! and the pieces' elements are joined into one template.

use handlebars::template::TemplateElement;
use handlebars::{Template, TemplateError};

/// `text` compiled, piece by piece at `cuts` (byte offsets, ascending).
pub fn compile(text: &str, cuts: &[usize]) -> Result<Template, TemplateError> {
    if cuts.is_empty() {
        return Template::compile(text);
    }
    let mut whole = Template::default();
    let mut start = 0;
    let mut line = 0;
    for end in cuts.iter().copied().chain(std::iter::once(text.len())) {
        let piece = &text[start..end];
        let Ok(mut compiled) = Template::compile(piece) else {
            // A cut in a wrong place (or a piece with a mistake): the whole
            // template, compiled at once, is right, or says where it is wrong.
            return Template::compile(text);
        };
        shift_lines(&mut compiled, line);
        whole.elements.append(&mut compiled.elements);
        whole.mapping.append(&mut compiled.mapping);
        line += piece.bytes().filter(|&b| b == b'\n').count();
        start = end;
    }
    Ok(whole)
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
        // Raw text may be split into more elements; what they render is the same.
        let flat = |t: &Template| -> Vec<String> {
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
        };
        assert_eq!(flat(&pieces), flat(&whole));
        let lines = |t: &Template| {
            t.elements
                .iter()
                .zip(&t.mapping)
                .filter(|(e, _)| !matches!(e, TemplateElement::RawString(_)))
                .map(|(_, m)| (m.0, m.1))
                .collect::<Vec<_>>()
        };
        assert_eq!(lines(&pieces), lines(&whole));
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
