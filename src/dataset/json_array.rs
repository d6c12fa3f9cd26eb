//! A JSON array read one element at a time, so a file of a million rows never
//! sits in memory whole. This splits the array at its top-level commas (minding
//! strings and nesting) and hands each element's bytes, with the line it starts
//! on, to `serde_json`, which does the parsing; the structure around the elements
//! (`[`, `,`, `]`) is checked here.

use std::io::{self, BufRead};

/// One element's bytes, or why the array is broken.
#[derive(Debug)]
pub enum Piece {
    /// An element: its bytes (empty when it was over `limit`), its size, and the
    /// 1-based line and column it starts at.
    Element {
        bytes: Vec<u8>,
        size: usize,
        line: u64,
        column: u64,
    },
    /// The file is not a JSON array (a message with its place).
    Broken(String),
}

/// Reads the elements of a JSON array from a byte stream.
pub struct Elements<R> {
    reader: R,
    limit: usize,
    line: u64,
    column: u64,
    started: bool,
    done: bool,
    count: u64,
}

impl<R: BufRead> Elements<R> {
    /// Elements of the array in `reader`; an element over `limit` bytes is
    /// skipped over, not kept.
    pub fn new(reader: R, limit: usize) -> Self {
        Elements {
            reader,
            limit,
            line: 1,
            column: 1,
            started: false,
            done: false,
            count: 0,
        }
    }

    fn peek(&mut self) -> io::Result<Option<u8>> {
        Ok(self.reader.fill_buf()?.first().copied())
    }

    fn bump(&mut self) -> io::Result<Option<u8>> {
        let byte = self.peek()?;
        if let Some(b) = byte {
            self.reader.consume(1);
            if b == b'\n' {
                self.line += 1;
                self.column = 1;
            } else if b & 0xC0 != 0x80 {
                // Columns count characters, not the continuation bytes of one.
                self.column += 1;
            }
        }
        Ok(byte)
    }

    fn skip_space(&mut self) -> io::Result<Option<u8>> {
        loop {
            match self.peek()? {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump()?;
                }
                other => return Ok(other),
            }
        }
    }

    fn broken(&mut self, what: &str) -> Piece {
        self.done = true;
        Piece::Broken(format!("line {} column {}: {what}", self.line, self.column))
    }

    /// The next element, `None` after the closing `]`.
    pub fn next_piece(&mut self) -> io::Result<Option<Piece>> {
        if self.done {
            return Ok(None);
        }
        if self.started {
            match self.skip_space()? {
                Some(b',') => {
                    self.bump()?;
                }
                Some(b']') => return self.end(),
                Some(_) => return Ok(Some(self.broken("expected `,` or `]` after an element"))),
                None => return Ok(Some(self.broken("the array is never closed with `]`"))),
            }
        } else {
            self.started = true;
            // A UTF-8 byte order mark, as some editors write.
            if self.reader.fill_buf()?.starts_with(b"\xEF\xBB\xBF") {
                self.reader.consume(3);
            }
            match self.skip_space()? {
                Some(b'[') => {
                    self.bump()?;
                }
                Some(_) => {
                    return Ok(Some(
                        self.broken("expected `[`: the file is not a JSON array"),
                    ));
                }
                None => return Ok(Some(self.broken("the file is empty"))),
            }
        }
        match self.skip_space()? {
            Some(b']') if self.count == 0 => return self.end(),
            Some(b']') => return Ok(Some(self.broken("a `,` with no element after it"))),
            None => return Ok(Some(self.broken("the array is never closed with `]`"))),
            Some(_) => {}
        }
        let (line, column) = (self.line, self.column);
        let (bytes, size) = self.element()?;
        self.count += 1;
        Ok(Some(Piece::Element {
            bytes,
            size,
            line,
            column,
        }))
    }

    /// After the closing `]`: nothing but white space may follow.
    fn end(&mut self) -> io::Result<Option<Piece>> {
        self.bump()?;
        self.done = true;
        if self.skip_space()?.is_some() {
            return Ok(Some(self.broken("text after the closing `]`")));
        }
        Ok(None)
    }

    /// The bytes of one element, up to the `,` or `]` that ends it at the top level.
    fn element(&mut self) -> io::Result<(Vec<u8>, usize)> {
        let mut bytes = Vec::new();
        let mut size = 0;
        let mut depth = 0usize;
        let (mut in_string, mut escaped) = (false, false);
        while let Some(b) = self.peek()? {
            if !in_string && depth == 0 && matches!(b, b',' | b']') {
                break;
            }
            self.bump()?;
            size += 1;
            if size <= self.limit {
                bytes.push(b);
            }
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => depth += 1,
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        if size > self.limit {
            bytes = Vec::new();
        }
        while bytes.last().is_some_and(u8::is_ascii_whitespace) {
            bytes.pop();
        }
        Ok((bytes, size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(text: &str) -> Vec<String> {
        let mut elements = Elements::new(text.as_bytes(), 1 << 20);
        let mut out = Vec::new();
        while let Some(piece) = elements.next_piece().unwrap() {
            out.push(match piece {
                Piece::Element {
                    bytes,
                    line,
                    column,
                    ..
                } => format!("{line}:{column} {}", String::from_utf8(bytes).unwrap()),
                Piece::Broken(why) => format!("broken {why}"),
            });
        }
        out
    }

    #[test]
    fn splits_at_top_level_commas_only() {
        let text =
            "\u{feff}[\n  {\"a\": \"x, ]y\\\"\", \"b\": [1, 2]},\n  {\"c\": {\"d\": 1}} , 3\n]\n";
        assert_eq!(
            pieces(text),
            [
                "2:3 {\"a\": \"x, ]y\\\"\", \"b\": [1, 2]}",
                "3:3 {\"c\": {\"d\": 1}}",
                "3:21 3"
            ]
        );
    }

    #[test]
    fn an_empty_array_has_no_elements() {
        assert!(pieces(" [ ] ").is_empty());
    }

    #[test]
    fn broken_arrays_say_where() {
        assert_eq!(pieces(""), ["broken line 1 column 1: the file is empty"]);
        assert_eq!(
            pieces("{\"a\": 1}"),
            ["broken line 1 column 1: expected `[`: the file is not a JSON array"]
        );
        assert_eq!(
            pieces("[1 2]"),
            ["1:2 1 2"],
            "serde_json finds `1 2` is not one value"
        );
        assert_eq!(
            pieces("[1,]"),
            [
                "1:2 1",
                "broken line 1 column 4: a `,` with no element after it"
            ]
        );
        assert_eq!(
            pieces("[1,\n2"),
            [
                "1:2 1",
                "2:1 2",
                "broken line 2 column 2: the array is never closed with `]`"
            ]
        );
        assert_eq!(
            pieces("[1] x"),
            [
                "1:2 1",
                "broken line 1 column 5: text after the closing `]`"
            ]
        );
    }

    #[test]
    fn an_element_over_the_limit_is_measured_not_kept() {
        let mut elements = Elements::new("[\"abcdefgh\", 1]".as_bytes(), 4);
        let Some(Piece::Element { bytes, size, .. }) = elements.next_piece().unwrap() else {
            panic!("an element");
        };
        assert!(bytes.is_empty());
        assert_eq!(size, 10);
    }
}
