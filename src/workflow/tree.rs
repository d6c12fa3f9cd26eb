//! From the positioned YAML tree to JSON, keeping a map from each JSON pointer back
//! to where it was written, so schema and semantic errors can point into the file.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};

use serde_json::{Map, Number, Value as Json};

use super::yaml::{Node, Pos, Value};

/// Where each part of the document was written, by JSON pointer (`/agents/writer/prompt`).
///
/// A workflow of 100,000 agents has about a million pointers, and the index lives
/// until the run is planned (a key or host refused before it is shown in place), so each
/// entry is kept small: the pointer's 64-bit hash (two pointers sharing one
/// would at worst show a problem at the other's place), and positions as `u32`s.
#[derive(Debug, Default, Clone)]
pub struct PosIndex {
    values: HashMap<u64, Packed>,
}

/// A value's place and, for a mapping entry, its key's place.
#[derive(Debug, Clone, Copy, Default)]
pub struct Located {
    pub value: Option<Pos>,
    pub key: Option<Pos>,
    /// The length of the key, for the caret under it.
    pub key_len: usize,
    /// The length of the value when it is a one-line scalar.
    pub value_len: usize,
}

/// [`Located`] in 32 bytes; a file is at most a few hundred MiB, so every
/// number fits a `u32` (a larger one is kept as `u32::MAX`, a place past the end).
#[derive(Debug, Clone, Copy)]
struct Packed {
    value: [u32; 3],
    key: [u32; 3],
    key_len: u32,
    value_len: u32,
}

/// Line 0 is no line: positions are 1-based.
const NOWHERE: [u32; 3] = [0; 3];

fn small(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn pack(pos: Option<Pos>) -> [u32; 3] {
    pos.map_or(NOWHERE, |p| {
        [small(p.line), small(p.column), small(p.offset)]
    })
}

fn unpack(p: [u32; 3]) -> Option<Pos> {
    (p[0] != 0).then(|| Pos {
        line: p[0] as usize,
        column: p[1] as usize,
        offset: p[2] as usize,
    })
}

impl From<Located> for Packed {
    fn from(l: Located) -> Self {
        Packed {
            value: pack(l.value),
            key: pack(l.key),
            key_len: small(l.key_len),
            value_len: small(l.value_len),
        }
    }
}

/// The hash of a pointer, built as the pointer is: segment by segment.
#[derive(Clone, Default)]
struct PointerHash(DefaultHasher);

impl PointerHash {
    fn of(pointer: &str) -> u64 {
        let mut h = PointerHash::default();
        h.0.write(pointer.as_bytes());
        h.0.finish()
    }

    /// The hash of this pointer with `/segment` added (`segment` escaped).
    fn child(&self, segment: &str) -> Self {
        let mut h = self.clone();
        h.0.write(b"/");
        h.0.write(escape_cow(segment).as_bytes());
        h
    }
}

impl PosIndex {
    /// Where the value at `pointer` was written, or the nearest enclosing one.
    pub fn value(&self, pointer: &str) -> (Option<Pos>, usize) {
        let mut p = pointer;
        loop {
            if let Some(l) = self.get(p)
                && l.value.is_some()
            {
                return (l.value, l.value_len);
            }
            match p.rfind('/') {
                Some(i) => p = &p[..i],
                None => return (None, 0),
            }
        }
    }

    /// Where the key of the entry at `pointer` was written (falls back to its value).
    pub fn key(&self, pointer: &str) -> (Option<Pos>, usize) {
        match self.get(pointer) {
            Some(l) if l.key.is_some() => (l.key, l.key_len),
            _ => self.value(pointer),
        }
    }

    /// The entry for a pointer.
    pub fn get(&self, pointer: &str) -> Option<Located> {
        let packed = self.values.get(&PointerHash::of(pointer))?;
        Some(Located {
            value: unpack(packed.value),
            key: unpack(packed.key),
            key_len: packed.key_len as usize,
            value_len: packed.value_len as usize,
        })
    }
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape(segment: &str) -> String {
    escape_cow(segment).into_owned()
}

fn escape_cow(segment: &str) -> Cow<'_, str> {
    if segment.contains(['~', '/']) {
        Cow::Owned(segment.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(segment)
    }
}

/// Converts the tree to JSON and indexes every position. The tree is used up as
/// it goes (its text moves into the JSON, each part freed once converted), so the
/// two are never both whole in memory.
pub fn to_json(node: Node) -> (Json, PosIndex) {
    let mut index = PosIndex::default();
    let json = convert(node, &PointerHash::default(), None, &mut index);
    (json, index)
}

fn scalar_len(value: &Value) -> usize {
    match value {
        Value::String(s) if !s.contains('\n') => s.len(),
        Value::Int(i) => i.to_string().len(),
        Value::Bool(b) => b.to_string().len(),
        _ => 1,
    }
}

fn convert(
    node: Node,
    pointer: &PointerHash,
    key: Option<(Option<Pos>, usize)>,
    index: &mut PosIndex,
) -> Json {
    let located = Located {
        value: node.pos,
        key: key.and_then(|(pos, _)| pos),
        key_len: key.map_or(0, |(_, len)| len),
        value_len: scalar_len(&node.value),
    };
    index.values.insert(pointer.0.finish(), located.into());
    match node.value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(b),
        Value::Int(i) => Json::Number(i.into()),
        Value::Float(f) => Number::from_f64(f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s),
        Value::Seq(items) => Json::Array(
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| convert(item, &pointer.child(&i.to_string()), None, index))
                .collect(),
        ),
        Value::Map(entries) => {
            let mut map = Map::with_capacity(entries.len());
            for (k, v) in entries {
                let pos = k.pos;
                let name = key_text(k.value);
                let child = pointer.child(&name);
                let converted = convert(v, &child, Some((pos, name.len())), index);
                map.insert(name, converted);
            }
            Json::Object(map)
        }
    }
}

/// A mapping key as text (YAML allows any scalar as a key; JSON wants strings).
fn key_text(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        Value::Seq(_) | Value::Map(_) => "<complex key>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pointer finds its place, whether its segments were escaped, numbers
    /// or plain names; the hash built segment by segment is the whole pointer's.
    #[test]
    fn every_pointer_finds_its_place() {
        let src = "agents:\n  a/b~c:\n    prompt: hi\n  w:\n    needs: [x, y]\n";
        let (_, index) = to_json(super::super::yaml::parse(src).unwrap());
        let at = |pointer: &str| {
            index
                .get(pointer)
                .and_then(|l| l.value)
                .map(|p| (p.line, p.column))
        };
        assert_eq!(at("/agents/a~1b~0c/prompt"), Some((3, 13)));
        assert_eq!(at("/agents/w/needs/1"), Some((5, 16)));
        let key = index.get("/agents/w/needs").unwrap();
        assert_eq!((key.key.map(|p| p.line), key.key_len), (Some(5), 5));
        assert_eq!(index.get("/agents/a~1b~0c/prompt").unwrap().value_len, 2);
        assert!(index.get("/agents/nobody").is_none());
        assert_eq!(index.value("/agents/w/needs/7").0.map(|p| p.line), Some(5));
    }
}
