//! Workflow files: the examples mutated line by line and byte by byte, workflows
//! written from the format's own words, and YAML-ish noise, loaded and checked as
//! `validate` does and, when they pass, drawn and estimated.

use std::collections::HashSet;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use byok_flow::cost::estimate::estimate;
use byok_flow::cost::prices::{PriceTable, Pricing};
use byok_flow::workflow::{FileReport, load, validate};
use indexmap::IndexMap;
use proptest::prelude::*;
use proptest::sample::{Index, select};

use super::config;

/// The files mutated: the examples and a few fixtures with anchors, merges,
/// block scalars, providers and problems of every kind.
const SEEDS: &[&str] = &[
    include_str!("../../../workflows/research.yaml"),
    include_str!("../../../workflows/pr-review.yaml"),
    include_str!("../../../workflows/market-scan.yaml"),
    include_str!("../../fixtures/cost/simulated-budget.yaml"),
    include_str!("../../fixtures/invalid/structural-and-semantic-problems.yaml"),
    include_str!("../../fixtures/invalid/several-problems.yaml"),
    include_str!("../../fixtures/invalid/undefined-alias.yaml"),
];

/// Text that means something to YAML, to the schema or to Handlebars.
const FRAGMENTS: &[&str] = &[
    ": ",
    "- ",
    "\n",
    "  ",
    "\t",
    "{",
    "}",
    "[",
    "]",
    ", ",
    "&a ",
    "*a",
    "<<: *a",
    "|",
    "|-",
    ">",
    "'",
    "\"",
    "# ",
    "---\n",
    "...\n",
    "!!str ",
    "!!binary ",
    "? ",
    "%YAML 1.2\n",
    "{{",
    "}}",
    "{{#each agents.",
    "{{/if}}",
    "{{else}}",
    "{{>p}}",
    "{{*d}}",
    "agents.researcher.output",
    "agents.writer.json.x",
    "inputs.topic",
    "@root.",
    "x-",
    "version: 2",
    "needs: [",
    "model: ",
    "mock/",
    "openai/",
    "é",
    "\u{feff}",
    "\u{2028}",
    "\r\n",
    "\r",
    "~",
    "null",
    "1e400",
    "-1",
    "99999999999999999999",
    ".inf",
    ".nan",
    "0x10",
    "0o7",
    "2s",
    "90m",
    "true",
    "yes",
    "\\",
    "\u{1f600}",
];

/// Values each of those fields takes, or nearly.
const VALUES: &[&str] = &[
    "",
    "1",
    "0",
    "-1",
    "1.5",
    "99999999999999999999",
    "9223372036854775807",
    "true",
    "null",
    "~",
    "[]",
    "{}",
    "[a, b]",
    "[writer]",
    "[a, a]",
    "mock/m",
    "sim/m",
    "openai/gpt-4o",
    "anthropic/claude-3-5-sonnet-latest",
    "gemini/gemini-2.5-pro",
    "nope/x",
    "gpt4",
    "json",
    "text",
    "90s",
    "1h",
    "soon",
    "openai-compatible",
    "mock",
    "http://127.0.0.1:1/v1",
    "https://evil.example/v1",
    "env:KEY",
    "env:",
    "none",
    "\"{{agents.a.output}}\"",
    "\"{{agents.b.json.x}}\"",
    "\"{{agents.writer.output}}\"",
    "\"{{inputs.topic}}\"",
    "\"{{#each agents.a.json}}{{this}}{{/each}}\"",
    "\"{{#if inputs.x}}\"",
    "\"{{> p}}\"",
    "|",
    "|-",
    ">",
    "&base",
    "{type: object}",
    "{type: nope}",
    "{input: 1, output: 2, max_output: 9223372036854775807}",
    "{m: {input: 1, output: 1}}",
    "{model: mock/m, prompt: hi}",
    "{required: true}",
];

fn value() -> BoxedStrategy<String> {
    prop_oneof![4 => select(VALUES).prop_map(str::to_string), 1 => noise()].boxed()
}

/// A value, rarely noise: a file has dozens, and one bad one stops at the parser.
fn mostly_plain_value() -> BoxedStrategy<String> {
    prop_oneof![40 => select(VALUES).prop_map(str::to_string), 1 => noise()].boxed()
}

const AGENT_FIELDS: &[&str] = &[
    "model",
    "prompt",
    "system",
    "needs",
    "key",
    "max_tokens",
    "expected_output_tokens",
    "temperature",
    "top_p",
    "stop",
    "timeout",
    "retries",
    "stream",
    "fallback",
    "output",
    "schema",
    "promt",
];
const PROVIDER_FIELDS: &[&str] = &[
    "type",
    "base_url",
    "key",
    "max_concurrency",
    "pricing",
    "latency",
    "model",
];
const INPUT_FIELDS: &[&str] = &["description", "required", "default", "type"];
const AGENT_NAMES: &[&str] = &["a", "b", "writer", "c-d", "bad name", "x.y"];

