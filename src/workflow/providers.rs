//! A workflow's providers: the built-in ones of the catalog, with the workflow's
//! `providers:` entries adding to or overriding them.

use indexmap::IndexMap;

use crate::catalog::{self, ProviderKind};
use crate::workflow::model::{ModelPrice, Provider, Workflow};

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
    let builtin = catalog::builtin(name);
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
            let base = catalog::default_base_url(kind)
                .unwrap_or_default()
                .to_string();
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
}
