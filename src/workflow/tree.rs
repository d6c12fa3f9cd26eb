//! From the positioned YAML tree to JSON, keeping a map from each JSON pointer back
//! to where it was written, so schema and semantic errors can point into the file.

use std::collections::HashMap;

use serde_json::{Map, Number, Value as Json};

use super::yaml::{Node, Pos, Value};

/// Where each part of the document was written, by JSON pointer (`/agents/writer/prompt`).
#[derive(Debug, Default, Clone)]
pub struct PosIndex {
    values: HashMap<String, Located>,
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

impl PosIndex {
    /// Where the value at `pointer` was written, or the nearest enclosing one.
    pub fn value(&self, pointer: &str) -> (Option<Pos>, usize) {
        let mut p = pointer;
        loop {
            if let Some(l) = self.values.get(p)
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
        match self.values.get(pointer) {
            Some(l) if l.key.is_some() => (l.key, l.key_len),
            _ => self.value(pointer),
        }
    }

    /// The raw entry for a pointer.
    pub fn get(&self, pointer: &str) -> Option<&Located> {
        self.values.get(pointer)
    }
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Converts the tree to JSON and indexes every position.
pub fn to_json(node: &Node) -> (Json, PosIndex) {
    let mut index = PosIndex::default();
    let json = convert(node, "", None, &mut index);
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

fn convert(node: &Node, pointer: &str, key: Option<(&Node, usize)>, index: &mut PosIndex) -> Json {
    index.values.insert(
        pointer.to_string(),
        Located {
            value: node.pos,
            key: key.and_then(|(k, _)| k.pos),
            key_len: key.map_or(0, |(_, len)| len),
            value_len: scalar_len(&node.value),
        },
    );
    match &node.value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::Number((*i).into()),
        Value::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::String(s) => Json::String(s.clone()),
        Value::Seq(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| convert(item, &format!("{pointer}/{i}"), None, index))
                .collect(),
        ),
        Value::Map(entries) => {
            let mut map = Map::new();
            for (k, v) in entries {
                let name = key_text(&k.value);
                let child = format!("{pointer}/{}", escape(&name));
                let converted = convert(v, &child, Some((k, name.len())), index);
                map.insert(name, converted);
            }
            Json::Object(map)
        }
    }
}

/// A mapping key as text (YAML allows any scalar as a key; JSON wants strings).
fn key_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".to_string(),
        Value::Seq(_) | Value::Map(_) => "<complex key>".to_string(),
    }
}
