//! The lines of the file a diagnostic quotes, as miette reads them.
//!
//! miette finds a span's lines by scanning its source from the top, which made
//! reporting N problems in a long file quadratic. A [`Snippet`] holds only the
//! few lines around one problem, cut out with the file's [`LineIndex`], so each
//! diagnostic costs the length of its own lines. Those lines are shown with
//! their control characters escaped ([`crate::printable`]), and the caret is
//! moved to where its text landed after escaping, so it stays under the mistake.

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

use super::lines::LineIndex;
use super::yaml::Pos;
use crate::printable;

/// Lines longer than this are not quoted: they would not be readable, and miette
/// panics on a caret past column 65,535. A neighbouring line that long is cut.
pub const MAX_QUOTED_LINE: usize = 1_000;

/// How many lines are shown above and below the problem's line.
pub const CONTEXT_LINES: usize = 1;

/// The escaped lines around one problem, numbered as in the file.
#[derive(Debug)]
pub struct Snippet {
    name: String,
    text: String,
    /// The 0-based line number of the first line of `text`.
    first_line: usize,
    /// The problem, in `text`'s bytes.
    pub span: SourceSpan,
    /// Where the problem starts in the file: 0-based line and column.
    line: usize,
    column: usize,
}

impl Snippet {
    /// The lines around `len` bytes at `pos` in `source`, or `None` when the
    /// problem's own line is too long to quote.
    pub fn new(
        name: &str,
        source: &str,
        index: &LineIndex,
        pos: Pos,
        len: usize,
    ) -> Option<Snippet> {
        let offset = index.pos(source, pos.offset).offset;
        let line = index.line_of(offset);
        let own = index.line_range(source, line);
        if source[own.clone()].chars().count() > MAX_QUOTED_LINE {
            return None;
        }
        let first_line = line.saturating_sub(CONTEXT_LINES);
        let last_line = (line + CONTEXT_LINES).min(index.count() - 1);
        let mut text = String::new();
        let mut span = SourceSpan::new(0.into(), 0);
        for l in first_line..=last_line {
            let range = index.line_range(source, l);
            if l > line && range.start == source.len() {
                break; // the "line" after the file's final line break
            }
            let line_text = &source[range.clone()];
            if l == line {
                let start = offset.clamp(range.start, range.end) - range.start;
                let mut end = (start + len.max(1)).min(line_text.len());
                while !line_text.is_char_boundary(end) {
                    end += 1;
                }
                let at = text.len() + printable::escape_line(&line_text[..start]).len();
                let width = printable::escape_line(&line_text[start..end]).len();
                span = SourceSpan::new(at.into(), width);
                text.push_str(&printable::escape_line(line_text));
            } else if line_text.chars().count() > MAX_QUOTED_LINE {
                let cut: String = line_text.chars().take(MAX_QUOTED_LINE).collect();
                text.push_str(&printable::escape_line(&cut));
                text.push('…');
            } else {
                text.push_str(&printable::escape_line(line_text));
            }
            text.push('\n');
        }
        Some(Snippet {
            name: printable::escape(name).into_owned(),
            text,
            first_line,
            span,
            line,
            column: pos.column.saturating_sub(1),
        })
    }
}

impl SourceCode for Snippet {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let inner =
            self.text
                .as_str()
                .read_span(span, context_lines_before, context_lines_after)?;
        // The header (`╭─[file:line:col]`) reads the primary span alone: give it the
        // place in the file, not in the escaped text.
        let (line, column) =
            if context_lines_before == 0 && context_lines_after == 0 && *span == self.span {
                (self.line, self.column)
            } else {
                (inner.line() + self.first_line, inner.column())
            };
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            line,
            column,
            inner.line_count(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snippet(source: &str, offset: usize, len: usize) -> Snippet {
        let index = LineIndex::new(source);
        let pos = index.pos(source, offset);
        Snippet::new("f.yaml", source, &index, pos, len).unwrap()
    }

    #[test]
    fn holds_the_lines_around_the_problem() {
        let source = "one\ntwo\nthree bad\nfour\nfive\n";
        let s = snippet(source, source.find("bad").unwrap(), 3);
        assert_eq!(s.text, "two\nthree bad\nfour\n");
        assert_eq!(s.first_line, 1);
        let at = s.span.offset();
        assert_eq!(&s.text[at..at + s.span.len()], "bad");
    }

    #[test]
    fn the_caret_follows_escaped_text() {
        let source = "a: \"\x1b[2J\"\nb: \x1b]0;x\x07 bad\n";
        let s = snippet(source, source.find("bad").unwrap(), 3);
        assert!(
            !s.text.contains('\x1b') && !s.text.contains('\x07'),
            "{:?}",
            s.text
        );
        let at = s.span.offset();
        assert_eq!(&s.text[at..at + s.span.len()], "bad");
        assert!(s.text.contains("b: \\x1b]0;x\\x07 bad"), "{:?}", s.text);
    }

    #[test]
    fn long_neighbours_are_cut_and_long_lines_not_quoted() {
        let long = "x".repeat(5_000);
        let source = format!("{long}\nbad\n");
        let s = snippet(&source, source.find("bad").unwrap(), 3);
        assert!(s.text.len() < 1_100, "{}", s.text.len());
        let index = LineIndex::new(&source);
        assert!(Snippet::new("f", &source, &index, index.pos(&source, 10), 1).is_none());
    }
}
