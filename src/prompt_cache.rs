//! Prompt caching (SPEC §11): providers bill an input prefix they have seen
//! recently at a fraction of the input price. This module owns the workflow's
//! `cache:` setting, where a request's cacheable prefix ends, and the minimum
//! length each model caches; the provider modules put it on the wire and the
//! price table prices reads and writes.
//!
//! - Anthropic caches only what a request marks: byok-flow puts a `cache_control`
//!   breakpoint at the end of the static part of the system prompt and of the
//!   prompt (the text before a template's first `{{`), the part every row, item
//!   and retry of an agent shares. Two breakpoints at most, of the four the API
//!   allows. A prefix shorter than the model's minimum is not cached by Anthropic,
//!   so `auto` marks none then.
//! - `OpenAI` and Gemini cache every long prefix on their own; byok-flow sends the
//!   system prompt first and the prompt after, as written (no reordering), and
//!   reads the cached tokens they report. `OpenAI` also gets a `prompt_cache_key`
//!   per agent, which routes requests that share a prefix to the same cache.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The workflow's `cache:` setting, per agent or in `defaults`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
pub enum CacheMode {
    /// Mark the shared prefix when it is long enough to be cached (Anthropic's
    /// 5-minute cache); let `OpenAI` and Gemini cache on their own.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// Mark nothing (`OpenAI` and Gemini still cache on their side, and report it).
    #[serde(rename = "off")]
    Off,
    /// As `auto`, with Anthropic's 1-hour cache: writes cost twice the input price
    /// (instead of 1.25 times), and the prefix stays an hour after its last use.
    #[serde(rename = "1h")]
    OneHour,
}

/// How long Anthropic keeps a marked prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Ttl {
    #[serde(rename = "5m")]
    FiveMinutes,
    #[serde(rename = "1h")]
    OneHour,
}

/// Where a request's cacheable prefix ends: the byte lengths of the static head of
/// its system prompt and of its prompt that are marked (`None`: no mark there).
/// The prompt's mark is used only when the whole system prompt is static, since a
/// prefix must be the same from the very first token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub ttl: Ttl,
    pub system: Option<usize>,
    pub prompt: Option<usize>,
}

impl Plan {
    /// Whether it marks anything.
    pub fn marks(&self) -> bool {
        self.system.is_some() || self.prompt.is_some()
    }
}

/// The static head of a template: its text before the first `{{`, as the rendered
/// text starts with it (a `{{~` that trims the white space before it, or an escaped
/// `\{{`, shortens or voids it). Empty when the template starts with a variable.
pub fn static_head<'a>(template: &str, rendered: &'a str) -> &'a str {
    let head = template.find("{{").map_or(template, |i| &template[..i]);
    if head.contains('\\') {
        // `\{{` is a literal `{{`: where the first variable is is not known here.
        return "";
    }
    for candidate in [head, head.trim_end()] {
        if rendered.starts_with(candidate) {
            return &rendered[..candidate.len()];
        }
    }
    ""
}

/// The cacheable prefix of a request: marks at the end of the static heads of its
/// system prompt and prompt (given as the templates and their rendered text), when
/// their tokens, counted by `tokens`, reach the model's `minimum`.
pub fn plan(
    mode: CacheMode,
    system: Option<(&str, &str)>,
    prompt: (&str, &str),
    minimum: u64,
    tokens: impl Fn(&str) -> u64,
) -> Option<Plan> {
    let ttl = match mode {
        CacheMode::Off => return None,
        CacheMode::Auto => Ttl::FiveMinutes,
        CacheMode::OneHour => Ttl::OneHour,
    };
    let (system_head, system_whole) = match system {
        Some((template, rendered)) => {
            let head = static_head(template, rendered);
            (head, head.len() == rendered.len())
        }
        None => ("", true),
    };
    let prompt_head = if system_whole {
        static_head(prompt.0, prompt.1)
    } else {
        ""
    };
    let total = tokens(system_head).saturating_add(tokens(prompt_head));
    if total < minimum || total == 0 {
        return None;
    }
    // Mark where the shared prefix ends; a system prompt alone long enough gets
    // its own mark too, so prompts that share it but not the prompt's head still read it.
    let system_mark = (!system_head.is_empty()
        && (prompt_head.is_empty() || tokens(system_head) >= minimum))
        .then_some(system_head.len());
    let prompt_mark = (!prompt_head.is_empty()).then_some(prompt_head.len());
    Some(Plan {
        ttl,
        system: system_mark,
        prompt: prompt_mark,
    })
}

