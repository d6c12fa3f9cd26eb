//! One index of a text's line starts, built once, so that turning a byte offset
//! into a line and column (or back) costs a binary search instead of a scan
//! from the top: reporting N problems in a file stays linear in N.

use super::yaml::Pos;

/// Where each line of a text starts.
#[derive(Debug, Clone, Default)]
pub struct LineIndex {
    /// Byte offset of the start of each line; the first is 0.
    starts: Vec<usize>,
    len: usize,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(
            text.bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i + 1),
        );
        LineIndex {
            starts,
            len: text.len(),
        }
    }

    /// How many lines the text has (a final line break starts an empty line).
    pub fn count(&self) -> usize {
        self.starts.len()
    }

    /// The 0-based line that byte `offset` is on.
    pub fn line_of(&self, offset: usize) -> usize {
        let offset = offset.min(self.len);
        self.starts.partition_point(|&s| s <= offset) - 1
    }

    /// The byte range of 0-based `line`, without its line break (nor a `\r` before it).
    pub fn line_range(&self, text: &str, line: usize) -> std::ops::Range<usize> {
        let start = self.starts.get(line).copied().unwrap_or(self.len);
        let mut end = self.starts.get(line + 1).map_or(self.len, |next| next - 1);
        if end > start && text.as_bytes().get(end - 1) == Some(&b'\r') {
            end -= 1;
        }
        start..end.max(start)
    }

    /// The position (1-based line and character column) of byte `offset` in `text`.
    pub fn pos(&self, text: &str, offset: usize) -> Pos {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.line_of(offset);
        let start = self.starts[line];
        Pos {
            line: line + 1,
            column: text[start..offset].chars().count() + 1,
            offset,
        }
    }

    /// The byte offset of a 1-based line and character column, clamped to the line.
    pub fn offset(&self, text: &str, line: usize, column: usize) -> usize {
        let Some(&start) = self.starts.get(line.saturating_sub(1)) else {
            return text.len();
        };
        let end = self.starts.get(line).map_or(text.len(), |next| next - 1);
        text[start..end]
            .char_indices()
            .nth(column.saturating_sub(1))
            .map_or(end, |(i, _)| start + i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_offsets_and_positions_both_ways() {
        let text = "ab\nçd\r\n\nlast";
        let index = LineIndex::new(text);
        assert_eq!(index.count(), 4);
        let d = text.find('d').unwrap();
        let pos = index.pos(text, d);
        assert_eq!((pos.line, pos.column, pos.offset), (2, 2, d));
        assert_eq!(index.offset(text, 2, 2), d);
        assert_eq!(index.offset(text, 2, 99), text.find('\n').unwrap() + 5);
        assert_eq!(index.offset(text, 9, 1), text.len());
        assert_eq!(&text[index.line_range(text, 1)], "çd");
        assert_eq!(&text[index.line_range(text, 2)], "");
        assert_eq!(&text[index.line_range(text, 3)], "last");
        assert_eq!(index.line_of(text.len()), 3);
    }

    #[test]
    fn an_offset_inside_a_character_is_moved_to_its_start() {
        let text = "é";
        assert_eq!(LineIndex::new(text).pos(text, 1).offset, 0);
    }
}
