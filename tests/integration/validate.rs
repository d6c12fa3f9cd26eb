//! `byok-flow validate` on bad input: every broken workflow in
//! `tests/fixtures/invalid/`, and generated ones too big or too strange to commit,
//! exits 2 with a message at its place, and never panics or hangs.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use crate::snapshot;
use crate::support::{byok_flow, repo};

/// Far longer than any check takes: a hang fails the one test, not the suite.
const TIMEOUT: Duration = Duration::from_secs(30);

fn fixtures() -> PathBuf {
    repo().join("tests/fixtures/invalid")
}

/// `byok-flow validate FILE...` run from `dir`, so messages name the bare file.
fn validate(dir: &Path, files: &[&str]) -> Output {
    let home = tempfile::tempdir().unwrap();
    byok_flow(home.path())
        .current_dir(dir)
        .arg("validate")
        .args(files)
        .timeout(TIMEOUT)
        .output()
        .unwrap()
}

/// The checks every invalid file must pass: exit 2, no panic, nothing on stdout,
/// the message, and `file:line:col` when the problem has a place in the file.
fn assert_invalid(file: &str, output: &Output, at: Option<&str>, message: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{file}: {stderr}");
    assert!(!stderr.contains("panicked"), "{file}: {stderr}");
    assert!(output.stdout.is_empty(), "{file} printed on stdout");
    assert!(
        stderr.contains(message),
        "{file}: expected {message:?} in:\n{stderr}"
    );
    match at {
        // `"4:"` checks the line only, `""` only that there is a place. The place is
        // in the quoted snippet's header, or before the message when the line is
        // too long to quote.
        Some(at) => {
            let (quoted, unquoted) = if at.is_empty() || at.ends_with(':') {
                (format!("[{file}:{at}"), format!("× {file}:{at}"))
            } else {
                (format!("[{file}:{at}]"), format!("× {file}:{at}: "))
            };
            assert!(
                stderr.contains(&quoted) || stderr.contains(&unquoted),
                "{file}: expected the place {file}:{at} in:\n{stderr}"
            );
        }
        None => assert!(
            !stderr.contains("╭─["),
            "{file}: expected no place in:\n{stderr}"
        ),
    }
}

/// One fixture, one mistake: its message at its place, counted once.
fn check_fixture(test: &str, at: &str, message: &str) {
    let file = format!("{}.yaml", test.replace('_', "-"));
    let output = validate(&fixtures(), &[&file]);
    assert_invalid(&file, &output, Some(at), message);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.ends_with(&format!("Found 1 error in {file}.\n")),
        "{file}: expected exactly one error:\n{stderr}"
    );
    snapshot!(format!("invalid_{test}"), output);
}

/// The table: each fixture, the `line:col` of its problem, and its message.
macro_rules! invalid_fixtures {
    ($($test:ident: $at:literal, $message:literal;)*) => {
        $(
            #[test]
            fn $test() {
                check_fixture(stringify!($test), $at, $message);
            }
        )*

        #[test]
        fn every_fixture_is_in_the_table() {
            let mut listed: Vec<String> = [$(stringify!($test)),*]
                .iter()
                .map(|t| format!("{}.yaml", t.replace('_', "-")))
                .chain(SEVERAL.iter().map(|f| (*f).to_string()))
                .collect();
            listed.sort();
            let mut files: Vec<String> = std::fs::read_dir(fixtures())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            assert_eq!(files, listed, "add each fixture to the table in validate.rs");
            assert!(files.len() >= 30, "the corpus has only {} files", files.len());
        }
    };
}

/// Fixtures with several problems each, checked by their own tests below.
const SEVERAL: &[&str] = &[
    "several-problems.yaml",
    "several-structural-problems.yaml",
    "structural-and-semantic-problems.yaml",
];

