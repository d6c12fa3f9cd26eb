//! The provider catalog (SPEC §2): the APIs byok-flow speaks and the built-in
//! providers, each with its API, its own base URL and whether it takes a key.
//! Plain data on the ground floor, read by the workflow checks, the key rules, the
//! price table and the providers alike; how a workflow's `providers:` entries add
//! to or override these rows is `workflow::providers`. Adding a provider that
//! speaks a known API is a row here.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The wire protocol a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    /// Anthropic's Messages API.
    Anthropic,
    /// `OpenAI`'s Chat Completions API.
    Openai,
    /// Google's Gemini API.
    Gemini,
    /// Any endpoint that speaks `OpenAI`'s Chat Completions API.
    OpenaiCompatible,
    /// The built-in offline mock.
    Mock,
}

/// One row of the built-in table: name, API, default base URL, whether it takes a key.
#[derive(Debug)]
pub struct Builtin {
    pub name: &'static str,
    pub kind: ProviderKind,
    pub base_url: &'static str,
    /// Whether it takes a key (named after the provider unless a workflow says otherwise).
    pub keyed: bool,
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

/// The built-in provider `name`.
pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The base URL a provider declared with `type: KIND` and no `base_url` gets: the
/// home of the first-party provider of that API, if it has one.
pub fn default_base_url(kind: ProviderKind) -> Option<&'static str> {
    match kind {
        ProviderKind::Mock => Some("mock:"),
        ProviderKind::OpenaiCompatible => None,
        _ => BUILTINS.iter().find(|b| b.kind == kind).map(|b| b.base_url),
    }
}

/// The names of the built-in providers.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS.iter().map(|b| b.name)
}

/// The default base URL of a built-in provider: its own host, the one place its
/// key may go without an allow list (SPEC §4). A workflow's `base_url` never
/// changes this.
pub fn builtin_base_url(name: &str) -> Option<&'static str> {
    builtin(name).map(|b| b.base_url)
}

/// Which sampling parameters (`temperature`, `top_p`) a model takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Either or both.
    Both,
    /// One of them: setting both is a 400 (Anthropic's Opus 4.1 and the 4.5 and
    /// 4.6 families: "`temperature` and `top_p` cannot both be specified for this
    /// model"). `temperature` is the one sent.
    OneOf,
    /// Neither: a non-default value is a 400 (Anthropic's Opus 4.7 and later and the
    /// 5 family; `OpenAI`'s reasoning models on `OpenAI`'s own API).
    Neither,
}

/// What a model of this API takes, by its family: the provider's published rules
/// (platform.claude.com "Migration guide" and "Model deprecations: API parameter
/// deprecations"; `OpenAI`'s reasoning guide). An id the rules do not name (a
/// gateway's alias, say) is sent whatever the workflow sets.
pub fn sampling(kind: ProviderKind, model: &str) -> Sampling {
    match kind {
        ProviderKind::Anthropic => claude_sampling(model),
        ProviderKind::Openai if openai_reasoning(model) || openai_search_model(model) => {
            Sampling::Neither
        }
        _ => Sampling::Both,
    }
}

/// Claude's rule by version, so a model released after this was written follows
/// its family: from 4.5 on (and Opus 4.1) `temperature` or `top_p`, not both;
/// Opus from 4.7 on and every model from 5 on, neither. Claude Mythos has no
/// version in its id and takes neither.
fn claude_sampling(model: &str) -> Sampling {
    let Some((name, version)) = claude_version(model) else {
        return if model.starts_with("claude-mythos") {
            Sampling::Neither
        } else {
            Sampling::Both
        };
    };
    if version >= (5, 0) || name == "opus" && version >= (4, 7) {
        Sampling::Neither
    } else if version >= (4, 5) || name == "opus" && version == (4, 1) {
        Sampling::OneOf
    } else {
        Sampling::Both
    }
}

/// A Claude model's family and version: `claude-sonnet-4-5-20250929` is
/// `("sonnet", (4, 5))`, `claude-opus-4-20250514` is `("opus", (4, 0))`, and the
/// older order `claude-3-7-sonnet-latest` is `("sonnet", (3, 7))`. A date (8 digits)
/// is not a minor version. `None` for an id of another shape.
fn claude_version(model: &str) -> Option<(&str, (u32, u32))> {
    let rest = model.strip_prefix("claude-")?;
    // A minor version is one or two digits; `@20250929` (a gateway's snapshot
    // suffix) and other tails after the digits are ignored.
    let number = |part: &str| -> Option<u32> {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        (1..=2)
            .contains(&digits.len())
            .then(|| digits.parse().ok())?
    };
    let is_name = |part: &str| !part.is_empty() && part.chars().all(|c| c.is_ascii_lowercase());
    let parts: Vec<&str> = rest.split('-').collect();
    match parts.as_slice() {
        // claude-sonnet-4-5…, claude-opus-4-20250514, claude-sonnet-5
        [name, major, tail @ ..] if is_name(name) => {
            let major = number(major)?;
            let minor = tail.first().and_then(|p| number(p)).unwrap_or(0);
            Some((name, (major, minor)))
        }
        // claude-3-7-sonnet…, claude-3-opus…, claude-4-opus-20250514
        [major, second, tail @ ..] => {
            let major = number(major)?;
            match number(second) {
                Some(minor) => tail
                    .first()
                    .filter(|p| is_name(p))
                    .map(|n| (*n, (major, minor))),
                None => is_name(second).then_some((*second, (major, 0))),
            }
        }
        _ => None,
    }
}

