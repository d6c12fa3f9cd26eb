//! The built-in providers (SPEC §2) and how a workflow's `providers:` entries add to
//! or override them. Adding a provider that speaks a known API is a row here.

use indexmap::IndexMap;

use crate::workflow::model::{ModelPrice, Provider, ProviderKind, Workflow};

/// Everything byok-flow needs to know about one provider of a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderInfo {
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    /// The key file name, `env:VAR`, or `None` when no key is sent.
    pub key: Option<String>,
    pub max_concurrency: Option<u32>,
    pub latency: Option<std::time::Duration>,
    pub pricing: IndexMap<String, ModelPrice>,
}

/// One row of the built-in table: name, API, default base URL, whether it takes a key.
struct Builtin {
    name: &'static str,
    kind: ProviderKind,
    base_url: &'static str,
    keyed: bool,
}

const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "anthropic",
        kind: ProviderKind::Anthropic,
        base_url: "https://api.anthropic.com",
        keyed: true,
    },
    Builtin {
        name: "openai",
        kind: ProviderKind::Openai,
        base_url: "https://api.openai.com/v1",
        keyed: true,
    },
    Builtin {
        name: "gemini",
        kind: ProviderKind::Gemini,
        base_url: "https://generativelanguage.googleapis.com/v1beta",
        keyed: true,
    },
    Builtin {
        name: "openrouter",
        kind: ProviderKind::OpenaiCompatible,
        base_url: "https://openrouter.ai/api/v1",
        keyed: true,
    },
    Builtin {
        name: "groq",
        kind: ProviderKind::OpenaiCompatible,
        base_url: "https://api.groq.com/openai/v1",
        keyed: true,
    },
    Builtin {
        name: "mistral",
        kind: ProviderKind::OpenaiCompatible,
        base_url: "https://api.mistral.ai/v1",
        keyed: true,
    },
    Builtin {
        name: "deepseek",
        kind: ProviderKind::OpenaiCompatible,
        base_url: "https://api.deepseek.com",
        keyed: true,
    },
    Builtin {
        name: "together",
        kind: ProviderKind::OpenaiCompatible,
        base_url: "https://api.together.xyz/v1",
        keyed: true,
    },
    Builtin {
        name: "xai",
        kind: ProviderKind::OpenaiCompatible,
        base_url: "https://api.x.ai/v1",
        keyed: true,
    },
    Builtin {
        name: "ollama",
        kind: ProviderKind::OpenaiCompatible,
        base_url: "http://127.0.0.1:11434/v1",
        keyed: false,
    },
    Builtin {
        name: "mock",
        kind: ProviderKind::Mock,
        base_url: "mock:",
        keyed: false,
    },
];

/// The names of the built-in providers.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|b| b.name)
}

/// The default base URL of a built-in provider: its own host, the one place its
/// key may go without an allow list (SPEC §4). A workflow's `base_url` never
/// changes this.
pub fn builtin_base_url(name: &str) -> Option<&'static str> {
    BUILTINS.iter().find(|b| b.name == name).map(|b| b.base_url)
}

/// Why a provider name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderProblem {
    /// Neither built in nor declared.
    Unknown,
    /// Declared without `type:` under a name that is not built in.
    MissingType,
    /// Declared without `base_url:` and the type has no default.
    MissingBaseUrl,
}

