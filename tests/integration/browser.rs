//! The HTML report in a real browser: headless Chromium (Debian's `chromium`,
//! which `.ci/run` installs) opens the report of a 3-agent and of a 200-agent
//! run, and of a run whose replies try to run script. Each visit logs every
//! console message and network request it saw next to its screenshot, in
//! `target/tmp/report/NAME/`.

use std::path::Path;

use serde_json::json;

use crate::report::{artifacts, cmd, wide_workflow};
use crate::run::{TIMEOUT, write};
use crate::support::chromium::{Browser, Visit};
use crate::support::fake::{FakeServer, Fault};
use crate::support::{byok_flow, example, repo, transcript};

/// Opens `page`, keeps its log and screenshot under `name`, and checks that it
/// logged no error and requested nothing but itself.
fn visit(browser: &mut Browser, page: &Path, name: &str) -> String {
    let (session, visit) = browser.open(page);
    let dir = artifacts(name);
    let log = log(&visit);
    std::fs::write(dir.join("visit.log"), &log).unwrap();
    eprintln!(
        "{name}: {} (log and screenshot in {})",
        log.trim_end(),
        dir.display()
    );
    assert!(
        visit.errors().is_empty(),
        "{name}: errors in the console:\n{log}"
    );
    let own = format!("file://{}", page.canonicalize().unwrap().display());
    let network: Vec<&String> = visit.requests.iter().filter(|url| **url != own).collect();
    assert!(
        network.is_empty(),
        "{name}: requests beyond the page itself:\n{log}"
    );
    assert_eq!(
        visit.requests,
        [own],
        "{name}: the page itself is loaded once"
    );
    let png = browser.screenshot(&session);
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{name}: no screenshot"
    );
    std::fs::write(dir.join("screenshot.png"), &png).unwrap();
    session
}

fn log(visit: &Visit) -> String {
    let mut log = format!(
        "{} requests, {} messages\n",
        visit.requests.len(),
        visit.messages.len()
    );
    for url in &visit.requests {
        log.push_str(&format!("request: {url}\n"));
    }
    for (level, text) in &visit.messages {
        log.push_str(&format!("{level}: {text}\n"));
    }
    log
}

/// What the page's scripts can see (none of its own run: these are the test's).
fn count(browser: &mut Browser, session: &str, selector: &str) -> u64 {
    browser
        .eval(
            session,
            &format!("document.querySelectorAll({}).length", json!(selector)),
        )
        .as_u64()
        .unwrap()
}

#[test]
#[ignore = "needs chromium"]
fn the_report_of_a_3_agent_run_in_chromium() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .arg("run")
        .arg(example("research.yaml"))
        .args([
            "--mock",
            "--input",
            "topic=Rust async runtimes",
            "--report",
            "r.html",
        ])
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", transcript(&out));
    let page = home.path().join("r.html");
    let mut browser = Browser::launch();
    let session = visit(&mut browser, &page, "research");
    assert_eq!(count(&mut browser, &session, "svg.squad g.node"), 3);
    assert_eq!(count(&mut browser, &session, "svg.squad path.edge"), 2);
    assert_eq!(count(&mut browser, &session, "svg.timeline g.row"), 3);
    assert_eq!(count(&mut browser, &session, "details.agent"), 3);
    // The stylesheet applied (the policy let it in by its hash).
    let background = browser.eval(&session, "getComputedStyle(document.body).backgroundColor");
    assert_eq!(background, "rgb(248, 249, 250)");
}

#[test]
#[ignore = "needs chromium"]
fn the_report_of_a_200_agent_run_in_chromium() {
    let home = tempfile::tempdir().unwrap();
    write(home.path(), "wide.yaml", &wide_workflow(200));
    let out = cmd(
        home.path(),
        &[
            "run",
            "wide.yaml",
            "--mock",
            "--out",
            "out",
            "--concurrency",
            "16",
        ],
    );
    assert!(out.status.success(), "{}", transcript(&out));
    let report = cmd(home.path(), &["report", "out/run.json", "-o", "wide.html"]);
    assert!(report.status.success(), "{}", transcript(&report));
    let page = home.path().join("wide.html");
    let size = std::fs::metadata(&page).unwrap().len();
    assert!(size <= 2 * 1024 * 1024, "{size} bytes");
    let mut browser = Browser::launch();
    let session = visit(&mut browser, &page, "wide");
    assert_eq!(count(&mut browser, &session, "svg.squad g.node"), 200);
    assert_eq!(count(&mut browser, &session, "svg.timeline g.row"), 200);
}

/// What a reply tries: each sets `window.xss` if it runs.
const ATTACK: &str = "<script>window.xss = 1</script>\n<img src=x onerror=\"window.xss = 2\">\n</textarea><script>window.xss = 3</script>\n<a href=\"javascript:window.xss = 4\">click me</a>\n</pre><svg onload=\"window.xss = 5\"></svg>\n</style><style>body{display:none}</style>\n<!-- -->]]>";

