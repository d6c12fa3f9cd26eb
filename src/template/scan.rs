//! A lexical pass over a template before Handlebars parses it, for two things
//! the parser does badly on text a workflow controls:
//!
//! - **Nesting.** The parser (pest) and the renderer recurse once per nested
//!   block and per nested sub-expression or literal, so 5,000 nested `{{#if}}`
//!   overflow the stack. Blocks may nest [`MAX_BLOCK_DEPTH`] deep (an
//!   `{{else if …}}` counts as one more level: it nests in the parsed template)
//!   and sub-expressions and literals [`MAX_EXPRESSION_DEPTH`] deep; deeper is
//!   refused here, before anything recurses.
//! - **Length.** Compiling a template costs, for every token, a scan from the
//!   template's start to find its line (pest's `Position::line_col`), so a long
//!   prompt with many tags took minutes. The scan finds where the template can be
//!   cut into pieces that compile on their own to the same elements: at the start
//!   of a line, outside every block, tag and comment, where the line does not
//!   start with a tag that trims the white space before it (so no whitespace
//!   control or standalone-line rule reaches across).

use super::TemplateProblem;

/// How deep blocks may nest (`{{#if}}` in `{{#each}}` is 2; an `{{else if}}` adds 1).
pub const MAX_BLOCK_DEPTH: usize = 32;

/// How deep sub-expressions and literals may nest inside one tag (`(not (eq a b))` is 2).
pub const MAX_EXPRESSION_DEPTH: usize = 16;

/// Pieces are cut once they are at least this long: a piece costs its length
/// times its tags, so short pieces keep a long prompt's compile fast.
const PIECE_BYTES: usize = 512;

const SPACE_OR_TILDE: [char; 5] = [' ', '\t', '\r', '\n', '~'];

const NESTING_HELP: &str = "each level is rendered by a call inside the one around it; flatten the template (an `{{else if}}` chain can often be several `{{#if}}` blocks one after another)";

/// Where `text` may be cut into pieces that compile on their own (byte offsets
/// of piece starts after the first), or the first nesting that is too deep.
pub fn scan(text: &str) -> Result<Vec<usize>, TemplateProblem> {
    let bytes = text.as_bytes();
    // Open blocks: each one level, plus one per `{{else if}}` in it so far.
    let mut open: Vec<usize> = Vec::new();
    let mut cuts = Vec::new();
    let mut last_cut = 0;
    // Tags since the last cut: a piece of plain text costs little, whatever its length.
    let mut tags = 0;
    // Whether the last tag trims the white space after it (`~}}`) and only white
    // space has followed: that trimming reaches across a line break.
    let mut trimming = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                i += 1;
                if open.is_empty() && !trimming && cuttable(&text[i..]) {
                    // Cut where plain lines meet lines with tags (plain text needs
                    // no parsing), and within long runs of lines with tags.
                    let next_has_tags = text[i..]
                        .split_inclusive('\n')
                        .next()
                        .is_some_and(|line| line.contains("{{"));
                    let cut = if tags > 0 {
                        i - last_cut >= PIECE_BYTES || !next_has_tags
                    } else {
                        next_has_tags && i > last_cut
                    };
                    if cut {
                        cuts.push(i);
                        last_cut = i;
                        tags = 0;
                    }
                }
            }
            // Not white space: read again with the trimming over.
            b if trimming && !b.is_ascii_whitespace() => trimming = false,
            b'\\' if bytes[i..].starts_with(b"\\{{") => {
                // `\{{` is text; `\\{{` is a backslash, then a tag.
                let escaped = i == 0 || bytes[i - 1] != b'\\';
                i += if escaped { 3 } else { 1 };
            }
            b'{' if bytes[i..].starts_with(b"{{") => {
                let Some(tag) = Tag::read(text, i) else {
                    return Ok(cuts); // unterminated: the parser reports it
                };
                if tag.depth > MAX_EXPRESSION_DEPTH {
                    return Err(TemplateProblem::new(
                        text,
                        Some(i),
                        format!(
                            "sub-expressions and literals nest more than {MAX_EXPRESSION_DEPTH} deep in this tag"
                        ),
                        NESTING_HELP,
                    ));
                }
                match tag.kind {
                    Kind::Open => open.push(1),
                    Kind::Close => {
                        open.pop();
                    }
                    Kind::Chain => {
                        if let Some(top) = open.last_mut() {
                            *top += 1;
                        }
                    }
                    Kind::Other => {}
                }
                if open.iter().sum::<usize>() > MAX_BLOCK_DEPTH {
                    return Err(TemplateProblem::new(
                        text,
                        Some(i),
                        format!("blocks nest more than {MAX_BLOCK_DEPTH} deep here"),
                        NESTING_HELP,
                    ));
                }
                i = tag.end;
                tags += 1;
                trimming = text[..i].ends_with("~}}") || text[..i].ends_with("~}}}");
            }
            _ => i += 1,
        }
    }
    Ok(cuts)
}

