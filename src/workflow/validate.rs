//! The checks that need the whole workflow: names, providers and models, template
//! syntax and references, `needs`, outputs, and cycles. Every problem is reported,
//! each at its place in the file, with the agent's name and a fix.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use super::diagnostic::{Diagnostic, FileReport, Span};
use super::lines::LineIndex;
use super::load::Loaded;
use super::model::{OutputKind, Workflow};
use super::providers::{self, ProviderProblem};
use super::tree::{PosIndex, escape};
use super::yaml::Pos;
use crate::catalog;
use crate::dag::{Dag, EdgeKind};
use crate::suggest::Names;
use crate::template::{self, Target};
use crate::tools;

/// A workflow that passed every check, with its graph.
#[derive(Debug)]
pub struct Checked {
    pub workflow: Workflow,
    pub dag: Dag,
    /// The file's text and where each of its values is, for problems found
    /// before a run starts (keys, hosts) to be shown in place; let go when the
    /// run is planned (see [`Checked::let_go_of_the_file`]).
    file: Mutex<Option<File>>,
    /// SHA-256 of the file's text, in hex: which version of the file ran.
    pub sha256: String,
}

/// What a [`Checked`] keeps of its file to show problems in place.
#[derive(Debug, Clone)]
struct File {
    source: Arc<str>,
    index: Arc<PosIndex>,
}

impl Checked {
    /// The agents in declaration order, which is also the DAG's node order.
    pub fn agent_names(&self) -> Vec<String> {
        self.workflow.agents.keys().cloned().collect()
    }

    fn file(&self) -> Option<File> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The file's text; empty once let go.
    pub fn source(&self) -> Arc<str> {
        self.file().map_or_else(|| Arc::from(""), |f| f.source)
    }

    /// Where each value of the file is; empty (no places) once let go.
    pub fn index(&self) -> Arc<PosIndex> {
        self.file().map(|f| f.index).unwrap_or_default()
    }

    /// Frees the file's text and the index of its places: a run needs them no
    /// more once its checks are done, and for a squad of 100,000 agents they are
    /// a 50 MB text and a 21 MB index.
    pub fn let_go_of_the_file(&self) {
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

impl Clone for Checked {
    fn clone(&self) -> Self {
        Checked {
            workflow: self.workflow.clone(),
            dag: self.dag.clone(),
            file: Mutex::new(self.file()),
            sha256: self.sha256.clone(),
        }
    }
}

/// SHA-256 of `text`, in hex.
pub fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut hex, b| {
            hex.push_str(&format!("{b:02x}"));
            hex
        })
}

/// Runs every check on a loaded workflow.
pub fn check(loaded: Loaded, mut report: FileReport) -> Result<(Checked, FileReport), FileReport> {
    let w = &loaded.workflow;
    let mut c = Checker {
        w,
        index: &loaded.index,
        source: &report.source,
        lines: LineIndex::new(&report.source),
        agents: Names::new(w.agents.keys().map(String::as_str)),
        inputs: Names::new(w.inputs.keys().map(String::as_str)),
        out: Vec::new(),
    };
    c.names();
    c.providers();
    c.tools();
    let mut edges = c.templates_and_needs();
    let (problems, lists) = super::map::check(c.w, c.index);
    c.out.extend(problems);
    edges.extend(
        lists
            .into_iter()
            .map(|(from, to)| (from, to, EdgeKind::Data)),
    );
    c.outputs();
    let names: Vec<String> = loaded.workflow.agents.keys().cloned().collect();
    let dag = Dag::new(&names, edges);
    c.cycles(&dag);
    let diagnostics = c.out;
    report.diagnostics.extend(diagnostics);
    report
        .diagnostics
        .sort_by_key(|d| (d.span.pos.map(|p| p.offset), !d.is_error()));
    if report.has_errors() {
        return Err(report);
    }
    Ok((
        Checked {
            workflow: loaded.workflow,
            dag,
            file: Mutex::new(Some(File {
                source: report.source.clone(),
                index: Arc::new(loaded.index),
            })),
            sha256: sha256_hex(&report.source),
        },
        report,
    ))
}

