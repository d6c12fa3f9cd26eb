//! Durations written the way people write them in YAML: `90s`, `2m`, `1m30s`, `500ms`.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration read from text such as `90s` or `2m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// Parses `90s`, `2m`, `1m30s`, `500ms` and the like.
    pub fn parse(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map(Duration)
            .map_err(|e| {
                format!("`{text}` is not a duration ({e}); write it like `90s`, `2m` or `500ms`")
            })
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration such as `90s`, `2m`, `1m30s` or `500ms`.",
            "type": "string",
            "pattern": "^\\s*([0-9]+\\s*(ns|us|ms|s|sec|secs|m|min|mins|h|hr|hrs)\\s*)+$"
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        assert_eq!(Duration::parse("90s").unwrap().0.as_secs(), 90);
        assert_eq!(Duration::parse("2m").unwrap().0.as_secs(), 120);
        assert_eq!(Duration::parse("1m30s").unwrap().0.as_secs(), 90);
        assert_eq!(Duration::parse("500ms").unwrap().0.as_millis(), 500);
        assert!(Duration::parse("soon").is_err());
    }
}
