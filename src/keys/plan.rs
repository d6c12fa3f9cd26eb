//! Which keys a run will need, read from the workflow alone (no files, no
//! identity): for every agent's model and fallback models, the key its
//! provider takes and where requests for it go. [`KeyStore`](super::KeyStore)
//! checks the plan before a run; [`KeyProblem`] turns a failure into a
//! diagnostic at the YAML that chose the key.

use super::error::KeyError;
use super::reference::KeyRef;
use crate::catalog::ProviderKind;
use crate::workflow::Workflow;
use crate::workflow::diagnostic::{Diagnostic, Span};
use crate::workflow::model::Agent;
use crate::workflow::providers;
use crate::workflow::tree::{PosIndex, escape};

/// One key a run will use, for one provider and destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyUse {
    pub key: KeyRef,
    /// The workflow's provider name (`anthropic`, `local`, …).
    pub provider: String,
    /// Where requests for this provider go (its `base_url`).
    pub base_url: String,
    /// The agents that call it, as primary or fallback model.
    pub agents: Vec<String>,
    /// A JSON pointer to the YAML that chose this key (for the diagnostic).
    pub pointer: String,
}

/// The key a call from `agent` to `provider` sends, if any. An agent's own
/// `key:` applies to its primary model's provider only: a fallback to another
/// provider uses that provider's key, so one provider's key never goes to another.
pub fn call_key(
    workflow: &Workflow,
    agent: &Agent,
    provider: &str,
) -> Result<Option<KeyRef>, KeyError> {
    Ok(call_key_at(workflow, "", agent, provider, "")?.map(|(key, _)| key))
}

fn call_key_at(
    workflow: &Workflow,
    agent_name: &str,
    agent: &Agent,
    provider: &str,
    model_pointer: &str,
) -> Result<Option<(KeyRef, String)>, KeyError> {
    let Ok(info) = providers::resolve(workflow, provider) else {
        return Ok(None); // validation reports unknown providers
    };
    if info.kind == ProviderKind::Mock {
        return Ok(None);
    }
    if provider == agent.provider()
        && let Some(key) = &agent.key
    {
        let pointer = format!("/agents/{}/key", escape(agent_name));
        return Ok(KeyRef::parse(key)?.map(|k| (k, pointer)));
    }
    let pointer = if workflow
        .providers
        .get(provider)
        .is_some_and(|p| p.key.is_some())
    {
        format!("/providers/{}/key", escape(provider))
    } else {
        model_pointer.to_string()
    };
    Ok(match info.key {
        Some(key) => KeyRef::parse(&key)?.map(|k| (k, pointer)),
        None => None,
    })
}

/// Every key a run of `workflow` may need, once per key, provider and
/// destination, in agent order. Unparsable key names are left to validation.
pub fn plan(workflow: &Workflow) -> Vec<KeyUse> {
    let mut uses: Vec<KeyUse> = Vec::new();
    for (name, agent) in &workflow.agents {
        let models = std::iter::once((
            agent.model.as_str(),
            format!("/agents/{}/model", escape(name)),
        ))
        .chain(
            agent
                .fallback
                .iter()
                .enumerate()
                .map(|(i, m)| (m.as_str(), format!("/agents/{}/fallback/{i}", escape(name)))),
        );
        for (model, model_pointer) in models {
            let provider = model.split_once('/').map_or("", |(p, _)| p);
            let Ok(Some((key, pointer))) =
                call_key_at(workflow, name, agent, provider, &model_pointer)
            else {
                continue;
            };
            let Ok(info) = providers::resolve(workflow, provider) else {
                continue;
            };
            let same = |u: &&mut KeyUse| {
                u.key == key && u.provider == provider && u.base_url == info.base_url
            };
            match uses.iter_mut().find(same) {
                Some(u) if u.agents.contains(name) => {}
                Some(u) => u.agents.push(name.clone()),
                None => uses.push(KeyUse {
                    key,
                    provider: provider.to_string(),
                    base_url: info.base_url,
                    agents: vec![name.clone()],
                    pointer,
                }),
            }
        }
    }
    uses
}