/// Whether `url` can be a provider's `base_url`: an `http` or `https` URL with a
/// host and a valid port; else what is wrong and how to fix it.
pub fn check_base_url(url: &str) -> Result<(), (String, String)> {
    let example = "write the API's address with its scheme, like `https://llm.example.com/v1` (or `http://127.0.0.1:8080/v1` for a local server)";
    let parsed = match url::Url::parse(url) {
        Ok(parsed) => parsed,
        Err(url::ParseError::InvalidPort) => {
            return Err((
                format!("`base_url` `{url}` has a port that does not exist"),
                "a port is a number from 1 to 65535, like `:8080`".into(),
            ));
        }
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            return Err((
                format!("`base_url` `{url}` is not a URL: it has no scheme (`https://`)"),
                example.into(),
            ));
        }
        Err(e) => {
            return Err((
                format!("`base_url` `{url}` is not a URL: {e}"),
                example.into(),
            ));
        }
    };
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err((
            format!(
                "`base_url` `{url}` uses `{}:`; providers are called over `https://` (or `http://`)",
                parsed.scheme()
            ),
            example.into(),
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err((format!("`base_url` `{url}` has no host"), example.into()));
    }
    if parsed.port() == Some(0) {
        return Err((
            format!("`base_url` `{url}` has port 0, which cannot be called"),
            "a port is a number from 1 to 65535, like `:8080`".into(),
        ));
    }
    Ok(())
}

/// A model id the provider's API does not name: an error against the provider's
/// own host, but only a warning behind a `base_url` of the workflow's, where a
/// proxy or gateway may serve the API under its own aliases.
fn model_problem(
    info: &providers::ProviderInfo,
    id: &str,
    span: Span,
    problem: String,
) -> Diagnostic {
    let home = catalog::default_base_url(info.kind).unwrap_or_default();
    let custom = info.base_url.trim_end_matches('/') != home.trim_end_matches('/');
    if custom && !id.chars().any(char::is_whitespace) {
        let api = match info.kind {
            catalog::ProviderKind::Anthropic => "Anthropic",
            _ => "Gemini",
        };
        Diagnostic::warning(
            "workflow::model",
            span,
            format!(
                "`{id}` is not one of {api}'s model ids; provider `{}` sends it as is to `{}`",
                info.name, info.base_url
            ),
        )
        .help("fine when the server there serves it (a gateway's alias); otherwise check the id")
    } else {
        Diagnostic::error("workflow::model", span, problem)
            .help(format!("check the model id on {}'s model list", info.name))
    }
}

/// Whether a name is an identifier: letters, digits, `_` and `-`.
pub fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// The prefixes providers give their API keys (OpenAI, Anthropic, DeepSeek:
/// `sk-`; Google: `AIza`; Groq: `gsk_`; xAI: `xai-`; Hugging Face: `hf_`;
/// Perplexity: `pplx-`; NVIDIA: `nvapi-`).
const KEY_PREFIXES: [&str; 8] = [
    "sk-", "sk_", "AIza", "gsk_", "xai-", "hf_", "pplx-", "nvapi-",
];

/// Whether `text`, given as a key's name, looks like an API key: a provider's
/// key prefix and 24 characters or more, or 40 characters or more that mix
/// upper case, lower case and digits. Names people choose are short words
/// (`anthropic`, `openai-prod`); keys are long and random.
pub fn looks_like_a_key(text: &str) -> bool {
    let mixed = || {
        text.chars().any(|c| c.is_ascii_uppercase())
            && text.chars().any(|c| c.is_ascii_lowercase())
            && text.chars().filter(char::is_ascii_digit).count() >= 4
    };
    (text.len() >= 24 && KEY_PREFIXES.iter().any(|p| text.starts_with(p)))
        || (text.len() >= 40 && mixed())
}

/// Whether the environment variable `var` holds an age identity (one of the
/// places SPEC §4 reads it from): `key: env:` may never name one, or the secret
/// that opens every key file would be sent as an API key.
pub fn holds_identity(var: &str) -> bool {
    let upper = var.to_ascii_uppercase();
    upper.starts_with("BYOK_FLOW_AGE_KEY") || upper.starts_with("SOPS_AGE_KEY")
}