/// The provider `name` as this workflow configures it.
pub fn resolve(workflow: &Workflow, name: &str) -> Result<ProviderInfo, ProviderProblem> {
    let builtin = BUILTINS.iter().find(|b| b.name == name);
    let declared = workflow.providers.get(name);
    let (kind, base_url, key) = match (builtin, declared) {
        (None, None) => return Err(ProviderProblem::Unknown),
        (Some(b), _) => (
            b.kind,
            b.base_url.to_string(),
            b.keyed.then(|| b.name.to_string()),
        ),
        (None, Some(p)) => {
            let kind = p.kind.ok_or(ProviderProblem::MissingType)?;
            let base = match kind {
                ProviderKind::Mock => "mock:".to_string(),
                _ => BUILTINS
                    .iter()
                    .find(|b| b.kind == kind && b.kind != ProviderKind::OpenaiCompatible)
                    .map(|b| b.base_url.to_string())
                    .unwrap_or_default(),
            };
            (kind, base, Some(name.to_string()))
        }
    };
    let empty = Provider::default();
    let p = declared.unwrap_or(&empty);
    let kind = p.kind.unwrap_or(kind);
    let base_url = p.base_url.clone().unwrap_or(base_url);
    if base_url.is_empty() {
        return Err(ProviderProblem::MissingBaseUrl);
    }
    let key = match p.key.as_deref() {
        Some("none") => None,
        Some(k) => Some(k.to_string()),
        None if kind == ProviderKind::Mock => None,
        None => key,
    };
    Ok(ProviderInfo {
        name: name.to_string(),
        kind,
        base_url,
        key,
        max_concurrency: p.max_concurrency,
        latency: p.latency.map(|d| d.0),
        pricing: p.pricing.clone(),
    })
}

/// Whether a provider of this API can take the model id at all.
pub fn check_model(kind: ProviderKind, model: &str) -> Result<(), String> {
    if model.chars().any(char::is_whitespace) {
        return Err(format!("model id `{model}` contains whitespace"));
    }
    let ok = match kind {
        ProviderKind::Anthropic => model.starts_with("claude"),
        ProviderKind::Gemini => {
            let m = model.strip_prefix("models/").unwrap_or(model);
            m.starts_with("gemini") || m.starts_with("gemma") || m.starts_with("learnlm")
        }
        ProviderKind::Openai | ProviderKind::OpenaiCompatible | ProviderKind::Mock => true,
    };
    if ok {
        Ok(())
    } else {
        let family = match kind {
            ProviderKind::Anthropic => "Anthropic models are named `claude-…`",
            _ => "Gemini models are named `gemini-…` or `gemma-…`",
        };
        Err(format!(
            "`{model}` is not a model this provider serves ({family})"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(yaml_providers: IndexMap<String, Provider>) -> Workflow {
        Workflow {
            version: crate::workflow::model::Version(1),
            name: None,
            description: None,
            inputs: IndexMap::new(),
            defaults: crate::workflow::model::Defaults::default(),
            budget: None,
            providers: yaml_providers,
            agents: IndexMap::new(),
            outputs: IndexMap::new(),
        }
    }

    #[test]
    fn builtins_and_overrides() {
        let w = workflow(IndexMap::new());
        let a = resolve(&w, "anthropic").unwrap();
        assert_eq!(a.key.as_deref(), Some("anthropic"));
        assert_eq!(resolve(&w, "ollama").unwrap().key, None);
        assert_eq!(resolve(&w, "nope"), Err(ProviderProblem::Unknown));

        let mut ps = IndexMap::new();
        ps.insert(
            "local".to_string(),
            Provider {
                kind: Some(ProviderKind::OpenaiCompatible),
                base_url: Some("http://127.0.0.1:1/v1".into()),
                key: Some("none".into()),
                ..Provider::default()
            },
        );
        ps.insert("untyped".to_string(), Provider::default());
        let w = workflow(ps);
        assert_eq!(resolve(&w, "local").unwrap().key, None);
        assert_eq!(resolve(&w, "untyped"), Err(ProviderProblem::MissingType));
    }

    #[test]
    fn model_families() {
        assert!(check_model(ProviderKind::Anthropic, "claude-3-5-sonnet-latest").is_ok());
        assert!(check_model(ProviderKind::Anthropic, "gpt-4o").is_err());
        assert!(check_model(ProviderKind::Gemini, "gemini-2.5-pro").is_ok());
        assert!(check_model(ProviderKind::Openai, "gpt 4o").is_err());
    }
}
