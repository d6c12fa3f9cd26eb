//! What the person running can do about an error reply: advice by status, by what
//! the server said (gateways answer 400 for an unknown model, not 404), and by
//! where the call's key came from (a key file, an environment variable, or none).

use super::wire::ApiError;
use crate::catalog;
use crate::keys::KeyRef;

/// The call an error reply answered.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The provider's name in the workflow.
    pub provider: &'a str,
    pub model: &'a str,
    /// The key the call sent; `None` for a provider without one (`key: none`).
    pub key: Option<&'a KeyRef>,
}

/// What to do, and whether the server refused the model itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    pub hint: Option<String>,
    /// The server does not serve the model: it is unknown there, or retired.
    pub unknown_model: bool,
}

/// The advice for an error reply of `status`.
pub fn for_status(call: &Call, status: u16, api: &ApiError, retryable: bool) -> Advice {
    let text = format!(
        "{} {}",
        api.kind.as_deref().unwrap_or_default(),
        api.message
    )
    .to_lowercase();
    let model = call.model;
    let provider = call.provider;
    if matches!(status, 400 | 404 | 410 | 422) && says_retired(&text) {
        return Advice {
            hint: Some(format!(
                "{provider} says `{model}` is retired: move the agent to a current model (`byok-flow prices {provider}` lists them)"
            )),
            unknown_model: true,
        };
    }
    if status == 404 || matches!(status, 400 | 422) && says_unknown_model(&text) {
        let hint = if status == 404 && !says_unknown_model(&text) {
            format!(
                "check the model id `{model}` (list the models {provider} serves in its console or API), and that the provider's `base_url` is its API's root"
            )
        } else {
            format!(
                "check the model id `{model}`: list the models {provider} serves in its console or API (on a gateway, `GET /v1/models`)"
            )
        };
        return Advice {
            hint: Some(hint),
            unknown_model: true,
        };
    }
    let key_refused = matches!(status, 401 | 403)
        || status == 400
            && ["api key", "api_key", "apikey"]
                .iter()
                .any(|k| text.contains(k));
    let hint = if key_refused {
        Some(key_advice(call, status))
    } else {
        match status {
            429 if !retryable => Some(format!(
                "{provider} needs you to act (quota or billing) before it will answer"
            )),
            429 => Some(
                "still rate-limited after every retry: lower `--concurrency` or the provider's `max_concurrency`"
                    .to_string(),
            ),
            300..=399 => Some(
                "byok-flow never follows redirects with a key; point `base_url` at the final address"
                    .to_string(),
            ),
            _ => None,
        }
    };
    Advice {
        hint,
        unknown_model: false,
    }
}

/// A refused key: what to fix depends on where the key came from.
fn key_advice(call: &Call, status: u16) -> String {
    let provider = call.provider;
    let refused = if status == 403 {
        "does not allow"
    } else {
        "refused"
    };
    match call.key {
        Some(KeyRef::File(name)) => {
            let pin = if catalog::builtin(provider).is_some() {
                format!(" --provider {provider}")
            } else {
                String::new()
            };
            format!(
                "{provider} {refused} the key in .byok/keys/{name}.age; replace it with `byok-flow keys add {name}{pin} --replace`"
            )
        }
        Some(KeyRef::Env(var)) => format!(
            "{provider} {refused} the key in the environment variable `{var}` (`key: env:{var}`); set `{var}` to a valid {provider} key where byok-flow runs (a CI secret, say)"
        ),
        None => format!(
            "{provider} wants a key, and none is sent (`key: none`, or a provider that takes none); give `{provider}` one under `providers:` with `key: NAME` (a key file: `byok-flow keys add NAME`) or `key: env:VARIABLE`"
        ),
    }
}

/// What servers say for a model they do not know, besides a 404: `OpenAI`'s
/// "does not exist", `vLLM`'s `NotFoundError`, `LiteLLM`'s proxy "Invalid model
/// name passed in model=…", `OpenRouter`'s "is not a valid model ID" and "No
/// endpoints found", Ollama's "model … not found, try pulling it first", Gemini's
/// "models/… is not found", Together's "Unable to access model", Mistral's
/// "Invalid model", `DeepSeek`'s "Model Not Exist".
fn says_unknown_model(text: &str) -> bool {
    const ANYWHERE: [&str; 9] = [
        "model_not_found",
        "modelnotfound",
        "model not found",
        "invalid model",
        "not a valid model",
        "no endpoints found",
        "unknown model",
        "unable to access model",
        "no such model",
    ];
    const WITH_MODEL: [&str; 4] = ["does not exist", "not exist", "not found", "notfounderror"];
    ANYWHERE.iter().any(|p| text.contains(p)) && !text.contains("invalid model param")
        || text.contains("model") && WITH_MODEL.iter().any(|p| text.contains(p))
}