invalid_fixtures! {
    // YAML syntax
    tab_indent: "4:1", "tabs disallowed";
    duplicate_agent: "9:3", "duplicate key `writer`";
    duplicate_field: "7:5", "duplicate key `max_tokens`";
    unbalanced_flow: "6:11", "illegal placement of ':' indicator";
    unquoted_colon: "5:17", "mapping values are not allowed in this context";
    undefined_alias: "4:9", "refers to an anchor (`&name`) that is not defined";
    two_documents: "6:1", "the file holds more than one YAML document";
    // the file's shape
    top_level_list: "1:1", "a workflow is a mapping of fields, but this file holds a list";
    top_level_scalar: "1:1", "but this file holds the string \"Write a haiku about autumn.\"";
    missing_version: "1:1", "missing field `version` at the top level";
    version_2: "1:10", "`version` must be 1, not 2";
    version_string: "1:10", "`version` must be 1, not \"1.0\"";
    missing_agents: "1:1", "missing field `agents` at the top level";
    empty_agents: "2:1", "`agents` is empty";
    // unknown fields, at every level, with the closest valid name
    unknown_field_top: "3:1", "unknown field `descripton` at the top level";
    unknown_field_agent: "5:5", "unknown field `promt`";
    unknown_field_defaults: "4:3", "unknown field `temprature` in `defaults`";
    unknown_field_input: "5:5", "unknown field `requird` in `inputs.topic`";
    unknown_field_provider: "5:5", "unknown field `base-url` in `providers.local`";
    missing_model: "3:3", "agent `writer`: missing field `model`";
    missing_prompt: "3:3", "agent `writer`: missing field `prompt`";
    // wrong types and values
    wrong_type_max_tokens: "6:17", "`max_tokens` must be an integer, but it is the string \"lots\"";
    wrong_type_needs: "8:12", "`needs` must be a list, but it is the string \"researcher\"";
    wrong_type_agents_list: "3:3", "`agents` must be a mapping, but it is a list";
    wrong_type_prompt_mapping: "6:7", "`prompt` must be a string, but it is a mapping";
    wrong_type_required: "4:15", "`inputs.topic.required` must be `true` or `false`";
    input_without_mapping: "3:10", "`inputs.topic` must be a mapping, but it is the string";
    max_tokens_too_big: "5:17", "`max_tokens` is 5000000000, above the maximum 4294967295";
    not_a_number: "5:18", "`.nan` is not a finite number";
    bad_duration: "5:14", "`timeout` is \"soon\", which is not a duration";
    bad_duration_number: "3:12", "`defaults.timeout` must be a string, but it is the number 90";
    temperature_out_of_range: "5:18", "`temperature` is 3.5, above the maximum 2.0";
    max_tokens_zero: "5:17", "`max_tokens` is 0, below the minimum 1";
    negative_budget: "3:12", "`budget.max_usd` is -1, below the minimum 0.0";
    invalid_output_kind: "5:13", "`output` is \"markdown\", which is not one of: text, json";
    invalid_output_schema: "7:13", "`schema.type` is not a valid JSON Schema";
    // names
    invalid_agent_name: "3:3", "`lead writer` in `agents` is not a valid name";
    invalid_input_name: "3:3", "`topic.name` in `inputs` is not a valid name";
    invalid_key_name: "5:10", "`../../home/me/.ssh/id_ed25519` is not a key name";
    // providers and models
    unknown_provider: "4:12", "unknown provider `antropic`";
    model_without_slash: "4:12", "model \"gpt-4o\" is not `PROVIDER/MODEL`";
    fallback_without_slash: "5:44", "model \"gpt-5.4-mini\" is not `PROVIDER/MODEL`";
    model_wrong_family: "4:12", "`gpt-4o` is not a model this provider serves";
    provider_without_type: "3:3", "provider `local` needs a `type:`";
    provider_without_base_url: "3:3", "provider `lab` needs a `base_url:`";
    // references
    missing_agent_reference: "10:9", "`agents.reseacher.output` refers to agent `reseacher`, which does not exist";
    missing_input_reference: "8:40", "`inputs.topc` refers to input `topc`, which is not declared";
    json_of_text_agent: "9:37", "reads JSON, but agent `researcher` has text output";
    agent_unknown_attribute: "8:40", "an agent has `output`, `json` and `citations`, not `text`";
    unknown_variable: "8:40", "unknown variable `topic`";
    output_unknown_agent: "7:12", "`agents.writter.output` refers to agent `writter`";
    needs_missing_agent: "8:25", "`needs` names `reviewr`, which is not an agent";
    // templates
    handlebars_unclosed_block: "10:7", "`{{#if …}}` is never closed";
    handlebars_unclosed_braces: "8:38", "this `{{` is never closed with `}}`";
    mismatched_block: "10:7", "`{{#if …}}` is closed by `{{/each}}`; close it with `{{/if}}`";
    unknown_helper: "7:7", "unknown helper `readFile`";
    partial: "6:7", "partials (`{{> …}}`) are not supported";
    decorator: "5:14", "decorators (`{{* …}}`) are not supported";
    // map agents (`for_each`)
    for_each_text_agent: "8:15", "`for_each` reads a list from `researcher`, whose output is text";
    for_each_reads_text: "8:15", "`for_each: agents.planner.output` reads text";
    for_each_without_max_items: "9:15", "a list from agent `planner` needs `max_items`";
    for_each_unknown_input: "8:15", "`for_each` reads input `topic`, which is not declared";
    item_outside_map_agent: "8:28", "`item` and `item_index` exist only in a map agent's templates";
    map_output_read_as_text: "12:28", "`writer` runs once per item: it has `outputs`, a list, not one `output`";
    max_items_without_for_each: "6:16", "`max_items` bounds the items of a map agent, and this agent has no `for_each`";
    // server-side tools (issue 15)
    tool_not_offered: "6:13", "`openai/gpt-4o` cannot run `web_search`";
    tool_option_refused: "8:11", "`openai/gpt-4o-search-preview` takes no `max_uses` for `web_search`";
    tool_unknown: "6:13", "unknown tool `web_serch`";
    tool_unknown_option: "7:22", "unknown option `max_use` of `web_search`";
    tool_fetch_on_gemini: "6:25", "`gemini/gemini-2.5-flash` cannot run `web_fetch`";
    tool_fallback_refused: "5:16", "fallback `openai/gpt-4o` cannot run `web_search`, which this agent's `tools` needs";
    tools_with_json_output: "7:5", "an agent with `tools` answers in text, so it cannot have `output: json`";
    search_model_without_tools: "5:16", "fallback `openai/gpt-4o-mini-search-preview` searches the web on every request";
    // cycles
    self_loop: "3:3", "agent `writer`: it depends on itself";
    cycle_three: "3:3", "cycle: planner -> writer -> reviewer -> planner";
    needs_cycle: "3:3", "cycle: a -> b -> a";
}