struct Checker<'a> {
    w: &'a Workflow,
    index: &'a PosIndex,
    source: &'a str,
    /// The file's line starts, for placing template problems.
    lines: LineIndex,
    /// The agents' and inputs' names, for "did you mean".
    agents: Names<'a>,
    inputs: Names<'a>,
    out: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn key_span(&self, pointer: &str) -> Span {
        let (pos, len) = self.index.key(pointer);
        Span::at(pos, len)
    }

    fn value_span(&self, pointer: &str) -> Span {
        let (pos, len) = self.index.value(pointer);
        Span::at(pos, len)
    }

    fn names(&mut self) {
        let sections: [(&str, Vec<&String>); 4] = [
            ("agents", self.w.agents.keys().collect()),
            ("inputs", self.w.inputs.keys().collect()),
            ("providers", self.w.providers.keys().collect()),
            ("outputs", self.w.outputs.keys().collect()),
        ];
        for (section, names) in sections {
            for name in names {
                if !is_identifier(name) {
                    let span = self.key_span(&format!("/{section}/{}", escape(name)));
                    self.out.push(
                        Diagnostic::error(
                            "workflow::name",
                            span,
                            format!("`{name}` in `{section}` is not a valid name"),
                        )
                        .help("names use only letters, digits, `_` and `-`, like `lead-writer`"),
                    );
                }
            }
        }
        for (name, agent) in &self.w.agents {
            let keys = [("key", agent.key.as_deref())];
            for (field, key) in keys {
                if let Some(key) = key {
                    self.key_name(
                        &format!("/agents/{}/{field}", escape(name)),
                        key,
                        Some(name),
                    );
                }
            }
            if agent.schema.is_some() && agent.output != OutputKind::Json {
                let span = self.key_span(&format!("/agents/{}/schema", escape(name)));
                self.out.push(
                    Diagnostic::warning(
                        "workflow::schema-unused",
                        span,
                        "`schema` is ignored unless `output: json`",
                    )
                    .agent(name)
                    .help("add `output: json`, or remove `schema`"),
                );
            }
            if let Some(schema) = &agent.schema
                && let Err(e) = jsonschema::validator_for(schema)
            {
                // Point at the part of the schema that is wrong, not at its first line.
                let inside = e.instance_path().as_str();
                let span = self.value_span(&format!("/agents/{}/schema{inside}", escape(name)));
                let field: Vec<&str> = inside.split('/').skip(1).collect();
                let help = if field.last() == Some(&"type") {
                    "a JSON Schema `type` is one of: string, number, integer, boolean, array, object, null"
                } else {
                    "see https://json-schema.org/understanding-json-schema for the format"
                };
                self.out.push(
                    Diagnostic::error(
                        "workflow::output-schema",
                        span,
                        format!(
                            "`{}` is not a valid JSON Schema: {e}",
                            ["schema"]
                                .into_iter()
                                .chain(field)
                                .collect::<Vec<_>>()
                                .join(".")
                        ),
                    )
                    .agent(name)
                    .help(help),
                );
            }
            if let (Some(expected), Some(max)) = (
                agent.expected_output_tokens,
                agent.max_tokens.or(self.w.defaults.max_tokens),
            ) && expected > max
            {
                let span =
                    self.value_span(&format!("/agents/{}/expected_output_tokens", escape(name)));
                self.out.push(
                        Diagnostic::warning("workflow::expected-over-max", span, format!("`expected_output_tokens` ({expected}) is above `max_tokens` ({max})"))
                            .agent(name)
                            .help("the reply cannot be longer than `max_tokens`; estimates use the smaller number"),
                    );
            }
        }
        let timeouts = std::iter::once((
            None,
            "/defaults/timeout".to_string(),
            self.w.defaults.timeout,
        ))
        .chain(self.w.agents.iter().map(|(name, a)| {
            (
                Some(name),
                format!("/agents/{}/timeout", escape(name)),
                a.timeout,
            )
        }));
        for (agent, pointer, timeout) in timeouts {
            if timeout.is_some_and(|t| t.0.is_zero()) {
                let mut d = Diagnostic::error(
                    "workflow::timeout",
                    self.value_span(&pointer),
                    "`timeout` is 0: every call would time out before it starts",
                )
                .help("give each call time to answer, like `timeout: 120s`, or remove `timeout` for no limit on a call");
                if let Some(agent) = agent {
                    d = d.agent(agent);
                }
                self.out.push(d);
            }
        }
        for (name, provider) in &self.w.providers {
            if let Some(key) = &provider.key {
                self.key_name(&format!("/providers/{}/key", escape(name)), key, None);
            }
        }
    }

    fn key_name(&mut self, pointer: &str, key: &str, agent: Option<&String>) {
        let name = key.strip_prefix("env:").unwrap_or(key);
        if looks_like_a_key(name) {
            // Not quoted: the message must not spread it further.
            let mut d = Diagnostic::error(
                "workflow::key-pasted",
                self.value_span(pointer),
                "this looks like an API key itself, not the name of a key file or variable",
            )
            .help("a key never goes in a workflow: add it with `byok-flow keys add NAME` (it reads the key from stdin) and write `key: NAME`; if this file was shared or committed, rotate the key at the provider");
            if let Some(agent) = agent {
                d = d.agent(agent);
            }
            self.out.push(d);
            return;
        }
        let ok = if key.starts_with("env:") {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        } else {
            is_identifier(name)
        };
        if !ok {
            let mut d = Diagnostic::error(
                "workflow::key-name",
                self.value_span(pointer),
                format!("`{key}` is not a key name"),
            )
            .help("write a key file name like `anthropic`, `env:VARIABLE`, or `none`");
            if let Some(agent) = agent {
                d = d.agent(agent);
            }
            self.out.push(d);
        } else if key.starts_with("env:") && holds_identity(name) {
            let mut d = Diagnostic::error(
                "workflow::key-identity",
                self.value_span(pointer),
                format!("`{key}` is where your age identity is kept, not an API key: it opens every key file, and is never sent"),
            )
            .help("name the variable that holds the provider's API key, like `env:OPENAI_API_KEY`");
            if let Some(agent) = agent {
                d = d.agent(agent);
            }
            self.out.push(d);
        }
    }

    fn providers(&mut self) {
        let known: Vec<String> = catalog::builtin_names()
            .map(str::to_string)
            .chain(self.w.providers.keys().cloned())
            .collect();
        let known = Names::new(known.iter().map(String::as_str));
        for (name, agent) in &self.w.agents {
            let mut sampled = Vec::new();
            let mut models = vec![(
                format!("/agents/{}/model", escape(name)),
                agent.model.as_str(),
            )];
            for (i, model) in agent.fallback.iter().enumerate() {
                models.push((
                    format!("/agents/{}/fallback/{i}", escape(name)),
                    model.as_str(),
                ));
            }
            for (pointer, model) in models {
                let Some((provider, id)) = model.split_once('/') else {
                    continue;
                };
                let span = self.value_span(&pointer);
                if model.chars().any(char::is_control) {
                    self.out.push(
                        Diagnostic::error(
                            "workflow::model",
                            span,
                            format!("model `{model}` holds a control character"),
                        )
                        .agent(name)
                        .help("a model id is printable text, like `openai/gpt-4o`; remove the escape (`\\e`, `\\x1b`) from it"),
                    );
                    continue;
                }
                match providers::resolve(self.w, provider) {
                    Ok(info) => {
                        if let Err(e) = catalog::check_model(info.kind, id) {
                            self.out.push(model_problem(&info, id, span, e).agent(name));
                        }
                        sampled.push((info.kind, id));
                    }
                    Err(ProviderProblem::Unknown) => {
                        let hint = known
                            .did_you_mean(provider)
                            .map_or(String::new(), |s| format!("{s} "));
                        self.out.push(
                            Diagnostic::error("workflow::unknown-provider", span, format!("unknown provider `{provider}` in `{model}`"))
                                .agent(name)
                                .help(format!("{hint}built-in providers: {}; or declare `{provider}` under `providers:` with a `type:` and `base_url:`", catalog::builtin_names().collect::<Vec<_>>().join(", "))),
                        );
                    }
                    Err(_) => {}
                }
            }
            self.sampling(name, &sampled);
        }
        for (name, provider) in &self.w.providers {
            if let Some(url) = &provider.base_url
                && let Err((message, help)) = check_base_url(url)
            {
                let span = self.value_span(&format!("/providers/{}/base_url", escape(name)));
                self.out.push(
                    Diagnostic::error(
                        "workflow::base-url",
                        span,
                        format!("provider `{name}`: {message}"),
                    )
                    .help(help),
                );
            }
            let problem = match providers::resolve(self.w, name) {
                Err(ProviderProblem::MissingType) => (
                    "needs a `type:`",
                    "add `type: openai-compatible` (or `anthropic`, `openai`, `gemini`, `mock`)",
                ),
                Err(ProviderProblem::MissingBaseUrl) => {
                    ("needs a `base_url:`", "add `base_url: https://…/v1`")
                }
                _ => continue,
            };
            let span = self.key_span(&format!("/providers/{}", escape(name)));
            self.out.push(
                Diagnostic::error(
                    "workflow::provider",
                    span,
                    format!("provider `{name}` {}", problem.0),
                )
                .help(problem.1),
            );
        }
    }

    /// A warning when an agent sets sampling parameters one of its models does not
    /// take (`catalog::sampling`): byok-flow leaves them out, and says so here.
    fn sampling(&mut self, name: &str, models: &[(catalog::ProviderKind, &str)]) {
        let agent = &self.w.agents[name];
        let temperature = agent.temperature.or(self.w.defaults.temperature);
        let top_p = agent.top_p.or(self.w.defaults.top_p);
        let agent_field = |field: &str| format!("/agents/{}/{field}", escape(name));
        for &(kind, id) in models {
            let warning = match catalog::sampling(kind, id) {
                catalog::Sampling::OneOf if temperature.is_some() && top_p.is_some() => {
                    let pointer = if agent.top_p.is_some() {
                        agent_field("top_p")
                    } else {
                        "/defaults/top_p".to_string()
                    };
                    (
                        pointer,
                        format!(
                            "`{id}` takes `temperature` or `top_p`, not both: byok-flow sends `temperature` and leaves out `top_p`"
                        ),
                        "remove `top_p` or `temperature` (from this agent or `defaults`)",
                    )
                }
                catalog::Sampling::Both | catalog::Sampling::OneOf => continue,
                // Only what the agent sets itself: `defaults` are shared with
                // models that do take them.
                catalog::Sampling::Neither => {
                    let field = match (agent.temperature, agent.top_p) {
                        (Some(_), _) => "temperature",
                        (None, Some(_)) => "top_p",
                        (None, None) => continue,
                    };
                    (
                        agent_field(field),
                        format!(
                            "`{id}` takes no `temperature` or `top_p`: byok-flow leaves out `{field}`"
                        ),
                        "remove it from this agent; steer the model with its prompt instead",
                    )
                }
            };
            let (pointer, message, help) = warning;
            let span = self.value_span(&pointer);
            self.out.push(
                Diagnostic::warning("workflow::sampling", span, message)
                    .agent(name)
                    .help(help),
            );
            // One warning per agent: its fallbacks would repeat it.
            return;
        }
    }

    /// Checks every agent's `tools:` entries, and that its model and each fallback
    /// model can run them with their options (SPEC §11).
    fn tools(&mut self) {
        for (name, agent) in &self.w.agents {
            let base = format!("/agents/{}", escape(name));
            if !agent.tools.is_empty() && agent.output == OutputKind::Json {
                self.out.push(
                    Diagnostic::error(
                        "workflow::tools",
                        self.key_span(&format!("{base}/tools")),
                        "an agent with `tools` answers in text, so it cannot have `output: json`",
                    )
                    .agent(name)
                    .help("let another agent turn its notes into JSON: give that agent `output: json` and `{{agents.NAME.output}}` in its prompt"),
                );
            }
            let mut seen = Vec::new();
            let mut parsed = Vec::new();
            for (i, entry) in agent.tools.iter().enumerate() {
                let pointer = format!("{base}/tools/{i}");
                match tools::parse_entry(&entry.0) {
                    Ok(tool) if seen.contains(&tool.name) => {
                        self.out.push(
                            Diagnostic::error(
                                "workflow::tools",
                                self.value_span(&pointer),
                                format!("`{}` is listed twice", tool.name),
                            )
                            .agent(name)
                            .help("list each tool once, with all its options"),
                        );
                    }
                    Ok(tool) => {
                        seen.push(tool.name);
                        parsed.push((pointer, tool));
                    }
                    Err(problems) => {
                        for p in problems {
                            let at = format!("{pointer}{}", p.at);
                            let span = if p.key {
                                self.key_span(&at)
                            } else {
                                self.value_span(&at)
                            };
                            self.out.push(
                                Diagnostic::error("workflow::tools", span, p.message)
                                    .agent(name)
                                    .help(p.help),
                            );
                        }
                    }
                }
            }
            let models = std::iter::once((format!("{base}/model"), &agent.model)).chain(
                agent
                    .fallback
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (format!("{base}/fallback/{i}"), m)),
            );
            for (j, (model_pointer, model)) in models.enumerate() {
                let Some((provider, id)) = model.split_once('/') else {
                    continue;
                };
                let Ok(info) = providers::resolve(self.w, provider) else {
                    continue;
                };
                // A search model searches on every request, and each search is billed:
                // the agent must say so, for the estimate, the budget and the record.
                if info.kind == catalog::ProviderKind::Openai
                    && catalog::openai_search_model(id)
                    && !parsed
                        .iter()
                        .any(|(_, t)| t.name == tools::ToolName::WebSearch)
                {
                    let whose = if j == 0 { "" } else { "fallback " };
                    self.out.push(
                        Diagnostic::error(
                            "workflow::tools",
                            self.value_span(&model_pointer),
                            format!(
                                "{whose}`{model}` searches the web on every request, and bills each search, but this agent has no `tools: [web_search]`"
                            ),
                        )
                        .agent(name)
                        .help("add `tools: [web_search]` to the agent, so its searches are estimated, reserved and counted; or use a model that does not search, like `openai/gpt-4o`"),
                    );
                }
                let offer = tools::offer(info.kind, id);
                for (pointer, tool) in &parsed {
                    let Err(refusals) = offer.check(tool, model) else {
                        continue;
                    };
                    for r in refusals {
                        // The agent's own model: at the tool; a fallback: at the fallback.
                        let (span, message) = match (j, r.option) {
                            (0, Some(option)) => (
                                self.key_span(&format!("{pointer}/{}/{option}", tool.name)),
                                r.message,
                            ),
                            (0, None) => (self.value_span(pointer), r.message),
                            _ => (
                                self.value_span(&model_pointer),
                                format!("fallback {}, which this agent's `tools` needs", r.message),
                            ),
                        };
                        self.out.push(
                            Diagnostic::error("workflow::tools", span, message)
                                .agent(name)
                                .help(r.help),
                        );
                    }
                }
            }
        }
    }

    /// Checks every agent's templates and `needs`, and returns the graph's edges.
    fn templates_and_needs(&mut self) -> Vec<(usize, usize, EdgeKind)> {
        let positions: HashMap<&str, usize> = self
            .w
            .agents
            .keys()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();
        let mut edges = Vec::new();
        for (to, (name, agent)) in self.w.agents.iter().enumerate() {
            for (field, text) in [
                ("system", agent.system.as_deref()),
                ("prompt", Some(&*agent.prompt)),
            ] {
                let Some(text) = text else { continue };
                let pointer = format!("/agents/{}/{field}", escape(name));
                for target in self.template(&pointer, text, Some(name)) {
                    if let Target::Agent { name: upstream, .. } | Target::AgentOutputs(upstream) =
                        target
                        && let Some(&from) = positions.get(upstream.as_str())
                    {
                        edges.push((from, to, EdgeKind::Data));
                    }
                }
            }
            for (i, need) in agent.needs.iter().enumerate() {
                if let Some(&from) = positions.get(need.as_str()) {
                    edges.push((from, to, EdgeKind::Order));
                } else {
                    {
                        let span = self.value_span(&format!("/agents/{}/needs/{i}", escape(name)));
                        let help = self.agent_hint(need);
                        self.out.push(
                            Diagnostic::error(
                                "workflow::unknown-agent",
                                span,
                                format!("`needs` names `{need}`, which is not an agent"),
                            )
                            .agent(name)
                            .help(help),
                        );
                    }
                }
            }
        }
        edges
    }

    fn outputs(&mut self) {
        for (name, text) in &self.w.outputs {
            self.template(&format!("/outputs/{}", escape(name)), text, None);
        }
    }

    fn agent_hint(&self, missing: &str) -> String {
        self.agents.hint(missing, "agents in this workflow")
    }

    /// Checks one template; returns the valid targets it references.
    fn template(&mut self, pointer: &str, text: &str, agent: Option<&String>) -> Vec<Target> {
        let tag = |d: Diagnostic| match agent {
            Some(a) => d.agent(a),
            None => d,
        };
        let refs = match template::references(text) {
            Ok(refs) => refs,
            Err(problem) => {
                let value_pos = self.index.value(pointer).0;
                let pos = problem.at.map_or(value_pos, |(line, col)| {
                    self.in_scalar(value_pos, text, line, col)
                });
                self.out.push(tag(Diagnostic::error(
                    "workflow::template",
                    Span::at(pos, 2),
                    format!("template error: {}", problem.message),
                )
                .help(problem.help)));
                return Vec::new();
            }
        };
        let mut valid = Vec::new();
        // Where a reference is written is needed only to report it.
        let mut text_lines = None;
        for r in refs {
            let problem = match &r.target {
                Err(message) => Some((
                    message.clone(),
                    if self.w.inputs.contains_key(&r.raw) {
                        format!("did you mean `inputs.{}`?", r.raw)
                    } else if self.w.agents.contains_key(&r.raw) {
                        format!("did you mean `agents.{}.output`?", r.raw)
                    } else {
                        "templates read `inputs.NAME`, `agents.NAME.output`, `agents.NAME.json` and `agents.NAME.citations`"
                            .to_string()
                    },
                )),
                Ok(Target::Input(input)) if !self.w.inputs.contains_key(input) => {
                    let hint = self.inputs.did_you_mean(input)
                        .unwrap_or_else(|| format!("declare it under `inputs:`, like `inputs: {{{input}: {{required: true}}}}`"));
                    Some((
                        format!(
                            "`{}` refers to input `{input}`, which is not declared",
                            r.raw
                        ),
                        hint,
                    ))
                }
                Ok(Target::Agent { name, json }) => match self.w.agents.get(name) {
                    None => Some((
                        format!("`{}` refers to agent `{name}`, which does not exist", r.raw),
                        self.agent_hint(name),
                    )),
                    Some(upstream) if *json && upstream.output != OutputKind::Json => Some((
                        format!("`{}` reads JSON, but agent `{name}` has text output", r.raw),
                        format!("add `output: json` to `{name}`, or read `agents.{name}.output`"),
                    )),
                    Some(_) => None,
                },
                Ok(Target::AgentOutputs(name)) if !self.w.agents.contains_key(name) => Some((
                    format!("`{}` refers to agent `{name}`, which does not exist", r.raw),
                    self.agent_hint(name),
                )),
                Ok(_) => None,
            };
            let code = if matches!(r.target, Ok(Target::Agent { .. } | Target::AgentOutputs(_))) {
                "workflow::unknown-agent"
            } else {
                "workflow::reference"
            };
            let (code, problem) = match problem {
                Some(problem) => (code, Some(problem)),
                None => (
                    "workflow::map",
                    r.target
                        .as_ref()
                        .ok()
                        .and_then(|t| super::map::reference_problem(self.w, agent, t)),
                ),
            };
            match problem {
                Some((message, help)) => {
                    let at = text_lines
                        .get_or_insert_with(|| LineIndex::new(text))
                        .pos(text, r.offset);
                    let value_pos = self.index.value(pointer).0;
                    let pos = self.in_scalar(value_pos, text, at.line, at.column);
                    let span = Span::at(pos, r.raw.len());
                    self.out
                        .push(tag(Diagnostic::error(code, span, message).help(help)));
                }
                None => valid.extend(r.target.ok()),
            }
        }
        valid
    }

    /// Maps a (line, column) inside a template to the file, for plain, quoted and
    /// literal (`|`) scalars; other styles fall back to where the value starts.
    fn in_scalar(&self, value: Option<Pos>, text: &str, line: usize, col: usize) -> Option<Pos> {
        let value = value?;
        let src = self.source;
        let offset = self.lines.pos(src, value.offset).offset;
        let first = src[offset..].chars().next()?;
        let head = src[..offset].trim_end();
        let indicator = head.chars().last();
        // The block scalar's header, like `|`, `|-` or `|2+`: the last word before the value.
        let header = head.rsplit(char::is_whitespace).next().unwrap_or_default();
        // Lines are found in the file's index: counting them for every reference
        // made validation quadratic in the file's length.
        let at = |line: usize, column: usize| {
            Some(Pos {
                line,
                column,
                offset: self.lines.offset(src, line, column),
            })
        };
        if indicator.is_some_and(|c| {
            c == '|' || (c.is_ascii_digit() || c == '-' || c == '+') && header.starts_with('|')
        }) && first != '|'
        {
            // A literal block: each template line is a file line, indented alike.
            return at(value.line + line - 1, value.column + col - 1);
        }
        match first {
            '"' | '\'' if line == 1 && !text.contains('\n') => at(value.line, value.column + col),
            c if line == 1 && !matches!(c, '>' | '|' | '"' | '\'') => {
                at(value.line, value.column + col - 1)
            }
            _ => Some(value),
        }
    }

    fn cycles(&mut self, dag: &Dag) {
        for cycle in dag.cycles() {
            let names: Vec<&str> = cycle.iter().map(|&i| dag.name(i)).collect();
            let first = names[0];
            let span = self.key_span(&format!("/agents/{}", escape(first)));
            let (message, help) = if names.len() == 1 {
                ("it depends on itself".to_string(), "an agent cannot read its own output; remove the reference or the `needs` entry".to_string())
            } else {
                let mut path = names.join(" -> ");
                path.push_str(&format!(" -> {first}"));
                (
                    format!("cycle: {path}"),
                    "agents must form a DAG; remove one of these references or `needs` entries"
                        .to_string(),
                )
            };
            self.out.push(
                Diagnostic::error("workflow::cycle", span, message)
                    .agent(first)
                    .help(help),
            );
        }
    }
}

#[cfg(test)]
mod source_tests {
    use std::path::Path;
    use std::sync::Arc;

    use super::super::load;

    #[test]
    fn the_text_is_let_go_and_its_hash_kept() {
        let text = "version: 1\nagents:\n  a:\n    model: mock/echo\n    prompt: hi\n";
        let (loaded, report) = load::load_source(Path::new("w.yaml"), Arc::from(text))
            .unwrap_or_else(|r| panic!("{}", r.render(false)));
        let (checked, _) =
            super::check(loaded, report).unwrap_or_else(|r| panic!("{}", r.render(false)));
        assert_eq!(&*checked.source(), text);
        let copy = checked.clone();
        assert!(checked.index().get("/agents/a/model").is_some());
        checked.let_go_of_the_file();
        assert_eq!(&*checked.source(), "");
        assert!(checked.index().get("/agents/a/model").is_none());
        assert_eq!(&*copy.source(), text, "a copy keeps its own");
        assert_eq!(checked.sha256, super::sha256_hex(text));
        assert_eq!(
            super::sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
