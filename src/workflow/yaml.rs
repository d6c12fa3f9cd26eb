//! The one module that touches the YAML crate.
//!
//! It parses a workflow file into a [`Node`] tree in which every value keeps the
//! line, column and byte offset it came from. Everything above this module works
//! on that tree (or on JSON made from it), so the YAML crate can be replaced here
//! alone. The parser is `serde-saphyr`: maintained, panic-free on malformed input,
//! YAML 1.2 scalars (`no` stays a string), anchors and `<<` merge keys, a budget
//! against alias bombs and deep nesting, and a source location on every error.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Budget, Options, Spanned};
use std::fmt;

/// A place in the workflow file: 1-based line and column, and the byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
    pub offset: usize,
}

impl Pos {
    fn from_location(loc: serde_saphyr::Location, src: &str) -> Option<Self> {
        let mut pos = Self::of_location(loc)?;
        if pos.offset == UNKNOWN_OFFSET {
            pos.offset = offset_of(src, pos.line, pos.column);
        }
        Some(pos)
    }

    /// The place of a location, its offset [`UNKNOWN_OFFSET`] when the parser
    /// gave none (filled from the text by [`fill_offsets`]).
    fn of_location(loc: serde_saphyr::Location) -> Option<Self> {
        if loc.line() == 0 {
            return None;
        }
        Some(Pos {
            line: usize::try_from(loc.line()).ok()?,
            column: usize::try_from(loc.column()).ok()?,
            offset: loc
                .span()
                .byte_offset()
                .and_then(|o| usize::try_from(o).ok())
                .unwrap_or(UNKNOWN_OFFSET),
        })
    }
}

/// Stands for an offset the parser did not give, until the text is at hand.
const UNKNOWN_OFFSET: usize = usize::MAX;

/// Byte offset of a 1-based line and (character) column, clamped to the text.
pub fn offset_of(src: &str, line: usize, column: usize) -> usize {
    let mut start = 0;
    for _ in 1..line {
        match src[start..].find('\n') {
            Some(i) => start += i + 1,
            None => return src.len(),
        }
    }
    let rest = &src[start..];
    let end_of_line = rest.find('\n').unwrap_or(rest.len());
    rest[..end_of_line]
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(start + end_of_line, |(i, _)| start + i)
}

/// A YAML value with the position of each of its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Option<Pos>,
    pub value: Value,
}

/// The shape of a [`Node`]. Mappings keep their order and their keys' positions.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A YAML problem: what is wrong, where, and (when known) what to do about it.
#[derive(Debug, Clone)]
pub struct YamlError {
    pub message: String,
    pub pos: Option<Pos>,
    pub help: Option<String>,
}

/// How deeply a workflow may nest mappings and lists.
pub const MAX_DEPTH: usize = 64;

/// How many values aliases may copy in, in all, before the file is refused as an
/// alias bomb. A 10,000-agent workflow that merges a four-field block into every
/// agent replays about 100,000; a "billion laughs" file asks for billions.
const MAX_REPLAYED_EVENTS: usize = 250_000;

/// Parses one YAML document into a positioned tree.
pub fn parse(src: &str) -> Result<Node, YamlError> {
    let mut budget = Budget::default();
    budget.max_events = 4_000_000;
    budget.max_nodes = 2_000_000;
    budget.max_depth = MAX_DEPTH;
    budget.max_documents = 1;
    // Anchors that copy other anchors (the "billion laughs" shape) are charged here;
    // the default (1,000,000) lets a bomb run for seconds before it is refused.
    budget.max_recorded_anchor_events = MAX_REPLAYED_EVENTS / 5;
    // Many aliases of one anchor is how agents share settings (`<<: *base` in each);
    // the replay limits above bound the work, so the aliases-per-anchor heuristic,
    // which refuses 101 agents merging one block, is off.
    budget.enforce_alias_anchor_ratio = false;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = MAX_REPLAYED_EVENTS;
    options.strict_booleans = true;
    options.with_snippet = false;
    // Each value becomes a `Node` as soon as it is read, so the parser's own
    // tree of spans never exists whole beside ours (at 100,000 agents, 100 MB).
    let mut node: Node = serde_saphyr::from_str_with_options(src, options).map_err(|e| {
        let (message, help) = explain(&e.to_string());
        YamlError {
            pos: e
                .location()
                .and_then(|l| Pos::from_location(l, src))
                .map(|p| back_over_tabs(p, src)),
            message,
            help,
        }
    })?;
    fill_offsets(&mut node, src);
    Ok(node)
}