#[test]
fn a_file_with_several_problems_reports_them_all() {
    let output = validate(&fixtures(), &["several-problems.yaml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for (at, message) in [
        ("8:12", "unknown provider `antropic`"),
        ("9:25", "`inputs.topik` refers to input `topik`"),
        ("12:25", "`needs` names `fact-checker`"),
        (
            "15:9",
            "`agents.reseacher.output` refers to agent `reseacher`",
        ),
        ("18:53", "`{{#if …}}` is never closed"),
        ("19:3", "cycle: planner -> reviewer -> planner"),
    ] {
        assert_invalid("several-problems.yaml", &output, Some(at), message);
    }
    assert!(
        stderr.ends_with("Found 6 errors in several-problems.yaml.\n"),
        "{stderr}"
    );
    snapshot!("invalid_several_problems", output);
}

#[test]
fn a_file_with_several_structural_problems_reports_them_all() {
    let output = validate(&fixtures(), &["several-structural-problems.yaml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for (at, message) in [
        ("4:3", "unknown field `temprature` in `defaults`"),
        ("5:12", "`defaults.timeout` must be a string"),
        ("8:12", "model \"gpt-4o\" is not `PROVIDER/MODEL`"),
        ("10:17", "`max_tokens` must be an integer"),
        ("14:13", "`output` is \"markdown\""),
    ] {
        assert_invalid(
            "several-structural-problems.yaml",
            &output,
            Some(at),
            message,
        );
    }
    assert!(
        stderr.ends_with("Found 5 errors in several-structural-problems.yaml.\n"),
        "{stderr}"
    );
    snapshot!("invalid_several_structural_problems", output);
}

/// Structural problems do not hide the others: a stand-in (`workflow::repair`)
/// lets references, templates and cycles be checked in the same pass, and a typo
/// is read as the field it is closest to, so it is not reported twice.
#[test]
fn structural_and_semantic_problems_are_reported_together() {
    let file = "structural-and-semantic-problems.yaml";
    let output = validate(&fixtures(), &[file]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for (at, message) in [
        ("3:3", "unknown field `max_token` in `defaults`"),
        ("5:3", "cycle: a -> b -> a"),
        (
            "10:36",
            "`inputs.nope` refers to input `nope`, which is not declared",
        ),
        ("11:18", "`temperature` must be a number"),
    ] {
        assert_invalid(file, &output, Some(at), message);
    }
    assert!(
        stderr.ends_with(&format!("Found 4 errors in {file}.\n")),
        "{stderr}"
    );
    snapshot!("invalid_structural_and_semantic_problems", output);
}

#[test]
fn warnings_are_shown_and_the_file_is_valid() {
    let output = validate(&repo().join("tests/fixtures"), &["warnings.yaml"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "warnings.yaml: ok (1 agent, 0 edges)\n"
    );
    assert!(stderr.contains("[warnings.yaml:7:29]"), "{stderr}");
    assert!(
        stderr.contains("`schema` is ignored unless `output: json`"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("Found 2 warnings in warnings.yaml.\n"),
        "{stderr}"
    );
    snapshot!("valid_with_warnings", output);
}

#[test]
fn several_files_are_each_checked() {
    let examples = repo().join("workflows");
    let home = tempfile::tempdir().unwrap();
    let output = byok_flow(home.path())
        .arg("validate")
        .arg(examples.join("research.yaml"))
        .arg(fixtures().join("self-loop.yaml"))
        .arg(fixtures().join("unknown-provider.yaml"))
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stdout.ends_with("research.yaml: ok (3 agents, 2 edges)\n"),
        "{stdout}"
    );
    assert!(stderr.contains("self-loop.yaml.\n"), "{stderr}");
    assert!(stderr.contains("unknown-provider.yaml.\n"), "{stderr}");
    assert!(stderr.ends_with("2 of 3 files are invalid.\n"), "{stderr}");
}

#[test]
fn a_missing_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = validate(dir.path(), &["nope.yaml"]);
    assert_invalid(
        "nope.yaml",
        &output,
        None,
        "nope.yaml: cannot read the file",
    );
    snapshot!("invalid_missing_file", output);
}

/// Writes `bytes` as `name` in a fresh folder and validates it.
fn validate_generated(name: &str, bytes: &[u8]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), bytes).unwrap();
    validate(dir.path(), &[name])
}

#[test]
fn an_empty_file() {
    let output = validate_generated("empty.yaml", b"");
    assert_invalid("empty.yaml", &output, None, "the file is empty");
    snapshot!("generated_empty", output);
}

#[test]
fn a_file_of_comments_and_blank_lines() {
    let output = validate_generated(
        "comments.yaml",
        b"# a workflow, one day\n\n   \n# nothing yet\n",
    );
    assert_invalid("comments.yaml", &output, None, "the file is empty");
}

/// A 5 MB workflow whose one mistake is on its last line.
#[test]
fn a_five_megabyte_file() {
    let mut text = String::from(
        "version: 1\nagents:\n  summariser:\n    model: openai/gpt-5.4-mini\n    prompt: |\n",
    );
    let mut lines = 0;
    while text.len() < 5_000_000 {
        text.push_str("      A long report goes on, line after line, with nothing wrong in it.\n");
        lines += 1;
    }
    text.push_str("    max_tokens: lots\n");
    let output = validate_generated("big.yaml", text.as_bytes());
    let at = format!("{}:17", lines + 6);
    assert_invalid(
        "big.yaml",
        &output,
        Some(&at),
        "`max_tokens` must be an integer",
    );
    snapshot!("generated_five_megabytes", output);
}

/// A problem a million columns into a line: no quoted line, but still its place.
#[test]
fn a_megabyte_long_line() {
    let text = format!(
        "version: 1\nagents:\n  writer:\n    model: openai/gpt-4o\n    prompt: {} {{{{inputs.nope}}}}\n",
        "word ".repeat(200_000)
    );
    let output = validate_generated("long-line.yaml", text.as_bytes());
    assert_invalid(
        "long-line.yaml",
        &output,
        None,
        "long-line.yaml:5:1000016: agent `writer`: `inputs.nope` refers to input `nope`",
    );
    snapshot!("generated_long_line", output);
}

#[test]
fn deeply_nested_mappings() {
    let mut text = String::from("version: 1\nagents:\n");
    for depth in 1..=200 {
        text.push_str(&format!("{}level{depth}:\n", "  ".repeat(depth)));
    }
    let output = validate_generated("deep.yaml", text.as_bytes());
    assert_invalid(
        "deep.yaml",
        &output,
        Some("66:129"),
        "the YAML is nested more than 64 levels deep",
    );
}

#[test]
fn deeply_nested_flow_lists() {
    let text = format!(
        "version: 1\nagents: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let output = validate_generated("deep-flow.yaml", text.as_bytes());
    assert_invalid(
        "deep-flow.yaml",
        &output,
        Some("2:"),
        "nested more than 64 levels deep",
    );
}

/// Bytes that are not text: NULs and invalid UTF-8 among random ones.
#[test]
fn a_binary_file() {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()[0]
        })
        .chain([0, 0, 0xff, 0xfe])
        .collect();
    let output = validate_generated("random.bin", &bytes);
    assert_invalid(
        "random.bin",
        &output,
        Some("1:"),
        "the file is not UTF-8 text",
    );
}

