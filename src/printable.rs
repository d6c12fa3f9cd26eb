//! Text from files and servers made safe to print: control characters shown
//! escaped (`\x1b`), so a workflow or a reply that holds `ESC]0;…BEL`, `ESC[2J`
//! or a NUL cannot retitle, clear or otherwise drive the reader's terminal (or
//! the GitHub log viewer, which interprets colour codes), and bidirectional
//! overrides shown as `\u{202e}`, so a quoted line reads as it is stored.
//!
//! Line breaks and tabs are kept: messages have lines, and YAML is indented.
//! What is *written* as data (stdout results, `--out` files, JSON) is left
//! alone; this is for what is shown to a person.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `text` with every control character escaped, or `text` itself when it has none.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push(&mut out, c);
    }
    Cow::Owned(out)
}

/// One line of a file, escaped: as [`escape`], and a line break inside it too.
pub fn escape_line(line: &str) -> Cow<'_, str> {
    if !line.chars().any(|c| c == '\n' || needs_escape(c)) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        if c == '\n' {
            out.push_str("\\x0a");
        } else {
            push(&mut out, c);
        }
    }
    Cow::Owned(out)
}

/// How many bytes `c` takes once escaped (for keeping a caret under its place).
pub fn escaped_len(c: char) -> usize {
    if needs_escape(c) {
        let mut one = String::new();
        push(&mut one, c);
        one.len()
    } else {
        c.len_utf8()
    }
}

fn needs_escape(c: char) -> bool {
    match c {
        '\n' | '\t' => false,
        _ if c.is_control() => true,
        // Bidirectional embeddings, overrides, isolates and marks: they reorder
        // what a terminal shows ("Trojan Source", CVE-2021-42574).
        '\u{061c}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

fn push(out: &mut String, c: char) {
    if !needs_escape(c) {
        out.push(c);
    } else if (c as u32) < 0x80 {
        let _ = write!(out, "\\x{:02x}", c as u32);
    } else {
        let _ = write!(out, "\\u{{{:x}}}", c as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_terminal_controls_and_keeps_the_rest() {
        assert_eq!(escape("plain é\ttext\n"), "plain é\ttext\n");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(escape("\x1b]0;owned\x07"), "\\x1b]0;owned\\x07");
        assert_eq!(escape("a\x1b[2Jb\0c\x7f"), "a\\x1b[2Jb\\x00c\\x7f");
        assert_eq!(escape("\r"), "\\x0d");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
    }

    #[test]
    fn lengths_match_the_escaped_text() {
        for c in ['a', 'é', '\x1b', '\0', '\u{9b}', '\u{202e}', '\t'] {
            assert_eq!(escaped_len(c), escape(&c.to_string()).len(), "{c:?}");
        }
        assert_eq!(escape_line("a\nb"), "a\\x0ab");
    }
}
