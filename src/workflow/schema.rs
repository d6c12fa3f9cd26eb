//! The workflow JSON Schema, generated from the Rust types in [`super::model`].
//!
//! `byok-flow schema` prints it, `schemas/workflow.schema.json` is that output
//! committed (a test fails when it is stale), and loading checks every file against
//! it, so the schema editors see and the checks byok-flow runs are one and the same.

use std::sync::OnceLock;

use schemars::generate::SchemaSettings;
use serde_json::Value;

use super::model::Workflow;

/// Where the committed schema is published, for `$id`.
pub const SCHEMA_ID: &str = "https://byok-flow.dev/schemas/workflow.schema.json";

/// The schema as JSON.
pub fn workflow_schema() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let generator = SchemaSettings::draft2020_12().into_generator();
        let mut schema = generator.into_root_schema_for::<Workflow>().to_value();
        drop_null(&mut schema);
        bound_integers(&mut schema);
        if let Some(object) = schema.as_object_mut() {
            object.insert("$id".into(), SCHEMA_ID.into());
        }
        schema
    })
}

/// Removes the `null` alternative schemars adds for `Option` fields: an optional
/// field is written or left out, never `~`, and the errors stay simple.
fn drop_null(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if let Some(Value::Array(types)) = map.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    map.insert("type".into(), only);
                }
            }
            if let Some(Value::Array(any)) = map.get("anyOf") {
                let rest: Vec<Value> = any
                    .iter()
                    .filter(|s| s.get("type").is_none_or(|t| t != "null"))
                    .cloned()
                    .collect();
                if rest.len() == 1 && any.len() == 2 {
                    map.remove("anyOf");
                    if let Value::Object(inner) = &rest[0] {
                        for (k, v) in inner {
                            map.insert(k.clone(), v.clone());
                        }
                    }
                }
            }
            map.values_mut().for_each(drop_null);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null),
        _ => {}
    }
}

/// Gives each `uint32` field its maximum: `format` alone is not checked, and a
/// number too big for the field would otherwise fail later, with no place.
fn bound_integers(schema: &mut Value) {
    match schema {
        Value::Object(map) => {
            if map.get("format").and_then(Value::as_str) == Some("uint32") {
                map.entry("maximum").or_insert(u32::MAX.into());
            }
            map.values_mut().for_each(bound_integers);
        }
        Value::Array(items) => items.iter_mut().for_each(bound_integers),
        _ => {}
    }
}

/// The schema as the pretty JSON that `byok-flow schema` prints.
pub fn workflow_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(workflow_schema()).unwrap_or_default();
    text.push('\n');
    text
}

/// The compiled validator, built once.
pub fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::validator_for(workflow_schema())
            .unwrap_or_else(|e| panic!("the generated workflow schema does not compile: {e}"))
    })
}

/// The schema object a JSON pointer into the schema names (for listing valid fields).
pub fn schema_at(pointer: &str) -> Option<&'static Value> {
    workflow_schema().pointer(pointer)
}