/// A key a run needs but cannot have, and where the workflow asked for it.
#[derive(Debug, Clone)]
pub struct KeyProblem {
    pub key: KeyRef,
    pub agents: Vec<String>,
    pub pointer: String,
    pub error: KeyError,
}

impl KeyProblem {
    pub(crate) fn new(key_use: &KeyUse, error: KeyError) -> Self {
        KeyProblem {
            key: key_use.key.clone(),
            agents: key_use.agents.clone(),
            pointer: key_use.pointer.clone(),
            error,
        }
    }

    /// The problem as a diagnostic at the YAML that chose the key.
    pub fn diagnostic(&self, index: &PosIndex) -> Diagnostic {
        let code = match &self.error {
            KeyError::KeyFileMissing { .. }
            | KeyError::NoKeysDir { .. }
            | KeyError::KeysDirMissing { .. } => "keys::missing",
            KeyError::EnvMissing { .. } | KeyError::EnvInvalid { .. } => "keys::env",
            KeyError::HostRefused { .. } => "keys::host",
            _ => "keys::unreadable",
        };
        let (pos, len) = index.value(&self.pointer);
        let mut d = Diagnostic::error(code, Span::at(pos, len), self.error.to_string());
        if let Some(agent) = self.agents.first() {
            d = d.agent(agent);
        }
        match self.error.hint() {
            Some(hint) => d.help(hint),
            None => d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workflow(yaml: &str) -> Workflow {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn plans_default_explicit_env_and_fallback_keys() {
        let w = workflow(
            r"
version: 1
providers:
  local:
    type: openai-compatible
    base_url: http://127.0.0.1:9/v1
    key: env:LOCAL_KEY
  proxy:
    type: openai-compatible
    base_url: https://proxy.example/v1
agents:
  a:
    model: anthropic/claude-3-5-sonnet-latest
    prompt: x
    fallback: [openai/gpt-4o, local/m]
  b:
    model: anthropic/claude-3-5-haiku-latest
    key: team-anthropic
    prompt: x
  c:
    model: ollama/llama3
    prompt: x
  d:
    model: mock/echo
    prompt: x
  e:
    model: proxy/m
    prompt: x
  f:
    model: openai/gpt-4o
    key: none
    prompt: x
",
        );
        let got: Vec<(String, String, String, Vec<String>, String)> = plan(&w)
            .into_iter()
            .map(|u| {
                (
                    u.key.to_string(),
                    u.provider,
                    u.base_url,
                    u.agents,
                    u.pointer,
                )
            })
            .collect();
        let row = |k: &str, p: &str, url: &str, agents: &[&str], ptr: &str| {
            (
                k.to_string(),
                p.to_string(),
                url.to_string(),
                agents.iter().map(|a| (*a).to_string()).collect(),
                ptr.to_string(),
            )
        };
        assert_eq!(
            got,
            vec![
                row(
                    "anthropic",
                    "anthropic",
                    "https://api.anthropic.com",
                    &["a"],
                    "/agents/a/model"
                ),
                row(
                    "openai",
                    "openai",
                    "https://api.openai.com/v1",
                    &["a"],
                    "/agents/a/fallback/0"
                ),
                row(
                    "env:LOCAL_KEY",
                    "local",
                    "http://127.0.0.1:9/v1",
                    &["a"],
                    "/providers/local/key"
                ),
                row(
                    "team-anthropic",
                    "anthropic",
                    "https://api.anthropic.com",
                    &["b"],
                    "/agents/b/key"
                ),
                row(
                    "proxy",
                    "proxy",
                    "https://proxy.example/v1",
                    &["e"],
                    "/agents/e/model"
                ),
            ]
        );
        let a = &w.agents["a"];
        assert_eq!(
            call_key(&w, a, "openai").unwrap(),
            Some(KeyRef::File("openai".into()))
        );
        assert_eq!(call_key(&w, &w.agents["f"], "openai").unwrap(), None);
    }
}
