//! The HTML report of a dataset run (SPEC §8, §10), the real binary against the
//! fake provider server: `run --each --report`, and `report RUN_ID` and `report
//! DIR/run.json` of a dataset run: the totals, the agents over the rows, and the
//! rows from `results.jsonl`, the failed first; escaped text; small.

use std::path::Path;

use crate::rows::{command, run_rows, setup};
use crate::support::byok_flow_process;
use crate::support::fake::{FakeServer, Fault};

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// Row 3's first agent gets a 400 from the server: the row fails with the
/// provider's message, the others succeed, and the page shows it first.
#[test]
fn run_each_report_shows_the_failed_row_first_with_its_error() {
    let server = FakeServer::start();
    let dir = setup(&server, 6);
    server.script("marker-a row 3 ", [Fault::status(400)]);
    let out = run_rows(
        dir.path(),
        &server,
        &["--report", "pages/report.html", "--out", "out"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let page = read(&dir.path().join("pages/report.html"));
    assert!(page.contains("Content-Security-Policy"));
    assert!(page.contains("1 row of 6 failed."), "{page}");
    assert!(page.contains("Failed rows 3–3 (1)"), "{page}");
    assert!(page.contains("Rows 0–5 (5)"), "{page}");
    assert!(page.contains("agent <code>a</code>"), "{page}");
    assert!(page.contains("400"), "the provider's status is shown");
    let failed = page.find("Failed rows 3–3").unwrap();
    let rest = page.find("Rows 0–5").unwrap();
    assert!(failed < rest);
    // Every row's reply, as text, and each agent's aggregate.
    assert!(page.contains("marker-b row 5 from"), "{page}");
    assert!(
        page.contains("<td><code>b</code></td><td>gpt-4o</td>"),
        "{page}"
    );
    assert!(
        page.contains("<code>out/results.jsonl</code> has every row whole"),
        "{page}"
    );
    // No temporary file left beside the report.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("pages"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["report.html"]);

    // The same page from the run's record and its id in the history.
    let from_file = byok_flow_process(dir.path())
        .args(["report", "out/run.json", "-o", "again.html"])
        .output()
        .unwrap();
    assert_eq!(from_file.status.code(), Some(0), "{}", stderr(&from_file));
    let again = read(&dir.path().join("again.html"));
    assert!(again.contains("Failed rows 3–3 (1)"), "{again}");
    assert!(again.contains("marker-b row 5 from"), "{again}");
    let record: serde_json::Value =
        serde_json::from_str(&read(&dir.path().join("out/run.json"))).unwrap();
    let id = record["run_id"].as_str().unwrap();
    let from_history = byok_flow_process(dir.path())
        .args(["report", id, "-o", "history.html"])
        .env("BYOK_FLOW_HISTORY", dir.path().join("history.sqlite"))
        .output()
        .unwrap();
    assert_eq!(
        from_history.status.code(),
        Some(0),
        "{}",
        stderr(&from_history)
    );
    assert!(
        !stderr(&from_history).contains("note:"),
        "{}",
        stderr(&from_history)
    );
    let history = read(&dir.path().join("history.html"));
    assert!(history.contains("Failed rows 3–3 (1)"), "{history}");
    assert!(history.contains(id));
}

/// A reply with markup in it is escaped text in the rows table.
#[test]
fn a_rows_reply_with_markup_is_shown_as_text() {
    let server = FakeServer::start();
    let dir = setup(&server, 2);
    let evil = "<script>alert(1)</script><img src=x onerror=alert(2)></textarea><a href=\"javascript:alert(3)\">x</a>";
    server.script("marker-b row 1 ", [Fault::Reply(evil.to_string())]);
    let out = run_rows(dir.path(), &server, &["--report", "report.html"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = read(&dir.path().join("report.html"));
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;"),
        "{page}"
    );
    for bad in ["<script", "<img", "</textarea", "<a href=\"javascript"] {
        assert!(!page.contains(bad), "{bad} in the page");
    }
    // Without `--out`, the page says where the rows are whole.
    assert!(page.contains("`--out DIR` keeps the rows"), "{page}");
}

/// 10,000 mock rows with long inputs echoed in the replies: the page stays
/// under 2 MB, the failed rows all shown and the rest counted.
#[test]
fn a_ten_thousand_row_report_stays_under_two_megabytes() {
    let server = FakeServer::start();
    let dir = setup(&server, 0);
    let long = "a long topic <b>&amp; more</b> ".repeat(40);
    let mut rows = String::new();
    for n in 0..10_000 {
        if n % 500 == 7 {
            rows.push_str("{\"n\": 1}\n");
        } else {
            rows.push_str(&format!("{{\"n\": {n}, \"topic\": \"{long}\"}}\n"));
        }
    }
    std::fs::write(dir.path().join("rows.jsonl"), rows).unwrap();
    let out = command(
        dir.path(),
        &server,
        &[
            "run",
            "flow.yaml",
            "--each",
            "rows.jsonl",
            "--mock",
            "--report",
            "report.html",
            "-q",
        ],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let page = read(&dir.path().join("report.html"));
    assert!(page.len() <= 2 * 1024 * 1024, "{} bytes", page.len());
    assert!(
        page.contains("20 rows of 10000 failed."),
        "{}",
        &page[..2000]
    );
    assert!(page.contains("Failed rows 7–9507 (20)"));
    let shown = page.matches("<td><span class=\"pill ").count();
    let hidden: usize = page
        .split("id=\"hidden\">")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert_eq!(shown + hidden, 10_000);
    assert!(shown >= 1_000, "{shown} rows shown");
}

/// A FIFO for `run.json` or for the `results.jsonl` beside it neither blocks nor
/// hangs the report: the first is refused, the second leaves the rows out.
#[cfg(unix)]
#[test]
fn a_fifo_for_the_record_or_the_results_does_not_block() {
    let server = FakeServer::start();
    let dir = setup(&server, 2);
    let out = run_rows(dir.path(), &server, &["--mock", "--out", "out"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fifo = |path: &Path| {
        std::fs::remove_file(path).ok();
        let made = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(made.success());
    };
    let report = |args: &[&str]| {
        crate::support::byok_flow(dir.path())
            .arg("report")
            .args(args)
            .timeout(std::time::Duration::from_secs(20))
            .output()
            .unwrap()
    };
    fifo(&dir.path().join("out/results.jsonl"));
    let out = report(&["out/run.json", "-o", "page.html"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = read(&dir.path().join("page.html"));
    assert!(
        page.contains("The rows are not shown: cannot read"),
        "{page}"
    );
    assert!(page.contains("not a regular file"), "{page}");
    fifo(&dir.path().join("fifo.json"));
    let out = report(&["fifo.json"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a regular file"),
        "{}",
        stderr(&out)
    );
}
