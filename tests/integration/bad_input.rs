//! Bad input must not crash or hang (SPEC §2; issue 13, items 10-14, and issue 11,
//! items 5-6): structures as deep or as long as a user can make them, files that
//! never end, bytes that would drive a terminal, files full of mistakes, and
//! templates that would render forever. Each is refused or reported, with the
//! real binary, quickly.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::run::{run_mock, text, write};
use crate::snapshot;
use crate::support::{byok_flow, byok_flow_process};

/// Longer than this is a hang (a FIFO read blocks forever).
const TIMEOUT: Duration = Duration::from_mins(1);

fn validate(home: &Path, file: &Path) -> Output {
    byok_flow(home)
        .arg("validate")
        .arg(file)
        .timeout(TIMEOUT)
        .output()
        .unwrap()
}

/// `byok-flow ARGS...` on a 1 MiB main stack (`ulimit -s 1024`), where recursion
/// once per agent overflows long before 5,000.
#[cfg(unix)]
fn on_a_small_stack(home: &Path, args: &[&str]) -> Output {
    assert_cmd::Command::new("/bin/sh")
        .env_clear()
        .env("HOME", home)
        .env("NO_COLOR", "1")
        .current_dir(home)
        .args(["-c", "ulimit -s 1024 && exec \"$@\"", "sh"])
        .arg(env!("CARGO_BIN_EXE_byok-flow"))
        .args(args)
        .timeout(TIMEOUT)
        .output()
        .unwrap()
}

fn chain(n: usize, ring: bool) -> String {
    let mut text = String::from("version: 1\nagents:\n");
    for i in 0..n {
        let upstream = match (i, ring) {
            (0, false) => "plain text".to_string(),
            (0, true) => format!("{{{{agents.a{}.output}}}}", n - 1),
            _ => format!("{{{{agents.a{}.output}}}}", i - 1),
        };
        text.push_str(&format!(
            "  a{i}:\n    model: mock/echo\n    prompt: \"{upstream}\"\n"
        ));
    }
    text
}

fn one_agent(prompt: &str) -> String {
    format!(
        "version: 1\ninputs:\n  x:\n    default: \"yes\"\nagents:\n  a:\n    model: mock/echo\n    prompt: \"{prompt}\"\n"
    )
}