/// `key: value` lines at `indent`, each key once, from `keys` and [`VALUES`].
fn fields(
    keys: &'static [&'static str],
    indent: usize,
    count: Range<usize>,
) -> BoxedStrategy<String> {
    prop::collection::vec((select(keys), mostly_plain_value()), count)
        .prop_map(move |pairs| {
            let mut seen = HashSet::new();
            let mut out = String::new();
            for (k, v) in pairs.into_iter().filter(|(k, _)| seen.insert(*k)) {
                out.push_str(&format!("{}{k}: {v}\n", " ".repeat(indent)));
            }
            out
        })
        .boxed()
}

/// Entries `name:` at `indent`, each name once, with `body` under each.
fn named(
    names: &'static [&'static str],
    body: BoxedStrategy<String>,
    count: Range<usize>,
    indent: usize,
) -> BoxedStrategy<String> {
    prop::collection::vec((select(names), body), count)
        .prop_map(move |entries| {
            let mut seen = HashSet::new();
            let mut out = String::new();
            for (name, body) in entries.into_iter().filter(|(n, _)| seen.insert(*n)) {
                out.push_str(&format!("{}{name}:\n{body}", " ".repeat(indent)));
            }
            out
        })
        .boxed()
}

/// A workflow written from the format's own sections, fields and typical values,
/// so most cases get past the YAML parser to the schema and the semantic checks.
fn generated_workflow() -> BoxedStrategy<String> {
    let section = |name: &'static str, body: BoxedStrategy<String>| {
        prop::option::weighted(0.5, body)
            .prop_map(move |b| b.map_or_else(String::new, |b| format!("{name}:\n{b}")))
    };
    (
        prop_oneof![8 => Just("version: 1\n"), 1 => Just(""), 1 => Just("version: 2\n")],
        section(
            "inputs",
            named(
                &["topic", "audience", "bad name"],
                fields(INPUT_FIELDS, 4, 0..3),
                0..3,
                2,
            ),
        ),
        section("defaults", fields(AGENT_FIELDS, 2, 0..4)),
        section("budget", fields(&["max_usd", "max"], 2, 0..2)),
        section(
            "providers",
            named(
                &["sim", "local", "openai"],
                fields(PROVIDER_FIELDS, 4, 0..4),
                0..3,
                2,
            ),
        ),
        named(AGENT_NAMES, fields(AGENT_FIELDS, 4, 1..6), 1..5, 2),
        section("outputs", fields(&["article", "out", "bad name"], 2, 0..3)),
    )
        .prop_map(
            |(version, inputs, defaults, budget, providers, agents, outputs)| {
                format!("{version}{inputs}{defaults}{budget}{providers}agents:\n{agents}{outputs}")
            },
        )
        .boxed()
}

#[derive(Debug, Clone)]
enum Edit {
    /// Deletes a line.
    Delete(Index),
    /// Writes a line twice.
    Duplicate(Index),
    /// Swaps two lines.
    Swap(Index, Index),
    /// Inserts text at a character.
    Insert(Index, String),
    /// Replaces what follows a line's first `: ` with text.
    Value(Index, String),
    /// Inserts a line nested this deep, in flow (`[[[`, `{a: {a:`) or block style.
    Nest(Index, usize, u8),
    /// Inserts a line this long.
    LongLine(Index, usize),
}

fn noise() -> BoxedStrategy<String> {
    prop_oneof![
        3 => prop::collection::vec(select(FRAGMENTS), 1..5).prop_map(|f| f.concat()),
        1 => "\\PC{1,12}",
        1 => prop::collection::vec(any::<char>(), 1..6).prop_map(|c| c.into_iter().collect()),
    ]
    .boxed()
}

fn edit() -> BoxedStrategy<Edit> {
    prop_oneof![
        2 => any::<Index>().prop_map(Edit::Delete),
        2 => any::<Index>().prop_map(Edit::Duplicate),
        2 => (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Swap(a, b)),
        2 => (any::<Index>(), noise()).prop_map(|(i, s)| Edit::Insert(i, s)),
        4 => (any::<Index>(), value()).prop_map(|(i, s)| Edit::Value(i, s)),
        1 => (any::<Index>(), 1usize..200, 0u8..3).prop_map(|(i, d, k)| Edit::Nest(i, d, k)),
        1 => (any::<Index>(), prop_oneof![1usize..2_000, 60_000usize..70_000])
            .prop_map(|(i, n)| Edit::LongLine(i, n)),
    ]
    .boxed()
}