/// Gives every place the parser left without a byte offset its offset in `src`.
/// Nesting is bounded by [`MAX_DEPTH`], so the walk's recursion is too.
fn fill_offsets(node: &mut Node, src: &str) {
    if let Some(pos) = &mut node.pos
        && pos.offset == UNKNOWN_OFFSET
    {
        pos.offset = offset_of(src, pos.line, pos.column);
    }
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|n| fill_offsets(n, src)),
        Value::Map(entries) => {
            for (k, v) in entries {
                fill_offsets(k, src);
                fill_offsets(v, src);
            }
        }
        _ => {}
    }
}

/// The parser reports a tab where it stopped reading, just after it; the caret
/// belongs on the tab itself.
fn back_over_tabs(mut pos: Pos, src: &str) -> Pos {
    while pos.offset > 0 && pos.column > 1 && src.as_bytes().get(pos.offset - 1) == Some(&b'\t') {
        pos.offset -= 1;
        pos.column -= 1;
    }
    pos
}

/// The parser's message in the workflow's terms, without the position it appends
/// (we print our own) or advice meant for programs that embed the parser, and the
/// fix when the problem is one we know.
fn explain(message: &str) -> (String, Option<String>) {
    let first = message.lines().next().unwrap_or(message).trim();
    let cut = first
        .find(" at line ")
        .map_or(first, |i| &first[..i])
        .trim_end_matches([':', ',']);
    let known = |message: String, help: &str| (message, Some(help.to_string()));
    if let Some(rest) = cut.strip_prefix("duplicate mapping key") {
        let key = rest
            .trim_start_matches(": ")
            .split(", set DuplicateKeyPolicy")
            .next()
            .unwrap_or_default();
        let message = if key.is_empty() || key.starts_with(',') {
            "duplicate key in this mapping".to_string()
        } else {
            format!("duplicate key `{key}`")
        };
        return known(
            message,
            "each key may appear once in a mapping; remove or rename one of them",
        );
    }
    if cut.starts_with("alias references unknown anchor") {
        return known(
            "this alias (`*name`) refers to an anchor (`&name`) that is not defined above it"
                .into(),
            "define the anchor before its first use, like `x-base: &base` at the top level (byok-flow ignores `x-` keys)",
        );
    }
    let bomb = || {
        known(
            "the file's aliases (`*name`) expand to too many values".into(),
            "this looks like a YAML alias bomb; a workflow never needs aliases nested this way",
        )
    };
    if cut.starts_with("alias replay") || cut.starts_with("alias expansion") {
        return bomb();
    }
    if let Some(rest) = cut.strip_prefix("non-finite float ") {
        let value = rest.split(" rejected").next().unwrap_or(rest);
        return known(
            format!("{value} is not a finite number"),
            "write a number such as `0.5`, or quote the value if it is text",
        );
    }
    if cut == "recursion limit exceeded" {
        return known(
            format!("the YAML is nested more than {MAX_DEPTH} levels deep"),
            "a workflow nests a few levels; is this the right file?",
        );
    }
    if let Some(breach) = cut.strip_prefix("budget breached: ") {
        let kind = breach.split([' ', '{']).next().unwrap_or_default();
        return match kind {
            "Depth" => known(
                format!("the YAML is nested more than {MAX_DEPTH} levels deep"),
                "a workflow nests a few levels; is this the right file?",
            ),
            "Documents" => known(
                "the file holds more than one YAML document".into(),
                "a workflow is one document: remove the `---` line, or put the second workflow in a file of its own",
            ),
            "Events" | "Nodes" => known(
                "the file holds too many YAML values to load".into(),
                "split the workflow, or pass long text with `--input NAME=@FILE`",
            ),
            _ => bomb(),
        };
    }
    (cut.to_string(), None)
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        Ok(Node {
            pos: Pos::of_location(spanned.referenced),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Value::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v).map_or(Ok(Value::Float(v as f64)), |i| Ok(Value::Int(i)))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        i64::try_from(v).map_or(Ok(Value::Float(v as f64)), |i| Ok(Value::Int(i)))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i64::try_from(v).map_or(Ok(Value::Float(v as f64)), |i| Ok(Value::Int(i)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::String(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        // Kept until the whole file is read: without the room doubling left.
        items.shrink_to_fit();
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        entries.shrink_to_fit();
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(node: &'a Node, key: &str) -> &'a Node {
        let Value::Map(entries) = &node.value else {
            panic!("not a map: {node:?}")
        };
        &entries
            .iter()
            .find(|(k, _)| k.value == Value::String(key.into()))
            .unwrap_or_else(|| panic!("no key {key}"))
            .1
    }

    #[test]
    fn keeps_positions() {
        let src = "a: 1\nb:\n  c: hello\n";
        let root = parse(src).unwrap();
        let c = get(get(&root, "b"), "c");
        assert_eq!(c.value, Value::String("hello".into()));
        let pos = c.pos.unwrap();
        assert_eq!((pos.line, pos.column), (3, 6));
        assert_eq!(&src[pos.offset..pos.offset + 5], "hello");
    }

    #[test]
    fn yaml_1_2_scalars() {
        let root = parse("a: no\nb: yes\nc: on\nd: true\ne: 012\n").unwrap();
        assert_eq!(get(&root, "a").value, Value::String("no".into()));
        assert_eq!(get(&root, "b").value, Value::String("yes".into()));
        assert_eq!(get(&root, "c").value, Value::String("on".into()));
        assert_eq!(get(&root, "d").value, Value::Bool(true));
    }

    #[test]
    fn merge_keys_and_anchors() {
        let src = "base: &b\n  x: 1\n  y: 2\nuse:\n  <<: *b\n  y: 3\nalias: *b\n";
        let root = parse(src).unwrap();
        let used = get(&root, "use");
        assert_eq!(get(used, "x").value, Value::Int(1));
        assert_eq!(get(used, "y").value, Value::Int(3));
        assert_eq!(get(get(&root, "alias"), "y").value, Value::Int(2));
    }

    #[test]
    fn duplicate_keys_are_errors_with_a_position() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.pos.map(|p| p.line), Some(3), "{err:?}");
    }

    #[test]
    fn many_agents_may_merge_one_anchor() {
        let mut src = String::from("x-base: &b {max_tokens: 300, retries: 2}\nagents:\n");
        for i in 0..500 {
            src.push_str(&format!("  a{i}:\n    <<: *b\n    prompt: part {i}\n"));
        }
        let root = parse(&src).unwrap();
        assert_eq!(
            get(get(get(&root, "agents"), "a499"), "retries").value,
            Value::Int(2)
        );
    }

    #[test]
    fn messages_speak_of_the_workflow() {
        let err = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(err.message, "duplicate key `a`");
        let err = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert_eq!(err.message, "the file holds more than one YAML document");
        let err = parse("a: *nope\n").unwrap_err();
        assert!(err.message.contains("anchor"), "{err:?}");
    }

    #[test]
    fn tabs_are_pointed_at() {
        let err = parse("a:\n\tb: 1\n").unwrap_err();
        let pos = err.pos.unwrap();
        assert_eq!((pos.line, pos.column, pos.offset), (2, 1, 3), "{err:?}");
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut src = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            src.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse(&src).is_err());
    }
}