/// A dataset run of the 20 example tickets and one row that cannot run: the
/// failed row's page first, then the rest, each row a line of its table.
#[test]
#[ignore = "needs chromium"]
fn the_report_of_a_dataset_run_in_chromium() {
    let home = tempfile::tempdir().unwrap();
    let mut rows = std::fs::read_to_string(repo().join("examples/tickets.jsonl")).unwrap();
    rows.push_str("{\"customer\": \"no ticket\"}\n");
    std::fs::write(home.path().join("rows.jsonl"), rows).unwrap();
    let out = byok_flow(home.path())
        .arg("run")
        .arg(example("triage.yaml"))
        .args(["--each", "rows.jsonl", "--mock", "--report", "r.html"])
        .timeout(TIMEOUT)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", transcript(&out));
    let page = home.path().join("r.html");
    let mut browser = Browser::launch();
    let session = visit(&mut browser, &page, "dataset");
    assert_eq!(count(&mut browser, &session, "details.rows"), 2);
    assert_eq!(count(&mut browser, &session, "table.rows tbody tr"), 21);
    let first = browser.eval(
        &session,
        "document.querySelector('table.rows tbody tr td:nth-child(2)').textContent",
    );
    assert_eq!(first, "failed", "the failed row comes first");
    assert_eq!(count(&mut browser, &session, "#agents tbody tr"), 2);
}

#[test]
#[ignore = "needs chromium"]
fn replies_that_try_to_run_script_show_as_text_in_chromium() {
    let server = FakeServer::start();
    server.script("marker-xss", [Fault::Reply(ATTACK.into())]);
    let home = tempfile::tempdir().unwrap();
    write(
        home.path(),
        "flow.yaml",
        &format!(
            "version: 1\nname: xss\ninputs:\n  note: {{default: \"<script>window.xss = 6</script>\"}}\nproviders:\n  local: {{type: openai-compatible, base_url: \"{}/local/v1\", key: none, pricing: {{llama3.2: {{input: 1, output: 2}}}}}}\nagents:\n  attacker:\n    model: local/llama3.2\n    prompt: \"marker-xss {{{{inputs.note}}}}\"\n    max_tokens: 100\n",
            server.url()
        ),
    );
    let out = cmd(
        home.path(),
        &["run", "flow.yaml", "--no-cache", "--report", "r.html"],
    );
    assert!(out.status.success(), "{}", transcript(&out));
    let page = home.path().join("r.html");
    // Without the policy too: escaping alone must hold.
    let html = std::fs::read_to_string(&page).unwrap();
    let start = html
        .find("<meta http-equiv=\"Content-Security-Policy\"")
        .unwrap();
    let end = start + html[start..].find('>').unwrap() + 1;
    let bare = home.path().join("bare.html");
    std::fs::write(&bare, format!("{}{}", &html[..start], &html[end..])).unwrap();

    let mut browser = Browser::launch();
    for (page, name) in [(&page, "xss"), (&bare, "xss-without-policy")] {
        let session = visit(&mut browser, page, name);
        // Give anything that could run a moment, then look.
        std::thread::sleep(std::time::Duration::from_millis(300));
        // A link that would run script would run it when clicked: click them all.
        browser.eval(&session, "document.querySelectorAll('a').forEach(a => a.dispatchEvent(new MouseEvent('click', {bubbles: true, cancelable: true}))); 0");
        assert_eq!(
            browser.eval(&session, "typeof window.xss"),
            "undefined",
            "{name}"
        );
        assert_eq!(
            count(
                &mut browser,
                &session,
                "script, img, iframe, textarea, style:not(head style)"
            ),
            0,
            "{name}"
        );
        assert_eq!(
            count(&mut browser, &session, "a[href^='javascript']"),
            0,
            "{name}"
        );
        assert_eq!(
            count(&mut browser, &session, "svg[onload], [onerror]"),
            0,
            "{name}"
        );
        let shown = browser.eval(
            &session,
            "document.querySelector('details.agent pre.output').textContent",
        );
        assert_eq!(shown, ATTACK, "{name}: the reply shows as the text it is");
        let visible = browser.eval(&session, "getComputedStyle(document.body).display");
        assert_eq!(visible, "block", "{name}");
    }
}

/// The checks above can fail: a page that breaks each rule is caught.
#[test]
#[ignore = "needs chromium"]
fn the_browser_harness_sees_errors_scripts_and_requests() {
    let dir = tempfile::tempdir().unwrap();
    let page = write(
        dir.path(),
        "bad.html",
        "<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'\"></head><body><script>window.xss = 1</script><img src=\"http://127.0.0.1:9/pixel.png\"><p>bad</p></body></html>",
    );
    let mut browser = Browser::launch();
    let (session, visit) = browser.open(&page);
    let seen = log(&visit);
    assert!(
        visit
            .errors()
            .iter()
            .any(|(_, text)| text.contains("Content Security Policy")),
        "the blocked script is an error:\n{seen}"
    );
    assert_eq!(browser.eval(&session, "typeof window.xss"), "undefined");
    let unsafe_page = write(
        dir.path(),
        "unsafe.html",
        "<!DOCTYPE html><html><body><script>window.xss = 1; console.error('boom')</script><img src=\"http://127.0.0.1:9/pixel.png\"></body></html>",
    );
    let (session, visit) = browser.open(&unsafe_page);
    let seen = log(&visit);
    assert_eq!(
        browser.eval(&session, "window.xss"),
        1,
        "a script that runs is seen"
    );
    assert!(
        visit.errors().iter().any(|(_, text)| text.contains("boom")),
        "{seen}"
    );
    assert!(
        visit
            .requests
            .iter()
            .any(|url| url.starts_with("http://127.0.0.1:9/")),
        "a request is seen:\n{seen}"
    );
}