fn nested(depth: usize, kind: u8) -> String {
    match kind {
        0 => format!("x-deep: {}{}", "[".repeat(depth), "]".repeat(depth)),
        1 => format!("x-deep: {}1{}", "{a: ".repeat(depth), "}".repeat(depth)),
        _ => (0..depth)
            .map(|d| format!("{}k{d}:", "  ".repeat(d)))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

fn apply(source: &str, edits: &[Edit]) -> String {
    let mut lines: Vec<String> = source.split('\n').map(str::to_string).collect();
    for edit in edits {
        let n = lines.len();
        match edit {
            Edit::Delete(i) if n > 1 => {
                lines.remove(i.index(n));
            }
            Edit::Delete(_) => {}
            Edit::Duplicate(i) => {
                let i = i.index(n);
                lines.insert(i, lines[i].clone());
            }
            Edit::Swap(a, b) => lines.swap(a.index(n), b.index(n)),
            Edit::Insert(i, text) => {
                let mut joined = lines.join("\n");
                let boundaries: Vec<usize> = joined
                    .char_indices()
                    .map(|(b, _)| b)
                    .chain([joined.len()])
                    .collect();
                joined.insert_str(boundaries[i.index(boundaries.len())], text);
                lines = joined.split('\n').map(str::to_string).collect();
            }
            Edit::Value(i, text) => {
                let line = &mut lines[i.index(n)];
                if let Some(at) = line.find(": ") {
                    line.truncate(at + 2);
                    line.push_str(text);
                }
            }
            Edit::Nest(i, depth, kind) => lines.insert(i.index(n + 1), nested(*depth, *kind)),
            Edit::LongLine(i, len) => {
                lines.insert(i.index(n + 1), format!("x-long: {}", "y".repeat(*len)));
            }
        }
    }
    lines.join("\n")
}

fn mutated_workflow() -> BoxedStrategy<String> {
    (select(SEEDS), prop::collection::vec(edit(), 1..5))
        .prop_map(|(seed, edits)| apply(seed, &edits))
        .boxed()
}

fn builtin_prices() -> &'static PriceTable {
    static TABLE: OnceLock<PriceTable> = OnceLock::new();
    TABLE.get_or_init(PriceTable::builtin)
}

/// The stack the binary loads a workflow on: its main thread's.
const MAIN_THREAD_STACK: usize = 8 << 20;

/// Loads and checks a workflow as `validate` does; a refusal must say why.
///
/// On a thread with the main thread's stack: the parser takes 64 levels of
/// nesting, which in a debug build needs more than a test thread's 2 MiB (a
/// release build needs under 512 KiB).
fn load_and_check(text: &str) -> Result<(), TestCaseError> {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .stack_size(MAIN_THREAD_STACK)
            .spawn_scoped(scope, || load_and_check_here(text))
            .expect("a thread");
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn load_and_check_here(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("mutated.yaml");
    let checked = match load::load_source(path, Arc::from(text)) {
        Ok((loaded, report)) => validate::check(loaded, report),
        Err(report) => Err(report),
    };
    let report: FileReport = match checked {
        Ok((checked, report)) => {
            // What `graph`, `validate` (the unpriced warning) and `estimate` do next.
            let _ = checked
                .dag
                .to_mermaid(|i| checked.dag.name(i).to_string(), |i| i % 2 == 0);
            let _ = checked
                .dag
                .to_dot(|i| checked.dag.name(i).to_string(), |i| i % 2 == 0);
            let _ = byok_flow::cost::check::unpriced(&checked, builtin_prices());
            let inputs: IndexMap<String, String> = checked
                .workflow
                .inputs
                .iter()
                .map(|(name, input)| {
                    (
                        name.clone(),
                        input.default.clone().unwrap_or_else(|| "x".into()),
                    )
                })
                .collect();
            let pricing = Pricing {
                table: builtin_prices(),
                workflow: &checked.workflow,
                mock: false,
            };
            let _ = estimate(&checked, &inputs, &pricing, Some(1.0));
            report
        }
        Err(report) => {
            prop_assert!(report.has_errors(), "refused without an error: {report:?}");
            for d in &report.diagnostics {
                prop_assert!(!d.code.is_empty(), "no code: {d:?}");
                prop_assert!(!d.message.is_empty(), "no message: {d:?}");
            }
            report
        }
    };
    let rendered = report.render(false);
    if report.has_errors() {
        prop_assert!(rendered.contains("Found "), "{rendered}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(96))]

    #[test]
    fn mutated_workflows_load_or_explain(text in mutated_workflow()) {
        load_and_check(&text)?;
    }

    #[test]
    fn generated_workflows_load_or_explain(text in generated_workflow()) {
        load_and_check(&text)?;
    }
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn yaml_ish_noise_loads_or_explains(
        parts in prop::collection::vec(prop_oneof![3 => noise(), 1 => "[a-z_]{1,8}"], 0..40)
    ) {
        load_and_check(&parts.concat())?;
    }
}

#[test]
fn the_seeds_themselves_load_or_explain() {
    for seed in SEEDS {
        load_and_check(seed).unwrap();
    }
}