/// Issue 13, item 10: graph walks are iterative: a 5,000-agent chain validates,
/// draws and runs, and a 5,000-agent ring is reported as one cycle, on a 1 MiB
/// stack (Tarjan's recursive walk overflowed: a 90,000-agent chain killed
/// `validate` on the usual 8 MiB).
#[cfg(unix)]
#[test]
fn issue13_deep_chain_validates_without_stack_overflow() {
    let home = tempfile::tempdir().unwrap();
    write(home.path(), "chain.yaml", &chain(5_000, false));
    let out = on_a_small_stack(home.path(), &["validate", "chain.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "chain.yaml: ok (5000 agents, 4999 edges)\n"
    );
    let out = on_a_small_stack(home.path(), &["graph", "chain.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("a_a4998 --> a_a4999"));
    let out = on_a_small_stack(home.path(), &["run", "--mock", "-q", "chain.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("[mock mock/echo]"));

    write(home.path(), "ring.yaml", &chain(5_000, true));
    let out = on_a_small_stack(home.path(), &["validate", "ring.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cycle: a0 -> a1 -> a2"), "{stderr}");
    assert!(stderr.contains("-> a4999 -> a0"), "{stderr}");
    assert!(stderr.contains("Found 1 error in ring.yaml."), "{stderr}");
}

/// Issue 13, item 10: every block helper has a nesting limit, checked by
/// `validate` before anything recurses: 5,000 nested `{{#if}}` passed `validate`
/// and then overflowed the stack in `run`. Up to the limit they render.
#[test]
fn issue13_deep_block_nesting_is_refused_by_validate() {
    let home = tempfile::tempdir().unwrap();
    let deep = |open: &str, close: &str, n: usize| {
        one_agent(&format!("{}x{}", open.repeat(n), close.repeat(n)))
    };
    let cases = [
        (
            "ifs.yaml",
            deep("{{#if inputs.x}}", "{{/if}}", 5_000),
            "blocks nest more than 32 deep",
        ),
        (
            "unless.yaml",
            deep("{{#unless inputs.x}}", "{{/unless}}", 5_000),
            "blocks nest more than 32 deep",
        ),
        (
            "else-if.yaml",
            one_agent(&format!(
                "{{{{#if inputs.x}}}}a{}{{{{/if}}}}",
                "{{else if inputs.x}}b".repeat(5_000)
            )),
            "blocks nest more than 32 deep",
        ),
        (
            "subexpressions.yaml",
            one_agent(&format!(
                "{{{{#if {}inputs.x{}}}}}y{{{{/if}}}}",
                "(not ".repeat(5_000),
                ")".repeat(5_000)
            )),
            "sub-expressions and literals nest more than",
        ),
    ];
    for (name, workflow, message) in cases {
        let file = write(home.path(), name, &workflow);
        let out = validate(home.path(), &file);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(message), "{name}: {stderr}");
        assert!(stderr.contains("workflow::template"), "{name}: {stderr}");
        let out = run_mock(home.path(), &file, &[]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stderr));
    }
    // At the limit, a template renders (on a runtime worker's stack).
    let file = write(
        home.path(),
        "ok.yaml",
        &deep("{{#if inputs.x}}", "{{/if}}", 32),
    );
    let out = run_mock(home.path(), &file, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// Issue 13, item 10, its siblings: YAML nested 100,000 deep (flow and block
/// style) is refused at 64 levels, and a JSON Schema whose `$ref`s loop is
/// checked and used without recursing forever.
#[test]
fn issue13_deep_yaml_and_looping_schemas_do_not_recurse() {
    let home = tempfile::tempdir().unwrap();
    let n = 100_000;
    let block = (1..3_000).fold(String::new(), |mut block, i| {
        block.push_str(&" ".repeat(i));
        block.push_str("a:\n");
        block
    });
    let cases = [
        (
            "seq.yaml",
            format!("version: 1\nagents: {}{}\n", "[".repeat(n), "]".repeat(n)),
        ),
        (
            "map.yaml",
            format!(
                "version: 1\nagents: {}1{}\n",
                "{a: ".repeat(n),
                "}".repeat(n)
            ),
        ),
        ("block.yaml", format!("version: 1\nx-deep:\n{block}")),
    ];
    for (name, workflow) in cases {
        let out = validate(home.path(), &write(home.path(), name, &workflow));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(
            stderr.contains("nested more than 64 levels deep"),
            "{name}: {stderr}"
        );
    }
    let looping = "version: 1\nagents:\n  a:\n    model: mock/echo\n    prompt: hi\n    output: json\n    schema:\n      $defs:\n        x: {$ref: \"#/$defs/y\"}\n        y: {$ref: \"#/$defs/x\"}\n      $ref: \"#/$defs/x\"\n";
    let file = write(home.path(), "looping.yaml", looping);
    let out = validate(home.path(), &file);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = run_mock(home.path(), &file, &[]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        text(&out.stderr)
    );
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

/// Issue 13, item 11: only regular files are read (or stdin when asked), each
/// within a limit: `validate /dev/zero` and `--input x=@/dev/zero` grew without
/// end, and a FIFO as the workflow hung forever.
#[cfg(unix)]
#[test]
fn issue13_unbounded_reads_are_refused() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let fifo = dir.join("fifo.yaml");
    mkfifo(&fifo);
    for (file, what) in [
        (
            Path::new("/dev/zero"),
            "it is a character device, not a regular file",
        ),
        (
            fifo.as_path(),
            "it is a FIFO (named pipe), not a regular file",
        ),
        (dir, "it is a folder, not a regular file"),
    ] {
        let out = validate(dir, file);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(&format!("cannot read the workflow: {what}")),
            "{stderr}"
        );
    }

    let workflow = write(
        dir,
        "input.yaml",
        "version: 1\ninputs:\n  x: {required: true}\nagents:\n  a:\n    model: mock/echo\n    prompt: hi\n",
    );
    let big = dir.join("big.txt");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(33 << 20)
        .unwrap();
    let cases = [
        (
            "x=@/dev/zero",
            "it is a character device, not a regular file",
        ),
        (
            "x=@fifo.yaml",
            "it is a FIFO (named pipe), not a regular file",
        ),
        ("x=@big.txt", "it is larger than 32 MiB"),
    ];
    for (input, what) in cases {
        let out = run_mock(dir, &workflow, &["--input", input]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{input}: {stderr}");
        assert!(
            stderr.contains(&format!("`--input {input}`: cannot read the file: {what}")),
            "{input}: {stderr}"
        );
    }
    let out = run_mock(dir, &workflow, &["--input", "x=@big.txt"]);
    assert!(text(&out.stderr).contains("raise the limit, like `--max-input-size 64MiB`"));
    let out = run_mock(
        dir,
        &workflow,
        &["--input", "x=@big.txt", "--max-input-size", "64MiB", "-q"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // stdin, when asked for, is bounded too.
    let out = byok_flow_process(dir)
        .args(["run", "--mock", "input.yaml", "--input", "x=@-"])
        .stdin(std::fs::File::open(&big).unwrap())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("`--input x=@-`: cannot read stdin: it is larger than 32 MiB")
    );
    // A prices file, the same.
    let out = byok_flow(dir)
        .args(["validate", "input.yaml", "--prices", "fifo.yaml"])
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("it is a FIFO (named pipe), not a regular file"));
}

/// Issue 13, item 12: a workflow's bytes are quoted with their control
/// characters escaped (`\x1b`), in the snippet (caret still under the mistake),
/// in messages and in GitHub annotations: `ESC]0;…BEL` would retitle the
/// terminal and `ESC[2J` clear it.
#[test]
fn issue13_control_characters_are_escaped_in_diagnostics() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    // Raw bytes in the file: the YAML error quotes the line.
    let raw = write(
        dir,
        "raw.yaml",
        "version: 1\nagents:\n  a:\n    model: mock/echo\n    prompt: \"\x1b]0;owned\x07 \x1b[2J {{inputs.nope}}\"\n",
    );
    // Escapes in quoted YAML: the values themselves hold control characters.
    let values = write(
        dir,
        "values.yaml",
        "version: 1\nagents:\n  a:\n    model: \"openai/gpt\\e]0;owned\\a\"\n    prompt: \"{{agents.\\e[2J.output}}\"\n",
    );
    let out = validate(dir, &raw);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for control in ['\x1b', '\x07'] {
        assert!(!stderr.contains(control), "{stderr:?}");
    }
    assert!(
        stderr.contains(r#"prompt: "\x1b]0;owned\x07 \x1b[2J {{inputs.nope}}""#),
        "{stderr}"
    );
    snapshot!("issue13_control_characters_in_a_snippet", out);

    for github in [false, true] {
        let mut command = byok_flow(dir);
        if github {
            command.env("GITHUB_ACTIONS", "true");
        }
        let out = command
            .arg("validate")
            .arg(&values)
            .timeout(TIMEOUT)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        for control in ['\x1b', '\x07'] {
            assert!(!stderr.contains(control), "{stderr:?}");
        }
        assert!(
            stderr.contains(r"model `openai/gpt\x1b]0;owned\x07` holds a control character"),
            "{stderr}"
        );
        if github {
            assert!(stderr.contains("::error file="), "{stderr}");
        }
    }
}

/// Issue 13, item 13: an unknown reference's help names at most the 3 closest
/// agents, never all of them (8,000 errors each listing every agent printed
/// 4.3 million lines).
#[test]
fn issue13_unknown_references_suggest_at_most_three_names() {
    let home = tempfile::tempdir().unwrap();
    let mut workflow = String::from("version: 1\nagents:\n");
    for i in 0..50 {
        workflow.push_str(&format!(
            "  writer-{i:02}:\n    model: mock/echo\n    prompt: hi\n"
        ));
    }
    workflow
        .push_str("  near:\n    model: mock/echo\n    prompt: \"{{agents.writer-5.output}}\"\n");
    workflow.push_str("  far:\n    model: mock/echo\n    prompt: \"{{agents.zzzzzzzz.output}}\"\n    needs: [writer_07]\n");
    let file = write(home.path(), "many.yaml", &workflow);
    let out = validate(home.path(), &file);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let helps: Vec<&str> = stderr.lines().filter(|l| l.contains("help:")).collect();
    assert_eq!(helps.len(), 3, "{stderr}");
    assert!(
        helps.contains(&"  help: did you mean `writer-05`, `writer-15` or `writer-25`?"),
        "{stderr}"
    );
    assert!(
        helps.contains(&"  help: did you mean `writer-07`?"),
        "{stderr}"
    );
    assert!(
        helps.contains(&"  help: none of the 52 agents in this workflow has a similar name"),
        "{stderr}"
    );
    assert!(
        stderr.lines().all(|l| l.matches("writer-").count() <= 3),
        "{stderr}"
    );
}

/// Issue 13, item 14: each of these passed silently or failed without a place.
#[test]
fn issue13_messages_have_a_place_and_a_fix() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path();
    let agent = "agents:\n  a:\n    model: mock/echo\n    prompt: hi\n";
    let provider = |url: &str| {
        format!(
            "version: 1\nproviders:\n  local:\n    type: openai-compatible\n    base_url: {url}\n    key: none\nagents:\n  a:\n    model: local/llama\n    prompt: hi\n"
        )
    };
    let cases = [
        (
            "version.yaml".to_string(),
            format!("version: 1.0\n{agent}"),
            "version.yaml:1:10",
            "`version` must be 1, not 1.0",
        ),
        (
            "decimal.yaml".into(),
            format!("version: 1\n{agent}    max_tokens: 100.0\n"),
            "decimal.yaml:6:17",
            "agent `a`: `max_tokens` must be a whole number, not 100.0",
        ),
        ("not-a-url.yaml".into(), provider("not a url"), "not-a-url.yaml:5:15", "is not a URL: it has no scheme"),
        ("ftp.yaml".into(), provider("ftp://llm.example.com/v1"), "ftp.yaml:5:15", "uses `ftp:`"),
        ("port.yaml".into(), provider("http://127.0.0.1:99999/v1"), "port.yaml:5:15", "has a port that does not exist"),
        (
            "timeout.yaml".into(),
            format!("version: 1\n{agent}    timeout: 0s\n"),
            "timeout.yaml:6:14",
            "agent `a`: `timeout` is 0",
        ),
        (
            "max-tokens.yaml".into(),
            "version: 1\nagents:\n  a:\n    model: openai/gpt-4o\n    prompt: hi\n    max_tokens: 1000000\n".into(),
            "max-tokens.yaml:6:17",
            "agent `a`: `max_tokens` is 1000000, above the 16384 output tokens `openai/gpt-4o` can write",
        ),
    ];
    for (name, workflow, place, message) in cases {
        let file = write(dir, &name, &workflow);
        let out = byok_flow(dir)
            .arg("validate")
            .arg(&name)
            .timeout(TIMEOUT)
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(message), "{name}: {stderr}");
        assert!(stderr.contains(place), "{name}: {stderr}");
        assert!(stderr.contains("help: "), "{name}: {stderr}");
        // `run` stops at the same place, before anything is sent (it exited 4 for a URL).
        let out = run_mock(dir, &file, &[]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stderr));
    }
    snapshot!(
        "issue13_version_as_a_decimal",
        byok_flow(dir)
            .args(["validate", "version.yaml"])
            .output()
            .unwrap()
    );
}

/// Issue 13, item 14: a value missing inside a sub-expression failed with
/// "Failed to access variable in strict mode None"; now the agent's error names
/// the value, the tag and its line in the template.
#[test]
fn issue13_a_missing_value_in_a_sub_expression_is_named() {
    let home = tempfile::tempdir().unwrap();
    let workflow = "version: 1\nagents:\n  plan:\n    model: mock/echo\n    prompt: plan it\n    output: json\n    schema: {type: object, properties: {title: {type: string}}}\n  write:\n    model: mock/echo\n    prompt: |\n      Write it.\n      {{#if (eq agents.plan.json.kind \"essay\")}}Long.{{/if}}\n";
    let file = write(home.path(), "sub.yaml", workflow);
    let out = run_mock(home.path(), &file, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("None"), "{stderr}");
    assert!(
        stderr.contains("failed   write: cannot render the prompt: line 2, column 1: `agents.plan.json.kind` in `{{#if (eq agents.plan.json.kind \"essay\")}}` has no value"),
        "{stderr}"
    );
}

/// Issue 11, item 5: past the first 200 problems of a file the terminal gets a
/// count of the rest; `validate --json` has every one.
#[test]
fn issue11_diagnostics_are_capped_at_200_and_json_has_all() {
    let home = tempfile::tempdir().unwrap();
    let mut workflow = String::from("version: 1\nagents:\n");
    for i in 0..300 {
        workflow.push_str(&format!(
            "  w{i}:\n    model: mock/echo\n    prompt: \"{{{{agents.nobody{i}.output}}}}\"\n"
        ));
    }
    write(home.path(), "many.yaml", &workflow);
    let out = validate(home.path(), Path::new("many.yaml"));
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.matches("workflow::unknown-agent").count(), 200);
    assert!(
        stderr.contains("... 100 more errors not shown; `byok-flow validate --json"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("Found 300 errors in many.yaml.\n"),
        "{stderr}"
    );

    let out = byok_flow(home.path())
        .args(["validate", "--json", "many.yaml"])
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let file = &json["files"][0];
    assert_eq!(file["valid"], false);
    assert_eq!(file["errors"], 300);
    let all = file["diagnostics"].as_array().unwrap();
    assert_eq!(all.len(), 300);
    assert_eq!(all[299]["code"], "workflow::unknown-agent");
    assert_eq!(all[299]["agent"], "w299");
    assert_eq!(all[299]["line"], 900 + 2);
}

/// Issue 11, item 6: a template bomb (three nested loops over a 200-item list
/// an upstream agent returns: 8 million steps) stops at the render budget and
/// fails its agent, naming it and the template line.
#[test]
fn issue11_a_template_bomb_fails_its_agent() {
    let home = tempfile::tempdir().unwrap();
    let workflow = "version: 1\nagents:\n  list:\n    model: mock/echo\n    prompt: list things\n    output: json\n    schema: {type: array, minItems: 200, items: {type: integer}}\n  bomb:\n    model: mock/echo\n    prompt: |\n      Every triple:\n      {{#each agents.list.json}}{{#each @root.agents.list.json}}{{#each @root.agents.list.json}}.{{/each}}{{/each}}{{/each}}\n";
    let file = write(home.path(), "bomb.yaml", workflow);
    let out = run_mock(home.path(), &file, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("failed   bomb: cannot render the prompt: line 2, column"),
        "{stderr}"
    );
    assert!(
        stderr.contains("its loops ran 1000000 times, the most one template may"),
        "{stderr}"
    );
}