/// Whether a piece may start with `line`: not with a tag that trims the white
/// space before it (`{{~`), which is in the piece before, nor an escape or a
/// line break (a standalone tag's line ends in its own piece).
fn cuttable(line: &str) -> bool {
    let text = line.trim_start_matches([' ', '\t']);
    !(text.starts_with("{{~")
        || text.starts_with('\\')
        || text.starts_with(['\r', '\n'])
        || text.is_empty())
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    /// `{{#name …}}`: a block opens.
    Open,
    /// `{{/name}}`
    Close,
    /// `{{else name …}}` or `{{^name …}}`: a chained block, nested in the last.
    Chain,
    Other,
}

struct Tag {
    kind: Kind,
    /// How deep parentheses, brackets and braces nest inside it.
    depth: usize,
    /// The offset just past it.
    end: usize,
}

impl Tag {
    /// The tag (or comment) at `start`, which holds `{{`; `None` when it never ends.
    fn read(text: &str, start: usize) -> Option<Tag> {
        let rest = &text[start..];
        if rest.starts_with("{{!--") {
            let end = start + rest.find("--}}")? + 4;
            return Some(Tag::other(end));
        }
        if rest.starts_with("{{!") {
            let end = start + rest.find("}}")? + 2;
            return Some(Tag::other(end));
        }
        let bytes = text.as_bytes();
        let mut i = start + 2;
        let mut close = "}}";
        if bytes.get(i) == Some(&b'{') {
            // `{{{x}}}` (and `{{{{raw}}}}`, which validation refuses).
            close = "}}}";
            i += 1;
        }
        if bytes.get(i) == Some(&b'~') {
            i += 1;
        }
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let body = &text[i..];
        let kind = if body.starts_with('#') {
            Kind::Open
        } else if body.starts_with('/') {
            Kind::Close
        } else if let Some(after) = body.strip_prefix('^') {
            // `{{^}}` switches to the inverse; `{{^name}}` chains.
            if after.trim_start_matches(SPACE_OR_TILDE).starts_with("}}") {
                Kind::Other
            } else {
                Kind::Chain
            }
        } else if let Some(after) = body.strip_prefix("else") {
            // `{{else}}` switches to the inverse; `{{else if …}}` chains.
            let chained = after.starts_with(char::is_whitespace)
                && !after.trim_start_matches(SPACE_OR_TILDE).starts_with("}}");
            if chained { Kind::Chain } else { Kind::Other }
        } else {
            Kind::Other
        };
        let mut depth = 0usize;
        let mut deepest = 0;
        let mut quote: Option<u8> = None;
        while i < bytes.len() {
            let b = bytes[i];
            match quote {
                Some(q) => {
                    if b == b'\\' {
                        i += 1;
                    } else if b == q {
                        quote = None;
                    }
                }
                None if bytes[i..].starts_with(close.as_bytes()) && depth == 0 => {
                    return Some(Tag {
                        kind,
                        depth: deepest,
                        end: i + close.len(),
                    });
                }
                None => match b {
                    b'"' | b'\'' => quote = Some(b),
                    b'(' | b'[' | b'{' => {
                        depth += 1;
                        deepest = deepest.max(depth);
                    }
                    b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                    _ => {}
                },
            }
            i += 1;
        }
        None
    }

