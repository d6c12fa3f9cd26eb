//! Which server-side tools each API offers, on which models, with which options,
//! and how many uses one call can make. A tool a provider or model cannot take is
//! a validation error that names what it does offer.
//!
//! - Anthropic (Messages): `web_search` (`web_search_20250305`) and `web_fetch`
//!   (`web_fetch_20250910`, a beta), with every option; `max_uses` is sent, so
//!   a call never makes more. Claude 3 models and the first Claude 3.5 Sonnet
//!   have neither.
//! - `OpenAI` (Chat Completions): `web_search` on the search models only
//!   (`gpt-4o-search-preview`, `gpt-4o-mini-search-preview`, `gpt-5-search-api`),
//!   through `web_search_options`, which takes `user_location`; a search model
//!   searches once per request.
//! - Gemini: `web_search` as grounding with Google Search (`googleSearch`), on
//!   Gemini 2 and later, with no options: the model decides how many queries to
//!   run and the API takes no cap.
//! - OpenAI-compatible servers: none (their search features differ per server).
//! - The mock: both, with every option, answered with canned results.

use super::{Tool, ToolName};
use crate::catalog::ProviderKind;

/// How many uses of a tool one call can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uses {
    /// At most the tool's `max_uses`, which is sent with the request.
    Capped,
    /// Exactly one per call (`OpenAI`'s search models).
    One,
    /// As many as the model decides: the API takes no cap (Gemini's grounding).
    Uncapped,
}

/// What a provider of one API offers for one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Each tool offered, with the options it takes.
    pub tools: Vec<(ToolName, &'static [&'static str])>,
    /// Why a tool is missing, when it is offered elsewhere (for the message).
    pub note: Option<&'static str>,
}

const ALL_SEARCH: &[&str] = &[
    "max_uses",
    "allowed_domains",
    "blocked_domains",
    "user_location",
];
const ALL_FETCH: &[&str] = &["max_uses", "allowed_domains", "blocked_domains"];

/// What a provider speaking `kind` offers for `model`.
pub fn offer(kind: ProviderKind, model: &str) -> Offer {
    let model = model.strip_prefix("models/").unwrap_or(model);
    match kind {
        ProviderKind::Anthropic if old_claude(model) => Offer {
            tools: Vec::new(),
            note: Some(
                "Claude 3 models and the first Claude 3.5 Sonnet have no server tools; Claude 3.5 Haiku, 3.7 Sonnet and every Claude 4 and later model do",
            ),
        },
        // The mock stands in for Anthropic: it offers every tool and option.
        ProviderKind::Anthropic | ProviderKind::Mock => Offer {
            tools: vec![
                (ToolName::WebSearch, ALL_SEARCH),
                (ToolName::WebFetch, ALL_FETCH),
            ],
            note: None,
        },
        ProviderKind::Openai if crate::catalog::openai_search_model(model) => Offer {
            tools: vec![(ToolName::WebSearch, &["user_location"])],
            note: None,
        },
        ProviderKind::Openai => Offer {
            tools: Vec::new(),
            note: Some(
                "in Chat Completions, OpenAI searches the web only with its search models: `gpt-4o-search-preview`, `gpt-4o-mini-search-preview`, `gpt-5-search-api`",
            ),
        },
        ProviderKind::Gemini if model.starts_with("gemini-1") || !model.starts_with("gemini") => {
            Offer {
                tools: Vec::new(),
                note: Some("Gemini grounds replies with Google Search from Gemini 2.0 on"),
            }
        }
        ProviderKind::Gemini => Offer {
            tools: vec![(ToolName::WebSearch, &[])],
            note: None,
        },
        ProviderKind::OpenaiCompatible => Offer {
            tools: Vec::new(),
            note: Some(
                "OpenAI-compatible servers each search the web their own way, and byok-flow sends none of them; use `anthropic`, `openai` (a search model) or `gemini`",
            ),
        },
    }
}

/// How many uses of `tool` one call to a provider of `kind` can make.
pub fn uses(kind: ProviderKind, tool: ToolName) -> Uses {
    match (kind, tool) {
        (ProviderKind::Openai, _) => Uses::One,
        (ProviderKind::Gemini, _) => Uses::Uncapped,
        _ => Uses::Capped,
    }
}