/// `OpenAI`'s reasoning models (`o1`, `o3`, `o4-mini`, `gpt-5*`): they take
/// `max_completion_tokens` and no sampling parameters.
pub fn openai_reasoning(model: &str) -> bool {
    model.starts_with('o') && model.chars().nth(1).is_some_and(|c| c.is_ascii_digit())
        || model.starts_with("gpt-5")
}

/// Whether an `OpenAI` model id is one of its search models
/// (`gpt-4o-search-preview`, `gpt-5-search-api`): the models that search the web
/// in Chat Completions, and take no sampling parameters.
pub fn openai_search_model(model: &str) -> bool {
    model.contains("-search-preview") || model.contains("-search-api")
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

    #[test]
    fn model_families() {
        assert!(check_model(ProviderKind::Anthropic, "claude-sonnet-4-6").is_ok());
        assert!(check_model(ProviderKind::Anthropic, "gpt-4o").is_err());
        assert!(check_model(ProviderKind::Gemini, "gemini-2.5-pro").is_ok());
        assert!(check_model(ProviderKind::Openai, "gpt 4o").is_err());
    }

    #[test]
    fn sampling_rules_by_family() {
        use ProviderKind::{Anthropic, Openai, OpenaiCompatible};
        assert_eq!(
            sampling(Anthropic, "claude-3-7-sonnet-20250219"),
            Sampling::Both
        );
        assert_eq!(
            sampling(Anthropic, "claude-sonnet-4-20250514"),
            Sampling::Both
        );
        assert_eq!(
            sampling(Anthropic, "claude-opus-4-1-20250805"),
            Sampling::OneOf
        );
        assert_eq!(sampling(Anthropic, "claude-sonnet-4-5"), Sampling::OneOf);
        assert_eq!(
            sampling(Anthropic, "claude-haiku-4-5-20251001"),
            Sampling::OneOf
        );
        assert_eq!(sampling(Anthropic, "claude-sonnet-4-6"), Sampling::OneOf);
        assert_eq!(sampling(Anthropic, "claude-opus-4-7"), Sampling::Neither);
        assert_eq!(sampling(Anthropic, "claude-sonnet-5"), Sampling::Neither);
        assert_eq!(sampling(Anthropic, "my-gateway-alias"), Sampling::Both);
        // By version, so models to come follow their family.
        assert_eq!(sampling(Anthropic, "claude-opus-4-8"), Sampling::Neither);
        assert_eq!(sampling(Anthropic, "claude-fable-5"), Sampling::Neither);
        assert_eq!(sampling(Anthropic, "claude-haiku-5-1"), Sampling::Neither);
        assert_eq!(sampling(Anthropic, "claude-mythos"), Sampling::Neither);
        assert_eq!(sampling(Anthropic, "claude-sonnet-4-7"), Sampling::OneOf);
        assert_eq!(sampling(Anthropic, "claude-haiku-4-6"), Sampling::OneOf);
        assert_eq!(
            sampling(Anthropic, "claude-opus-4-6-20260205"),
            Sampling::OneOf
        );
        assert_eq!(
            sampling(Anthropic, "claude-sonnet-4-5@20250929"),
            Sampling::OneOf
        );
        assert_eq!(sampling(Anthropic, "claude-opus-4-0"), Sampling::Both);
        assert_eq!(
            sampling(Anthropic, "claude-4-opus-20250514"),
            Sampling::Both
        );
        assert_eq!(sampling(Anthropic, "claude-3-opus-latest"), Sampling::Both);
        assert_eq!(
            sampling(Anthropic, "claude-3-5-haiku-20241022"),
            Sampling::Both
        );
        assert_eq!(sampling(Anthropic, "claude-instant-1.2"), Sampling::Both);
        assert_eq!(sampling(Openai, "o4-mini"), Sampling::Neither);
        assert_eq!(sampling(Openai, "gpt-5.4-mini"), Sampling::Neither);
        assert_eq!(sampling(Openai, "gpt-4o"), Sampling::Both);
        assert_eq!(sampling(OpenaiCompatible, "o3"), Sampling::Both);
    }

    #[test]
    fn default_base_urls() {
        assert_eq!(
            default_base_url(ProviderKind::Anthropic),
            Some("https://api.anthropic.com")
        );
        assert_eq!(default_base_url(ProviderKind::OpenaiCompatible), None);
        assert_eq!(default_base_url(ProviderKind::Mock), Some("mock:"));
    }
}