    fn other(end: usize) -> Tag {
        Tag {
            kind: Kind::Other,
            depth: 0,
            end,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_ifs(n: usize) -> String {
        format!("{}x{}", "{{#if a}}".repeat(n), "{{/if}}".repeat(n))
    }

    #[test]
    fn a_tag_with_a_multibyte_character_is_read_without_panicking() {
        for text in ["{{{é", "{{é}}", "{{{é}}}", "{{#if \"é\"}}é{{/if}}"] {
            assert!(scan(text).is_ok(), "{text}");
        }
    }

    #[test]
    fn nesting_up_to_the_limit_is_fine_deeper_is_refused() {
        assert!(scan(&nested_ifs(MAX_BLOCK_DEPTH)).is_ok());
        let e = scan(&nested_ifs(5_000)).unwrap_err();
        assert!(e.message.contains("nest more than 32 deep"), "{e:?}");
        assert_eq!(e.at, Some((1, 1 + 9 * MAX_BLOCK_DEPTH)));
    }

    #[test]
    fn else_if_chains_count_as_nesting() {
        let chain = |n: usize| {
            format!(
                "{{{{#if a}}}}x{}{{{{else}}}}z{{{{/if}}}}",
                "{{else if b}}y".repeat(n)
            )
        };
        assert!(scan(&chain(MAX_BLOCK_DEPTH - 1)).is_ok());
        assert!(scan(&chain(MAX_BLOCK_DEPTH)).is_err());
        // Plain `{{else}}` in sibling blocks does not add up.
        let siblings = "{{#if a}}x{{else}}y{{/if}}".repeat(100);
        assert!(scan(&siblings).is_ok());
    }

    #[test]
    fn deep_sub_expressions_are_refused() {
        let deep = format!("{{{{eq {}a{} b}}}}", "(not ".repeat(40), ")".repeat(40));
        assert!(scan(&deep).is_err());
        let literal = format!("{{{{eq {}{} b}}}}", "[".repeat(40), "]".repeat(40));
        assert!(scan(&literal).is_err());
        assert!(scan("{{eq (not (not a)) \"((((((((((((((((((\"}}").is_ok());
    }

    #[test]
    fn cuts_only_between_top_level_lines() {
        let line = "some text {{inputs.a}}\n".repeat(1_000);
        let text = format!("{line}{{{{#if x}}}}\n{line}{{{{/if}}}}\n  {line}");
        let cuts = scan(&text).unwrap();
        assert!(!cuts.is_empty());
        let block = text.find("{{#if").unwrap()..text.find("{{/if}}").unwrap();
        for &cut in &cuts {
            assert!(!block.contains(&cut), "{cut} is inside the block");
            assert_eq!(&text[cut - 1..cut], "\n");
            assert!(
                text[cut..].trim_start().starts_with("some"),
                "{:?}",
                &text[cut..cut + 10]
            );
        }
    }

    #[test]
    fn plain_text_and_trimming_tags_are_not_cut() {
        let plain = "no tags here\n".repeat(10_000);
        assert!(scan(&plain).unwrap().is_empty());
        let trims = "{{inputs.a}}\n  {{~inputs.b}}\n".repeat(1_000);
        for cut in scan(&trims).unwrap() {
            assert!(!text_at(&trims, cut).trim_start().starts_with("{{~"));
        }
    }

    fn text_at(text: &str, at: usize) -> &str {
        &text[at..(at + 20).min(text.len())]
    }

    #[test]
    fn comments_and_escapes_are_not_tags() {
        assert!(scan("{{!-- {{#if a}} --}}\\{{#if b}}").is_ok());
        let deep = format!("{{{{!-- {} --}}}}", nested_ifs(100));
        assert!(scan(&deep).is_ok());
    }
}