/// Claude models without server tools.
fn old_claude(model: &str) -> bool {
    ["claude-2", "claude-instant", "claude-3-5-sonnet-20240620"]
        .iter()
        .any(|p| model.starts_with(p))
        || ["claude-3-haiku", "claude-3-opus", "claude-3-sonnet"]
            .iter()
            .any(|p| model.starts_with(p))
}

/// Why `offer` cannot take `tool`: the message and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub help: String,
    /// The option refused, when the tool itself is offered.
    pub option: Option<&'static str>,
}

impl Offer {
    /// Whether `tool`, with its options, can be sent; `provider` names the
    /// provider (or `provider/model`) in the messages.
    pub fn check(&self, tool: &Tool, provider: &str) -> Result<(), Vec<Refusal>> {
        let Some((_, options)) = self.tools.iter().find(|(name, _)| *name == tool.name) else {
            let mut help = self.describe(provider);
            if let Some(note) = self.note {
                help = format!("{note}; {help}");
            }
            return Err(vec![Refusal {
                message: format!("`{provider}` cannot run `{}`", tool.name),
                help,
                option: None,
            }]);
        };
        let refused: Vec<Refusal> = tool
            .options()
            .into_iter()
            .filter(|o| !options.contains(o))
            .map(|option| Refusal {
                message: format!("`{provider}` takes no `{option}` for `{}`", tool.name),
                help: if options.is_empty() {
                    format!(
                        "`{provider}` runs `{}` with no options; remove `{option}`",
                        tool.name
                    )
                } else {
                    format!(
                        "`{}` on `{provider}` takes: {}; remove `{option}`",
                        tool.name,
                        options.join(", ")
                    )
                },
                option: Some(option),
            })
            .collect();
        if refused.is_empty() {
            Ok(())
        } else {
            Err(refused)
        }
    }

    /// What it offers, in words.
    pub fn describe(&self, provider: &str) -> String {
        if self.tools.is_empty() {
            return format!("`{provider}` offers no server tools");
        }
        let each: Vec<String> = self
            .tools
            .iter()
            .map(|(name, options)| {
                if options.is_empty() {
                    format!("`{name}` (no options)")
                } else {
                    format!("`{name}` ({})", options.join(", "))
                }
            })
            .collect();
        format!("`{provider}` offers {}", each.join(" and "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_each_api_offers() {
        let search = Tool::named(ToolName::WebSearch);
        let fetch = Tool::named(ToolName::WebFetch);
        let anthropic = offer(ProviderKind::Anthropic, "claude-sonnet-4-5");
        assert!(anthropic.check(&search, "anthropic").is_ok());
        assert!(anthropic.check(&fetch, "anthropic").is_ok());
        assert!(
            offer(ProviderKind::Anthropic, "claude-3-haiku-20240307")
                .check(&search, "anthropic")
                .is_err()
        );
        let gpt = offer(ProviderKind::Openai, "gpt-4o")
            .check(&search, "openai")
            .unwrap_err();
        assert!(gpt[0].help.contains("gpt-4o-search-preview"), "{gpt:?}");
        let searcher = offer(ProviderKind::Openai, "gpt-4o-search-preview");
        assert!(searcher.check(&search, "openai").is_ok());
        let capped = Tool {
            max_uses: Some(2),
            ..search.clone()
        };
        let e = searcher.check(&capped, "openai").unwrap_err();
        assert_eq!(e[0].option, Some("max_uses"));
        assert!(e[0].help.contains("takes: user_location"), "{e:?}");
        let e = offer(ProviderKind::Gemini, "gemini-2.5-flash")
            .check(&fetch, "gemini")
            .unwrap_err();
        assert!(
            e[0].help
                .contains("`gemini` offers `web_search` (no options)"),
            "{e:?}"
        );
        assert!(
            offer(ProviderKind::Gemini, "gemini-1.5-pro")
                .tools
                .is_empty()
        );
        assert!(offer(ProviderKind::OpenaiCompatible, "x").tools.is_empty());
    }
}