#[test]
fn a_text_file_with_a_nul_byte() {
    let text =
        "version: 1\nagents:\n  writer:\n    model: openai/gpt-4o\n    prompt: \"hi\0there\"\n";
    let output = validate_generated("nul.yaml", text.as_bytes());
    assert_invalid(
        "nul.yaml",
        &output,
        Some("5:16"),
        "the file contains a NUL byte",
    );
    snapshot!("generated_nul_byte", output);
}

#[test]
fn a_latin1_file() {
    let bytes = b"version: 1\nagents:\n  writer:\n    model: openai/gpt-4o\n    prompt: Write a poem about a caf\xe9.\n";
    let output = validate_generated("latin1.yaml", bytes);
    assert_invalid(
        "latin1.yaml",
        &output,
        Some("5:37"),
        "the file is not UTF-8 text",
    );
    snapshot!("generated_latin1", output);
}

/// "Billion laughs": nine anchors, each nine copies of the one before.
#[test]
fn a_yaml_alias_bomb() {
    let mut text =
        String::from("version: 1\nx-lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*lol{}", i - 1); 9].join(", ");
        text.push_str(&format!("x-lol{i}: &lol{i} [{refs}]\n"));
    }
    text.push_str(
        "agents:\n  writer:\n    model: openai/gpt-4o\n    prompt: Laugh.\n    stop: *lol9\n",
    );
    let output = validate_generated("bomb.yaml", text.as_bytes());
    assert_invalid(
        "bomb.yaml",
        &output,
        Some("6:44"),
        "the file's aliases (`*name`) expand to too many values",
    );
    snapshot!("generated_alias_bomb", output);
}

/// One big anchor copied many times over, flat.
#[test]
fn a_wide_alias_bomb() {
    let mut text = String::from("version: 1\nx-big: &big\n");
    for i in 0..1000 {
        text.push_str(&format!("  - item {i}\n"));
    }
    text.push_str("x-copies:\n");
    for _ in 0..1000 {
        text.push_str("  - *big\n");
    }
    let output = validate_generated("wide-bomb.yaml", text.as_bytes());
    assert_invalid(
        "wide-bomb.yaml",
        &output,
        Some(""),
        "the file's aliases (`*name`) expand to too many values",
    );
}
