//! Reading one entry of an agent's `tools:` list: a tool's name alone
//! (`web_search`), or a name with its options (`web_search: {max_uses: 3}`).
//! The workflow's schema describes these forms for editors; the file is read here,
//! so each mistake gets its own message at its own place, with the closest valid
//! name, rather than "not valid under any of the schemas".

use serde_json::Value as Json;

use super::{Tool, ToolName, UserLocation};
use crate::suggest;

/// A mistake in a `tools:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryProblem {
    /// Where, as a JSON pointer below the entry (`/web_search/max_uses`; empty: the entry).
    pub at: String,
    /// Whether it is about a key (an unknown name) rather than a value.
    pub key: bool,
    pub message: String,
    pub help: String,
}

impl EntryProblem {
    fn new(at: String, key: bool, message: String, help: impl Into<String>) -> Self {
        EntryProblem {
            at,
            key,
            message,
            help: help.into(),
        }
    }
}

/// Every option any tool takes, for "did you mean".
const OPTIONS: [&str; 4] = [
    "max_uses",
    "allowed_domains",
    "blocked_domains",
    "user_location",
];

const FORMS: &str = "write a tool's name, like `- web_search`, or a name with its options, like `- web_search: {max_uses: 3, allowed_domains: [docs.rs]}`";

/// Reads one `tools:` entry; every mistake in it is reported.
pub fn parse_entry(entry: &Json) -> Result<Tool, Vec<EntryProblem>> {
    let (name, options) = match entry {
        Json::String(name) => (name.as_str(), None),
        Json::Object(map) if map.len() == 1 => {
            let (name, options) = map.iter().next().expect("one entry");
            (name.as_str(), Some(options))
        }
        Json::Object(map) if map.contains_key("name") => {
            return Err(vec![EntryProblem::new(
                String::new(),
                false,
                "a tool is written as its name, with its options under it, not with `name:`".into(),
                FORMS,
            )]);
        }
        _ => {
            return Err(vec![EntryProblem::new(
                String::new(),
                false,
                format!("{} is not a tool", describe(entry)),
                FORMS,
            )]);
        }
    };
    let Some(tool) = ToolName::from_name(name) else {
        let names = ToolName::ALL.map(ToolName::as_str);
        let help = suggest::did_you_mean(name, names.iter().copied())
            .unwrap_or_else(|| format!("the tools byok-flow knows: {}", names.join(", ")));
        let key = options.is_some();
        return Err(vec![EntryProblem::new(
            if key {
                format!("/{}", escape(name))
            } else {
                String::new()
            },
            key,
            format!("unknown tool `{name}`"),
            help,
        )]);
    };
    let mut parsed = Tool::named(tool);
    let options = match options {
        None | Some(Json::Null) => return Ok(parsed),
        Some(Json::Object(options)) => options,
        Some(other) => {
            return Err(vec![EntryProblem::new(
                format!("/{name}"),
                false,
                format!(
                    "the options of `{name}` must be a mapping, but they are {}",
                    describe(other)
                ),
                format!("write them indented under `{name}:`, like `{name}: {{max_uses: 3}}`"),
            )]);
        }
    };
    let mut problems = Vec::new();
    for (option, value) in options {
        let at = format!("/{name}/{}", escape(option));
        let bad = |message: String, help: &str| EntryProblem::new(at.clone(), false, message, help);
        match option.as_str() {
            "max_uses" => match value.as_u64() {
                Some(n @ 1..) if u32::try_from(n).is_ok() => {
                    parsed.max_uses = u32::try_from(n).ok();
                }
                _ => problems.push(bad(
                    format!("`max_uses` must be a whole number of at least 1, but it is {}", describe(value)),
                    "write how many times one call may use the tool, like `max_uses: 3`",
                )),
            },
            "allowed_domains" | "blocked_domains" => match domains(value) {
                Ok(list) if option == "allowed_domains" => parsed.allowed_domains = list,
                Ok(list) => parsed.blocked_domains = list,
                Err(message) => problems.push(bad(
                    format!("`{option}`: {message}"),
                    "write a list of domains without `https://`, like `[docs.rs, example.com/blog]`",
                )),
            },
            "user_location" if tool == ToolName::WebSearch => {
                match serde_json::from_value::<UserLocation>(value.clone()) {
                    Ok(location) => match check_location(&location) {
                        Ok(()) => parsed.user_location = Some(location),
                        Err(message) => problems.push(bad(message, "write the country as its two-letter ISO code, like `country: US`")),
                    },
                    Err(e) => problems.push(bad(
                        format!("`user_location` is not a location: {e}"),
                        "write any of `city`, `region`, `country` (two letters) and `timezone`, like `{city: Paris, country: FR, timezone: Europe/Paris}`",
                    )),
                }
            }
            "user_location" => problems.push(EntryProblem::new(
                at.clone(),
                true,
                format!("`{name}` takes no `user_location`"),
                "`user_location` localizes `web_search` results; remove it here",
            )),
            other => {
                let help = suggest::did_you_mean(other, OPTIONS.iter().copied())
                    .unwrap_or_else(|| format!("options of `{name}`: {}", valid_options(tool).join(", ")));
                problems.push(EntryProblem::new(
                    at.clone(),
                    true,
                    format!("unknown option `{other}` of `{name}`"),
                    help,
                ));
            }
        }
    }
    if !parsed.allowed_domains.is_empty() && !parsed.blocked_domains.is_empty() {
        problems.push(EntryProblem::new(
            format!("/{name}/blocked_domains"),
            true,
            format!("`{name}` takes `allowed_domains` or `blocked_domains`, not both"),
            "keep one: the providers refuse a request with both",
        ));
    }
    if problems.is_empty() {
        Ok(parsed)
    } else {
        Err(problems)
    }
}

