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
    let (kind, base_url) = kind_and_base_url(workflow, name)?;
    let builtin = catalog::builtin(name);
    let empty = Provider::default();
    let p = workflow.providers.get(name).unwrap_or(&empty);
    let key = match p.key.as_deref() {
        Some("none") => None,
        Some(k) => Some(k.to_string()),
        None if kind == ProviderKind::Mock => None,
        None => match builtin {
            Some(b) => b.keyed.then(|| b.name.to_string()),
            None => Some(name.to_string()),
        },
    };
    Ok(ProviderInfo {
        name: name.to_string(),
        kind,
        base_url: base_url.to_string(),
        key,
        max_concurrency: p.max_concurrency,
        latency: p.latency.map(|d| d.0),
        pricing: p.pricing.clone(),
    })
}

/// The kind (API) of the provider `name`, as [`resolve`] finds it, or why it
/// cannot be used, without building the rest: price look-ups ask this for every
/// agent.
pub fn kind(workflow: &Workflow, name: &str) -> Result<ProviderKind, ProviderProblem> {
    kind_and_base_url(workflow, name).map(|(kind, _)| kind)
}

/// The provider's kind and base URL (declared, else built in, else the default
/// of the type it was declared with), or why it cannot be used.
fn kind_and_base_url<'a>(
    workflow: &'a Workflow,
    name: &str,
) -> Result<(ProviderKind, &'a str), ProviderProblem> {
    let builtin = catalog::builtin(name);
    let declared = workflow.providers.get(name);
    let kind = match (builtin, declared) {
        (None, None) => return Err(ProviderProblem::Unknown),
        (Some(b), _) => b.kind,
        (None, Some(p)) => p.kind.ok_or(ProviderProblem::MissingType)?,
    };
    let kind = declared.and_then(|p| p.kind).unwrap_or(kind);
    let base_url = match (declared.and_then(|p| p.base_url.as_deref()), builtin) {
        (Some(url), _) => url,
        (None, Some(b)) => b.base_url,
        (None, None) => catalog::default_base_url(kind).unwrap_or_default(),
    };
    if base_url.is_empty() {
        return Err(ProviderProblem::MissingBaseUrl);
    }
    Ok((kind, base_url))
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

    /// `kind` finds what `resolve` finds, or the same problem, for every way a
    /// provider can be named: built in or not, declared with or without a type
    /// and a base URL, a built-in name given another type or an empty URL.
    #[test]
    fn kind_agrees_with_resolve() {
        let kinds = [
            None,
            Some(ProviderKind::Anthropic),
            Some(ProviderKind::Gemini),
            Some(ProviderKind::OpenaiCompatible),
            Some(ProviderKind::Mock),
        ];
        let urls = [None, Some(""), Some("http://127.0.0.1:1/v1")];
        let mut names: Vec<&str> = catalog::builtin_names().collect();
        names.push("custom");
        for name in names {
            assert_eq!(
                kind(&workflow(IndexMap::new()), name),
                resolve(&workflow(IndexMap::new()), name).map(|i| i.kind),
                "{name}"
            );
            for k in kinds {
                for url in urls {
                    let mut ps = IndexMap::new();
                    ps.insert(
                        name.to_string(),
                        Provider {
                            kind: k,
                            base_url: url.map(String::from),
                            ..Provider::default()
                        },
                    );
                    let w = workflow(ps);
                    assert_eq!(
                        kind(&w, name),
                        resolve(&w, name).map(|i| i.kind),
                        "{name} {k:?} {url:?}"
                    );
                }
            }
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