/// What servers say for a model they have retired: Groq's "has been decommissioned
/// and is no longer supported", `OpenAI`'s "The model `…` has been deprecated".
fn says_retired(text: &str) -> bool {
    const RETIRED: [&str; 7] = [
        "decommissioned",
        "has been deprecated",
        "has been retired",
        "was retired",
        "is retired",
        "has been shut down",
        "end of life",
    ];
    text.contains("model") && RETIRED.iter().any(|p| text.contains(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(kind: Option<&str>, message: &str) -> ApiError {
        ApiError {
            kind: kind.map(str::to_string),
            message: message.to_string(),
            retryable: None,
        }
    }

    fn call(key: Option<&KeyRef>) -> Call<'_> {
        Call {
            provider: "gw",
            model: "gpt-9",
            key,
        }
    }

    /// Issue 14 item 5: gateways answer 400, with their own words.
    #[test]
    fn gateway_unknown_model_messages() {
        for message in [
            "/chat/completions: Invalid model name passed in model=gpt-9. Call `/v1/models` to view available models for your key.",
            "gpt-9 is not a valid model ID",
            "No endpoints found for gpt-9.",
            "The model `gpt-9` does not exist.",
            "model \"gpt-9\" not found, try pulling it first",
            "models/gpt-9 is not found for API version v1beta, or is not supported for generateContent.",
            "Unable to access model gpt-9. Please visit https://api.together.ai/models to view the list of supported models.",
            "Invalid model: gpt-9",
            "Model Not Exist",
        ] {
            let advice = for_status(&call(None), 400, &api(None, message), false);
            assert!(advice.unknown_model, "{message}");
            assert!(
                advice.hint.unwrap().contains("check the model id `gpt-9`"),
                "{message}"
            );
        }
        let other = for_status(
            &call(None),
            400,
            &api(None, "max_tokens is too large"),
            false,
        );
        assert!(!other.unknown_model && other.hint.is_none());
        // A parameter that is "deprecated for this model" is not a retired model.
        let param = api(None, "`temperature` is deprecated for this model.");
        assert!(!for_status(&call(None), 400, &param, false).unknown_model);
    }

    #[test]
    fn retired_models_are_named_as_such() {
        let groq = api(
            Some("model_decommissioned"),
            "The model `llama3-70b-8192` has been decommissioned and is no longer supported.",
        );
        let advice = for_status(&call(None), 400, &groq, false);
        assert!(advice.unknown_model);
        assert!(advice.hint.unwrap().contains("is retired"));
    }

    /// Issue 14 item 3: the fix depends on where the key came from.
    #[test]
    fn refused_keys_by_source() {
        let file = KeyRef::File("team".into());
        let env = KeyRef::Env("GW_TOKEN".into());
        let refused = api(Some("authentication_error"), "invalid x-api-key");
        let anthropic = Call {
            provider: "anthropic",
            ..call(Some(&file))
        };
        let hint = for_status(&anthropic, 401, &refused, false).hint.unwrap();
        assert!(
            hint.contains("byok-flow keys add team --provider anthropic --replace"),
            "{hint}"
        );
        let hint = for_status(&call(Some(&env)), 401, &refused, false)
            .hint
            .unwrap();
        assert!(
            hint.contains("set `GW_TOKEN`") && !hint.contains("keys add"),
            "{hint}"
        );
        let hint = for_status(&call(None), 401, &refused, false).hint.unwrap();
        assert!(
            hint.contains("wants a key") && hint.contains("key: env:VARIABLE"),
            "{hint}"
        );
        // Gemini refuses a bad key with a 400.
        let gemini = api(
            Some("INVALID_ARGUMENT"),
            "API key not valid. Please pass a valid API key.",
        );
        let hint = for_status(&call(Some(&env)), 400, &gemini, false)
            .hint
            .unwrap();
        assert!(hint.contains("`GW_TOKEN`"), "{hint}");
    }
}
