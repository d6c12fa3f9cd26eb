//! Cutting long texts so a report stays small: a text is cut where its escaped
//! HTML would pass a byte budget, and the report says how much was left out.

/// A text as the report shows it: perhaps cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clipped<'a> {
    pub shown: &'a str,
    /// Characters in the whole text.
    pub total_chars: usize,
    /// Whether `shown` is only the start.
    pub cut: bool,
}

/// The start of `text` whose HTML-escaped form fits in `budget` bytes.
pub fn clip(text: &str, budget: usize) -> Clipped<'_> {
    let mut used = 0;
    let mut end = text.len();
    for (i, c) in text.char_indices() {
        used += escaped_len(c);
        if used > budget {
            end = i;
            break;
        }
    }
    let cut = end < text.len();
    Clipped {
        shown: &text[..end],
        total_chars: text.chars().count(),
        cut,
    }
}

/// Bytes `c` takes once escaped (maud escapes `&`, `<`, `>` and `"`).
fn escaped_len(c: char) -> usize {
    match c {
        '&' => 5,
        '<' | '>' => 4,
        '"' => 6,
        c => c.len_utf8(),
    }
}

/// At most `n` characters of `text`, with `…` when cut.
pub fn first_chars(text: &str, n: usize) -> String {
    match text.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// How many bytes each of `count` texts may take when together they may take
/// `total`: an even share, at least `floor` and at most `ceiling`.
pub fn share(total: usize, count: usize, floor: usize, ceiling: usize) -> usize {
    (total / count.max(1)).clamp(floor, ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clips_on_the_escaped_size_at_a_character_boundary() {
        let c = clip("héllo", 100);
        assert_eq!(c.shown, "héllo");
        assert!(!c.cut);
        let c = clip("<<<<", 9);
        assert_eq!(c.shown, "<<");
        assert!(c.cut);
        assert_eq!(c.total_chars, 4);
        let c = clip("ééé", 3);
        assert_eq!(c.shown, "é");
        assert_eq!(clip("", 0).shown, "");
    }

    #[test]
    fn first_chars_and_shares() {
        assert_eq!(first_chars("abcdef", 3), "abc…");
        assert_eq!(first_chars("abc", 3), "abc");
        assert_eq!(share(1000, 10, 10, 50), 50);
        assert_eq!(share(1000, 0, 10, 5000), 1000);
        assert_eq!(share(1000, 500, 10, 50), 10);
    }
}
