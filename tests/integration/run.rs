//! `byok-flow run --mock`, offline: the results and nothing else on stdout,
//! progress and the closing table on stderr, `--json`, `--out`, `-q` and inputs.
//! How agents are scheduled (failures, Ctrl-C, concurrency) is in `scheduling.rs`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::snapshot;
use crate::support::{byok_flow, example};

/// A run that takes longer has hung: fail it rather than the whole suite.
pub const TIMEOUT: Duration = Duration::from_mins(1);

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `byok-flow run FILE --mock ARGS...` from `home`.
pub fn run_mock(home: &Path, file: &Path, args: &[&str]) -> Output {
    byok_flow(home)
        .arg("run")
        .arg(file)
        .arg("--mock")
        .args(args)
        .timeout(TIMEOUT)
        .output()
        .unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The progress lines' events, without their times: `("started", "writer")`.
pub fn progress(stderr: &str) -> Vec<(String, String)> {
    stderr
        .lines()
        .filter_map(|line| line.split_once("s] "))
        .filter_map(|(_, event)| {
            let mut words = event.split_whitespace();
            let what = words.next()?.to_string();
            let agent = words.next()?.trim_end_matches(':').to_string();
            Some((what, agent))
        })
        .collect()
}

pub fn has(events: &[(String, String)], what: &str, agent: &str) -> bool {
    events.iter().any(|(w, a)| w == what && a == agent)
}

const RESEARCH_TOPIC: &str = "topic=Rust async runtimes";

#[test]
fn research_prints_only_its_output_on_stdout() {
    let home = tempfile::tempdir().unwrap();
    let output = run_mock(
        home.path(),
        &example("research.yaml"),
        &["--input", RESEARCH_TOPIC],
    );
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stderr}");

    // stdout is the declared output, `article`, exactly: what --json says it is.
    let json = run_mock(
        home.path(),
        &example("research.yaml"),
        &["--input", RESEARCH_TOPIC, "--json"],
    );
    let record: Value = serde_json::from_slice(&json.stdout).unwrap();
    let article = record["outputs"]["article"].as_str().unwrap();
    assert_eq!(stdout, format!("{article}\n"));
    assert!(article.starts_with("[mock openai/gpt-5.4-mini] reply to \"Tighten this text:"));

    // stderr: each agent started, then finished, in dependency order, then the table.
    let events = progress(&stderr);
    let order: Vec<(&str, &str)> = events
        .iter()
        .map(|(w, a)| (w.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        order,
        [
            ("started", "researcher"),
            // The researcher searches the web (the mock's canned results).
            ("tool", "researcher"),
            ("ok", "researcher"),
            ("started", "writer"),
            ("ok", "writer"),
            ("started", "editor"),
            ("ok", "editor"),
        ]
    );
    assert!(stderr.lines().any(|l| l.starts_with("total ")), "{stderr}");
    snapshot!("run_research", output);
}

#[test]
fn json_prints_one_run_record() {
    let home = tempfile::tempdir().unwrap();
    let output = run_mock(
        home.path(),
        &example("research.yaml"),
        &["--input", RESEARCH_TOPIC, "--json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record: Value = serde_json::from_slice(&output.stdout).expect("stdout is one JSON value");
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["workflow"], "research");
    assert_eq!(record["mock"], true);
    assert_eq!(record["inputs"]["topic"], "Rust async runtimes");
    assert_eq!(
        record["inputs"]["audience"], "software engineers",
        "the default"
    );
    assert_eq!(record["cost_usd"], 0.0);
    let agents = record["agents"].as_array().unwrap();
    let names: Vec<&str> = agents.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["researcher", "writer", "editor"]);
    let mut total = (0, 0);
    for agent in agents {
        assert_eq!(agent["status"], "succeeded", "{agent}");
        let (input, output) = (
            agent["usage"]["input"].as_u64().unwrap(),
            agent["usage"]["output"].as_u64().unwrap(),
        );
        assert!(input > 0 && output > 0, "{agent}");
        total = (total.0 + input, total.1 + output);
        assert!(agent["output"].as_str().unwrap().starts_with("[mock "));
    }
    assert_eq!(record["usage"]["input"], total.0);
    assert_eq!(record["usage"]["output"], total.1);
    assert_eq!(
        agents[1]["model"], "gpt-4o",
        "the model id without its provider"
    );
    assert_eq!(agents[1]["provider"], "openai");
    // The writer's prompt quotes the researcher's output: the data flowed.
    assert_eq!(
        record["outputs"]["article"].as_str(),
        agents[2]["output"].as_str()
    );
    snapshot!("run_research_json", output);

    // A second run has another run id (and its own start time and timings); the
    // filters hide them, so it matches the same snapshot.
    let again = run_mock(
        home.path(),
        &example("research.yaml"),
        &["--input", RESEARCH_TOPIC, "--json"],
    );
    let second: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_ne!(record["run_id"], second["run_id"]);
    // RFC 3339 in UTC, to the second: later runs sort after earlier ones.
    assert!(record["started_at"].as_str() <= second["started_at"].as_str());
    snapshot!("run_research_json", again);
}

#[test]
fn out_writes_a_file_per_agent_and_the_run_record() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("scan");
    let output = run_mock(
        home.path(),
        &example("market-scan.yaml"),
        &[
            "--input",
            "product=an open-source feature-flag service",
            "--out",
            "scan",
            "--json",
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let files: BTreeSet<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let expected: BTreeSet<String> = [
        "brief.md",
        "competitors.json",
        "customers.md",
        "pricing.md",
        "regulation.md",
        "run.json",
        "swot.md",
        "trends.md",
    ]
    .map(String::from)
    .into();
    assert_eq!(files, expected);

    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(run, printed, "run.json is the record --json prints");
    for agent in run["agents"].as_array().unwrap() {
        let name = agent["name"].as_str().unwrap();
        if name == "competitors" {
            let written: Value = serde_json::from_str(
                &std::fs::read_to_string(out.join("competitors.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(written, agent["json"]);
            assert!(
                written["competitors"].as_array().unwrap().len() >= 3,
                "{written}"
            );
        } else {
            let written = std::fs::read_to_string(out.join(format!("{name}.md"))).unwrap();
            assert_eq!(
                Some(written.as_str()),
                agent["output"].as_str(),
                "{name}.md"
            );
        }
    }
}

#[test]
fn an_input_can_be_read_from_a_file_or_stdin() {
    let home = tempfile::tempdir().unwrap();
    let diff = "--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1 +1 @@\n-fn answer() -> u8 { 41 }\n+fn answer() -> u8 { 42 }\n";
    write(home.path(), "changes.diff", diff);
    let output = run_mock(
        home.path(),
        &example("pr-review.yaml"),
        &["--input", "diff=@changes.diff", "--json"],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let record: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(record["inputs"]["diff"], diff);

    // The mock quotes the start of its prompt, so a prompt that starts with the
    // input shows that the file's text reached it.
    let file = write(
        home.path(),
        "echo.yaml",
        "version: 1\ninputs:\n  notes:\n    required: true\nagents:\n  echo:\n    model: mock/echo\n    prompt: \"{{inputs.notes}}\"\n",
    );
    write(home.path(), "notes.txt", "alpha beta gamma\n");
    let from_file = run_mock(home.path(), &file, &["--input", "notes=@notes.txt", "-q"]);
    assert!(
        text(&from_file.stdout).contains("reply to \"alpha beta gamma\""),
        "{}",
        text(&from_file.stdout)
    );
    let from_stdin = byok_flow(home.path())
        .args(["run", "echo.yaml", "--mock", "-q", "--input", "notes=@-"])
        .write_stdin("delta epsilon\n")
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert!(
        text(&from_stdin.stdout).contains("reply to \"delta epsilon\""),
        "{}",
        text(&from_stdin.stdout)
    );
}

#[test]
fn a_missing_input_file_is_a_usage_error() {
    let home = tempfile::tempdir().unwrap();
    let output = run_mock(
        home.path(),
        &example("pr-review.yaml"),
        &["--input", "diff=@nope.diff"],
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).starts_with("error: `--input diff=@nope.diff`: cannot read the file")
    );
}

#[test]
fn a_missing_required_input_is_named_with_the_flag_to_pass() {
    let home = tempfile::tempdir().unwrap();
    let output = run_mock(home.path(), &example("research.yaml"), &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("error: missing required input `topic`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: pass --input topic=VALUE"),
        "{stderr}"
    );
    assert!(!stderr.contains("started"), "no agent may start: {stderr}");
    snapshot!("run_missing_input", output);
}

#[test]
fn an_unknown_input_gets_the_closest_name() {
    let home = tempfile::tempdir().unwrap();
    let output = run_mock(
        home.path(),
        &example("research.yaml"),
        &["--input", "topc=Rust"],
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("the workflow has no input `topc`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `topic`?"), "{stderr}");
    snapshot!("run_unknown_input", output);
}

#[test]
fn quiet_prints_the_results_and_nothing_else() {
    let home = tempfile::tempdir().unwrap();
    let loud = run_mock(
        home.path(),
        &example("research.yaml"),
        &["--input", RESEARCH_TOPIC],
    );
    let quiet = run_mock(
        home.path(),
        &example("research.yaml"),
        &["--input", RESEARCH_TOPIC, "-q"],
    );
    assert_eq!(quiet.status.code(), Some(0));
    assert_eq!(
        text(&quiet.stderr),
        "",
        "-q prints no progress and no table"
    );
    assert!(!loud.stderr.is_empty());
    assert_eq!(quiet.stdout, loud.stdout);
}

/// A prompt whose only tags are plain paths is rendered without Handlebars
/// compiling it; one with blocks, helpers or a map agent's item goes through
/// Handlebars. Both read inputs and upstream outputs alike, and what only the
/// whole context has (a map agent's `outputs`, an item) is still there.
#[test]
fn plain_and_handlebars_prompts_read_the_same_values() {
    use crate::providers::{agent, record, run, workflow};
    let server = crate::support::fake::FakeServer::start();
    let dir = tempfile::tempdir().unwrap();
    let agents = [
        "  a: {model: openai/gpt-4o-mini, prompt: \"alpha {{inputs.topic}}\"}",
        "  plain: {model: openai/gpt-4o-mini, prompt: \"p {{inputs.topic}} / {{agents.a.output}}\"}",
        "  blocks: {model: openai/gpt-4o-mini, prompt: \"p {{#if inputs.topic}}{{inputs.topic}}{{/if}} / {{agents.a.output}}\"}",
        "  each: {model: openai/gpt-4o-mini, for_each: inputs.list, max_items: 5, prompt: \"i {{item}} of {{inputs.topic}} after {{agents.a.output}}\"}",
        "  joined: {model: openai/gpt-4o-mini, prompt: \"j {{#each agents.each.outputs}}[{{this}}]{{/each}} {{agents.plain.output}}\"}",
        "",
    ]
    .join("\n");
    let yaml = workflow(&server, &agents).replace(
        "version: 1\n",
        "version: 1\ninputs:\n  topic: {required: true}\n  list: {required: true}\n",
    );
    let out = run(
        dir.path(),
        &yaml,
        &["--input", "topic=T", "--input", "list=[\"x\", \"y\"]"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rec = record(&out);
    let a = agent(&rec, "a")["output"].as_str().unwrap().to_string();
    let mut prompts: Vec<String> = server
        .requests()
        .iter()
        .filter_map(|r| {
            r.body["messages"].as_array()?.last()?["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    prompts.sort();
    let out_of = |name: &str| agent(&rec, name)["output"].as_str().unwrap().to_string();
    let mut expected = vec![
        "alpha T".to_string(),
        format!("p T / {a}"),
        format!("p T / {a}"),
        format!("i x of T after {a}"),
        format!("i y of T after {a}"),
        format!(
            "j [{}][{}] {}",
            out_of("each[0]"),
            out_of("each[1]"),
            out_of("plain")
        ),
    ];
    expected.sort();
    assert_eq!(prompts, expected);
}
