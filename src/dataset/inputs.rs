//! A row's inputs (SPEC §8): each field of the row fills the input of its name,
//! over the `--input` values, over the declared defaults. A field no input
//! declares, or a required input with no value, makes the row a failed row.
//!
//! Inputs are text: a string field is itself; a number or boolean its JSON text;
//! an array or object its JSON (so `for_each: inputs.NAME` can read a list from a
//! row); `null`, like a CSV record's empty field, leaves the input to `--input`
//! or its default.

use indexmap::IndexMap;
use serde_json::{Map, Value as Json};

use super::read::RowProblem;
use crate::suggest;
use crate::workflow::model::Input;

/// Makes each row's inputs.
#[derive(Debug, Clone)]
pub struct RowInputs {
    declared: IndexMap<String, Input>,
    /// The `--input` values and defaults every row starts from; a required input
    /// no `--input` gave is absent.
    base: IndexMap<String, String>,
}

impl RowInputs {
    pub fn new(declared: &IndexMap<String, Input>, base: IndexMap<String, String>) -> Self {
        RowInputs {
            declared: declared.clone(),
            base,
        }
    }

    /// A CSV header's column that no input declares, with what to do: every
    /// record would fail for it, so the file is refused before any call.
    pub fn check_columns(&self, header: &[String]) -> Result<(), (String, String)> {
        match header.iter().find(|c| !self.declared.contains_key(*c)) {
            None => Ok(()),
            Some(column) => Err((
                format!("the CSV header's column `{column}` is not an input of the workflow"),
                self.unknown_hint(column),
            )),
        }
    }

    /// Required inputs that neither `--input` nor any column of `header` gives:
    /// every record would fail for them.
    pub fn missing_columns(&self, header: &[String]) -> Vec<String> {
        self.declared
            .iter()
            .filter(|(name, input)| {
                input.required && !self.base.contains_key(*name) && !header.contains(name)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The row's inputs, as the template context's `inputs` (declared order).
    pub fn inputs(&self, mut fields: Map<String, Json>) -> Result<Json, RowProblem> {
        let unknown: Vec<String> = fields
            .keys()
            .filter(|k| !self.declared.contains_key(*k))
            .cloned()
            .collect();
        if let Some(first) = unknown.first() {
            let list = unknown
                .iter()
                .map(|u| format!("`{u}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let what = if unknown.len() == 1 {
                format!("its field {list} is not an input of the workflow")
            } else {
                format!("its fields {list} are not inputs of the workflow")
            };
            return Err(RowProblem::new(what, self.unknown_hint(first)));
        }
        // Sized to fit: a batch run holds tens of thousands of rows at once.
        let mut inputs = Map::with_capacity(self.declared.len());
        let mut missing = Vec::new();
        for (name, input) in &self.declared {
            let value = match fields.remove(name) {
                None | Some(Json::Null) => self.base.get(name).cloned(),
                Some(Json::String(text)) => Some(text),
                Some(other) => Some(other.to_string()),
            };
            match value {
                Some(text) => {
                    inputs.insert(name.clone(), Json::String(text));
                }
                None if input.required => missing.push(name.as_str()),
                None => {
                    inputs.insert(name.clone(), Json::String(String::new()));
                }
            }
        }
        if !missing.is_empty() {
            let list = missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let (noun, flags) = if missing.len() == 1 {
                ("input", format!("--input {}=VALUE", missing[0]))
            } else {
                ("inputs", "--input NAME=VALUE".to_string())
            };
            return Err(RowProblem::new(
                format!("it has no value for the required {noun} {list}"),
                format!("add the field to the row, or pass `{flags}` for every row"),
            ));
        }
        Ok(Json::Object(inputs))
    }

    fn unknown_hint(&self, name: &str) -> String {
        let names = self.declared.keys().map(String::as_str);
        suggest::did_you_mean(name, names).unwrap_or_else(|| {
            let list: Vec<&str> = self.declared.keys().map(String::as_str).collect();
            if list.is_empty() {
                "the workflow declares no inputs; declare them under `inputs:`".to_string()
            } else {
                format!(
                    "the workflow's inputs: {}; declare it under `inputs:`, or leave it out of the rows",
                    list.join(", ")
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inputs() -> RowInputs {
        let mut declared = IndexMap::new();
        declared.insert(
            "ticket".to_string(),
            Input {
                required: true,
                ..Input::default()
            },
        );
        declared.insert(
            "tone".to_string(),
            Input {
                default: Some("plain".into()),
                ..Input::default()
            },
        );
        declared.insert("tags".to_string(), Input::default());
        let mut base = IndexMap::new();
        base.insert("tone".to_string(), "plain".to_string());
        base.insert("tags".to_string(), String::new());
        RowInputs::new(&declared, base)
    }

    fn fields(value: Json) -> Map<String, Json> {
        match value {
            Json::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn fields_win_over_the_base_and_become_text() {
        let got = inputs()
            .inputs(fields(
                json!({"tags": ["a", "b"], "ticket": 42, "tone": null}),
            ))
            .unwrap();
        assert_eq!(
            got,
            json!({"ticket": "42", "tone": "plain", "tags": "[\"a\",\"b\"]"})
        );
        let keys: Vec<&String> = got.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["ticket", "tone", "tags"], "declared order");
    }

    #[test]
    fn unknown_fields_and_missing_inputs_fail_the_row() {
        let e = inputs()
            .inputs(fields(json!({"ticket": "x", "tonee": "warm"})))
            .unwrap_err();
        assert_eq!(
            e.message,
            "its field `tonee` is not an input of the workflow"
        );
        assert_eq!(e.hint, "did you mean `tone`?");
        let e = inputs()
            .inputs(fields(json!({"tone": "warm"})))
            .unwrap_err();
        assert_eq!(e.message, "it has no value for the required input `ticket`");
        assert!(e.hint.contains("--input ticket=VALUE"), "{}", e.hint);
        let e = inputs()
            .inputs(fields(json!({"ticket": null})))
            .unwrap_err();
        assert!(e.message.contains("`ticket`"), "null is no value");
    }

    #[test]
    fn csv_columns_are_checked_once() {
        let i = inputs();
        assert!(i.check_columns(&["ticket".into(), "tone".into()]).is_ok());
        let (message, hint) = i
            .check_columns(&["ticket".into(), "tickets".into()])
            .unwrap_err();
        assert!(message.contains("`tickets`"), "{message}");
        assert_eq!(hint, "did you mean `ticket`?");
        assert_eq!(i.missing_columns(&["tone".into()]), ["ticket"]);
    }
}