/// The fewest prompt tokens `OpenAI` caches on its own; below it a
/// `prompt_cache_key` is not sent.
pub const OPENAI_MINIMUM: u64 = 1_024;

/// A generous count of `text`'s tokens (three bytes a token), to decide whether a
/// prefix reaches a model's minimum: marking a prefix that falls short costs
/// nothing (Anthropic then caches nothing and bills no write), while missing one
/// that reaches it forgoes the saving. The estimate decides the same way.
pub fn approx_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(3)
}

/// The fewest tokens Anthropic caches for `model`, when the price table does not
/// say (Anthropic's prompt-caching docs): 4,096 for Opus 4.5 and 4.6 and Haiku
/// 4.5; 2,048 for the Haiku 3 family; 1,024 for the rest.
pub fn default_minimum(model: &str) -> u64 {
    if ["claude-opus-4-5", "claude-opus-4-6", "claude-haiku-4-5"]
        .iter()
        .any(|p| model.starts_with(p))
    {
        4_096
    } else if model.starts_with("claude-3-haiku") || model.starts_with("claude-3-5-haiku") {
        2_048
    } else {
        1_024
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> u64 {
        text.split_whitespace().count() as u64
    }

    #[test]
    fn the_static_head_is_the_text_before_the_first_variable() {
        assert_eq!(static_head("Rules. {{inputs.x}}", "Rules. abc"), "Rules. ");
        assert_eq!(static_head("{{inputs.x}} rules", "abc rules"), "");
        assert_eq!(static_head("All static", "All static"), "All static");
        // `{{~` trims the white space before it.
        assert_eq!(static_head("Rules.\n{{~inputs.x}}", "Rules.abc"), "Rules.");
        assert_eq!(static_head("a \\{{b}} {{inputs.x}}", "a {{b}} c"), "");
    }

    #[test]
    fn marks_the_shared_prefix_when_it_is_long_enough() {
        let system = "one two three four";
        let plan = plan(
            CacheMode::Auto,
            Some((system, system)),
            ("five six {{inputs.x}}", "five six X"),
            5,
            words,
        )
        .unwrap();
        assert_eq!(plan.ttl, Ttl::FiveMinutes);
        assert_eq!(plan.system, None, "the system alone is under the minimum");
        assert_eq!(plan.prompt, Some("five six ".len()));
        assert!(
            super::plan(
                CacheMode::Auto,
                Some((system, system)),
                ("{{inputs.x}}", "X"),
                5,
                words
            )
            .is_none()
        );
        assert!(
            super::plan(
                CacheMode::Off,
                Some((system, system)),
                ("a b c d e f", "a b c d e f"),
                1,
                words
            )
            .is_none()
        );
        // A system prompt with a variable: only its head, and not the prompt's.
        let plan = super::plan(
            CacheMode::OneHour,
            Some(("a b c d e f {{inputs.x}}", "a b c d e f X")),
            ("g h i", "g h i"),
            3,
            words,
        )
        .unwrap();
        assert_eq!(plan.ttl, Ttl::OneHour);
        assert_eq!(
            (plan.system, plan.prompt),
            (Some("a b c d e f ".len()), None)
        );
    }

    #[test]
    fn minimums_by_model() {
        assert_eq!(default_minimum("claude-haiku-4-5"), 4_096);
        assert_eq!(default_minimum("claude-3-5-haiku-latest"), 2_048);
        assert_eq!(default_minimum("claude-sonnet-4-5"), 1_024);
    }
}