/// The options `tool` takes with some provider.
pub fn valid_options(tool: ToolName) -> Vec<&'static str> {
    match tool {
        ToolName::WebSearch => OPTIONS.to_vec(),
        ToolName::WebFetch => OPTIONS[..3].to_vec(),
    }
}

fn domains(value: &Json) -> Result<Vec<String>, String> {
    let Some(items) = value.as_array() else {
        return Err(format!(
            "expected a list of domains, but it is {}",
            describe(value)
        ));
    };
    let mut list = Vec::new();
    for item in items {
        let Some(domain) = item.as_str() else {
            return Err(format!("{} is not a domain", describe(item)));
        };
        if domain.contains("://") {
            return Err(format!(
                "`{domain}` has a scheme; the providers take the domain alone"
            ));
        }
        if domain.is_empty() || domain.chars().any(char::is_whitespace) {
            return Err(format!("`{domain}` is not a domain"));
        }
        list.push(domain.to_string());
    }
    Ok(list)
}

fn check_location(location: &UserLocation) -> Result<(), String> {
    if let Some(country) = &location.country
        && (country.len() != 2 || !country.chars().all(|c| c.is_ascii_alphabetic()))
    {
        return Err(format!(
            "`country` is `{country}`, not a two-letter ISO country code"
        ));
    }
    for (field, value) in [
        ("city", &location.city),
        ("region", &location.region),
        ("timezone", &location.timezone),
    ] {
        if value
            .as_deref()
            .is_some_and(|v| v.is_empty() || v.len() > 255)
        {
            return Err(format!("`{field}` must be 1 to 255 characters"));
        }
    }
    Ok(())
}

fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn describe(value: &Json) -> String {
    match value {
        Json::Null => "empty".into(),
        Json::Bool(b) => format!("the boolean `{b}`"),
        Json::Number(n) => format!("the number {n}"),
        Json::String(s) => format!("the string \"{}\"", s.chars().take(40).collect::<String>()),
        Json::Array(_) => "a list".into(),
        Json::Object(_) => "a mapping".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_alone_and_names_with_options() {
        assert_eq!(
            parse_entry(&json!("web_search")).unwrap(),
            Tool::named(ToolName::WebSearch)
        );
        let tool = parse_entry(&json!({"web_search": {"max_uses": 3, "allowed_domains": ["docs.rs"], "user_location": {"country": "FR", "city": "Paris"}}})).unwrap();
        assert_eq!(tool.max_uses, Some(3));
        assert_eq!(tool.allowed_domains, ["docs.rs"]);
        assert_eq!(tool.user_location.unwrap().country.as_deref(), Some("FR"));
        assert_eq!(
            parse_entry(&json!({"web_fetch": null})).unwrap(),
            Tool::named(ToolName::WebFetch)
        );
    }

    #[test]
    fn every_mistake_has_a_place_and_a_fix() {
        let e = parse_entry(&json!("web_serch")).unwrap_err();
        assert_eq!(e[0].help, "did you mean `web_search`?");
        let e = parse_entry(&json!({"web_search": {"max_use": 3, "allowed_domains": ["https://x.org"], "blocked_domains": ["y.org"]}})).unwrap_err();
        let at: Vec<&str> = e.iter().map(|p| p.at.as_str()).collect();
        assert_eq!(
            at,
            ["/web_search/max_use", "/web_search/allowed_domains"],
            "{e:?}"
        );
        assert_eq!(e[0].help, "did you mean `max_uses`?");
        let e = parse_entry(&json!({"web_search": {"max_uses": 0}})).unwrap_err();
        assert!(e[0].message.contains("at least 1"), "{e:?}");
        let e = parse_entry(
            &json!({"web_search": {"allowed_domains": ["a.org"], "blocked_domains": ["b.org"]}}),
        )
        .unwrap_err();
        assert!(e[0].message.contains("not both"), "{e:?}");
        let e = parse_entry(&json!({"web_fetch": {"user_location": {"city": "x"}}})).unwrap_err();
        assert!(e[0].message.contains("takes no `user_location`"), "{e:?}");
        let e = parse_entry(&json!({"name": "web_search", "max_uses": 2})).unwrap_err();
        assert!(e[0].message.contains("not with `name:`"), "{e:?}");
        let e = parse_entry(&json!({"web_search": {"user_location": {"country": "France"}}}))
            .unwrap_err();
        assert!(e[0].message.contains("two-letter"), "{e:?}");
        assert!(parse_entry(&json!(3)).is_err());
    }
}
