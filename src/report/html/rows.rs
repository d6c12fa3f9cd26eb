//! The report of a dataset run (`run --each`, SPEC §8): the run's totals (rows
//! by how they ended, dollars against the budget, tokens), every agent's
//! aggregate over the rows, and a table of the rows read from the run's
//! `results.jsonl`: the failed rows first, then the rest in row order, in pages
//! of [`PAGE`] rows (each a `<details>`, so no script is needed), each row's
//! status, dollars, seconds, error and outputs (cut, with their full size shown).
//!
//! The results are streamed (read twice: the failed rows, then the rest), one
//! line at a time, and the rows shown stop at a byte budget, the count of the
//! rest said: a 10,000-row run's page stays under 2 MB, whatever its replies.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::page::{CSS, content_security_policy, status_text};
use super::text::{clip, first_chars, share};
use super::{dollars, seconds};
use crate::dataset::record::{DatasetRecord, RowResult, RowStatus};
use crate::record::RunStatus;

/// Rows a page of the table holds.
pub const PAGE: usize = 100;
/// Bytes the rows' HTML may take, all pages together.
const ROWS_BUDGET: usize = 1_500_000;
/// Bytes of escaped text (outputs and errors) the rows may carry, shared out
/// evenly, each text at least [`TEXT_FLOOR`] and at most [`TEXT_CEILING`].
const TEXT_BUDGET: usize = 900_000;
const TEXT_FLOOR: usize = 80;
const TEXT_CEILING: usize = 20_000;
/// An output this short (and on one line) is shown as it is; a longer one
/// collapsed, its first [`PREVIEW`] characters beside its name.
const SHORT: usize = 80;
const PREVIEW: usize = 60;
/// The longest line of `results.jsonl` read; a longer one is counted, not shown.
const MAX_LINE: u64 = 64 << 20;

/// Where the rows are: the run's `results.jsonl` (or the report's own copy), and
/// how to name it to the reader.
pub struct Results<'a> {
    pub file: &'a File,
    pub name: &'a str,
}

/// The report of a dataset run, as one HTML page; `results` has its rows, when
/// they can be read.
pub fn render(
    record: &DatasetRecord,
    results: Option<&Results<'_>>,
    missing: Option<&str>,
) -> String {
    let table = if let Some(results) = results {
        table(record, results)
    } else {
        html! {
            p.note {
                "The rows are not shown: "
                (missing.unwrap_or("this run's results.jsonl cannot be read"))
                ". A run with " code { "--out DIR" } " keeps every row in " code { "DIR/results.jsonl" } "."
            }
        }
    };
    let counts = &record.rows;
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(content_security_policy());
                meta name="referrer" content="no-referrer";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="generator" content={ "byok-flow " (env!("CARGO_PKG_VERSION")) };
                title { "byok-flow: " (record.workflow) " over " (counts.total) " rows " (status_text(record.status)) " · " (record.run_id) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { code { (record.workflow) } " over " (counts.total) " rows " (status_text(record.status)) }
                    p.facts {
                        "run " code { (record.run_id) } " · started " (record.started_at)
                        " · " (seconds(record.seconds)) " · rows from " code { (record.rows_file) }
                        @if let Some(shard) = &record.shard { " (shard " (shard) ")" }
                        " · " (run_dollars(record))
                        @if record.mock { " · every agent answered by the mock provider" }
                    }
                    (banner(record))
                    nav {
                        a href="#totals" { "Totals" } a href="#agents" { "Agents" }
                        a href="#rows" { "Rows" } a href="#facts" { "Facts" }
                    }
                }
                main {
                    section #totals { h2 { "Totals" } (totals(record)) }
                    section #agents { h2 { "Agents over the rows" } (agents(record)) }
                    section #rows { h2 { "Rows" } (table) }
                    section #facts { h2 { "Facts" } (facts(record)) }
                }
                footer {
                    "Made by byok-flow " (env!("CARGO_PKG_VERSION"))
                    ". This page loads nothing and runs no script; every reply is shown as text."
                }
            }
        }
    };
    page.into_string()
}

/// `$0.0123`, `≥ $0.0123` when a call was to an unpriced model, with `, up to
/// $0.05` when a bill is unknown.
fn run_dollars(record: &DatasetRecord) -> String {
    let prefix = if record.unpriced_agents.is_empty() {
        ""
    } else {
        "≥ "
    };
    let mut text = format!("{prefix}{}", dollars(Some(record.priced_cost_usd)));
    if let Some(most) = record.max_cost_usd {
        text.push_str(&format!(", up to {}", dollars(Some(most))));
    }
    text
}

fn banner(record: &DatasetRecord) -> Markup {
    let rows = &record.rows;
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    html! {
        @match record.status {
            RunStatus::Failed => div.banner.failed {
                strong { (rows.failed) " row" (plural(rows.failed)) " of " (rows.total) " failed." }
                " They come first under " a href="#rows" { "Rows" } ", each with its error."
            },
            RunStatus::Interrupted => div.banner.interrupted {
                strong { "The run was interrupted." }
                " The rows that ended are kept; " (rows.interrupted) " row" (plural(rows.interrupted)) " running then are marked interrupted."
            },
            RunStatus::BudgetReached => div.banner.budget {
                strong { "The run stopped at its budget" }
                @if let Some(b) = record.budget_usd { " of " (dollars(Some(b))) }
                ": " (rows.budget_reached) " row" (plural(rows.budget_reached)) " had agents given up so that spend stays under it."
            },
            RunStatus::Succeeded => {},
        }
    }
}

/// Rows by how they ended, dollars against the budget, tokens.
fn totals(record: &DatasetRecord) -> Markup {
    let rows = &record.rows;
    let not_run = record
        .rows_in_file
        .filter(|_| record.shard.is_none())
        .map_or(0, |n| n.saturating_sub(rows.total));
    let usage = &record.usage;
    html! {
        div.glance {
            div { "Rows" span.big { (rows.succeeded) " of " (rows.total) " succeeded" }
                (rows.failed) " failed, " (rows.budget_reached) " stopped at the budget, " (rows.interrupted) " interrupted"
                @if not_run > 0 { ", " (not_run) " of the file's " (record.rows_in_file.unwrap_or(0)) " not run" }
            }
            div { "Spent" span.big { (run_dollars(record)) }
                @if let Some(budget) = record.budget_usd {
                    "of a budget of " (dollars(Some(budget)))
                    @if budget > 0.0 { " (" (format!("{:.0}", record.priced_cost_usd / budget * 100.0)) "%)" }
                } @else { "no budget" }
                @if rows.total > 0 { br; (dollars(Some(record.priced_cost_usd / to_f64(rows.total)))) " a row on average" }
            }
            div { "Tokens" span.big { (usage.input) " in, " (usage.output) " out" }
                (usage.cache_read) " read from the prompt cache, " (usage.cache_write + usage.cache_write_1h) " written to it"
                @if usage.web_search > 0 { ", " (usage.web_search) " web searches" }
                @if let Some(line) = crate::report::prompt_cache_line(usage, record.cache_saved_usd, record.mock) { br; (line) }
            }
            div { "Took" span.big { (seconds(record.seconds)) }
                @if rows.total > 0 && record.seconds > 0.0 { (format!("{:.1}", to_f64(rows.total) / record.seconds)) " rows a second" }
            }
        }
        @if let Some(budget) = record.budget_usd.filter(|b| *b > 0.0) { (budget_bar(record.priced_cost_usd, budget)) }
        @if !record.unpriced_agents.is_empty() {
            p.warning { "Unpriced (their dollars are unknown, not $0): "
                @for (k, name) in record.unpriced_agents.iter().enumerate() { @if k > 0 { ", " } code { (name) } } }
        }
    }
}

/// The dollars spent as a bar against the budget's line.
fn budget_bar(spent: f64, budget: f64) -> Markup {
    const WIDTH: f64 = 600.0;
    let scale = WIDTH / spent.max(budget);
    let line = budget * scale;
    html! {
        svg.budget width=(WIDTH + 2.0) height="26" role="img" aria-label="dollars spent against the budget" {
            rect x="1" y="4" width=(format!("{:.1}", (spent * scale).max(1.0))) height="16" rx="2" fill="#1a73e8" {}
            line x1=(format!("{line:.1}")) x2=(format!("{line:.1}")) y1="0" y2="26" stroke="#d93025" stroke-width="2" {}
            title { (dollars(Some(spent))) " of a budget of " (dollars(Some(budget))) }
        }
    }
}

fn agents(record: &DatasetRecord) -> Markup {
    html! {
        div.scroll { table.numbers {
            thead { tr { th { "agent" } th { "model" } th { "provider" } th { "calls" } th { "succeeded" } th { "failed" } th { "cached" }
                th { "skipped" } th { "tokens in" } th { "tokens out" } th { "cache read" } th { "seconds" } th { "dollars" } } }
            tbody {
                @for a in &record.agents {
                    tr {
                        td { code { (a.name) } } td { (a.model) } td { (a.provider) } td { (a.calls) } td { (a.succeeded) }
                        td { (a.failed) } td { (a.cached) } td { (a.skipped) } td { (a.usage.input) } td { (a.usage.output) }
                        td { (a.usage.cache_read) } td { (seconds(a.seconds)) }
                        td { (dollars(a.cost_usd)) @if a.unknown_bills > 0 { " (" (a.unknown_bills) " unknown bills)" } }
                    }
                }
            }
        } }
        p.note { "Seconds are summed over the calls, which overlap." }
    }
}

fn facts(record: &DatasetRecord) -> Markup {
    html! {
        dl {
            dt { "workflow" } dd { code { (record.workflow) } }
            dt { "file" } dd { code { (record.file) } }
            dt { "rows file" } dd { code { (record.rows_file) } @if let Some(n) = record.rows_in_file { " (" (n) " rows)" } }
            dt { "run id" } dd { code { (record.run_id) } }
            dt { "started" } dd { (record.started_at) }
            dt { "took" } dd { (seconds(record.seconds)) }
            dt { "status" } dd { (status_text(record.status)) }
            dt { "spent" } dd { (run_dollars(record)) }
            @if let Some(b) = record.budget_usd { dt { "budget" } dd { (dollars(Some(b))) } }
            dt { "mock" } dd { @if record.mock { "yes: every agent answered by the mock provider, $0" } @else { "no" } }
            @for (name, value) in &record.inputs {
                dt { "input " code { (name) } } dd { (clip(value, 2_000).shown) @if clip(value, 2_000).cut { " … (" (value.chars().count()) " characters)" } }
            }
            dt { "byok-flow" } dd { (env!("CARGO_PKG_VERSION")) }
        }
    }
}

/// What reading the results found besides the rows.
#[derive(Default)]
struct Reading {
    /// Lines that are not a row's result (torn by a kill, or too long).
    unreadable: u64,
    /// Rows read and not shown (the byte budget), and of those the failed.
    hidden: u64,
    hidden_failed: u64,
    read_error: Option<String>,
}

/// The rows' pages: the failed rows first, then the rest in row order.
fn table(record: &DatasetRecord, results: &Results<'_>) -> Markup {
    // Each text (an output or an error) gets an even share of the text budget.
    let per_row = record.agents.len().clamp(1, 4);
    let rows = usize::try_from(record.rows.total).unwrap_or(usize::MAX);
    let text_budget = share(
        TEXT_BUDGET,
        rows.saturating_mul(per_row),
        TEXT_FLOOR,
        TEXT_CEILING,
    );
    let mut reading = Reading::default();
    let mut used = 0;
    let failed = pages(results, &mut reading, &mut used, text_budget, true);
    let rest = pages(results, &mut reading, &mut used, text_budget, false);
    html! {
        p.legend {
            "The failed rows first (" (record.rows.failed) "), then the rest in row order, " (PAGE) " rows a page. "
            "Outputs are cut to fit the page, their full size shown; " code { (results.name) } " has every row whole."
        }
        @if let Some(e) = &reading.read_error { p.warning { "Could not read every row: " (e) } }
        @if reading.unreadable > 0 {
            p.warning { (reading.unreadable) " line" @if reading.unreadable != 1 { "s" } " of " code { (results.name) } " are not a row's result (torn by a kill, or too long) and are left out." }
        }
        (PreEscaped(failed))
        (PreEscaped(rest))
        @if reading.hidden > 0 {
            p.warning #hidden {
                (reading.hidden) " more row" @if reading.hidden != 1 { "s" } " (" (reading.hidden_failed) " failed) are not shown, to keep this page small; "
                code { (results.name) } " has them."
            }
        }
    }
}

/// The pages of the failed rows (`failed`), or of the others, as HTML, adding
/// to `used` bytes; past the budget rows are counted in `reading`.
fn pages(
    results: &Results<'_>,
    reading: &mut Reading,
    used: &mut usize,
    text_budget: usize,
    failed: bool,
) -> String {
    let mut out = String::new();
    let mut page = String::new();
    let mut in_page = 0;
    let mut first = None;
    let mut last = 0;
    let mut pages = 0;
    let close = |out: &mut String,
                 page: &mut String,
                 pages: &mut usize,
                 first: u64,
                 last: u64,
                 n: usize| {
        let title = if failed { "Failed rows" } else { "Rows" };
        let markup = html! {
            details.rows open[*pages == 0] {
                summary { (title) " " (first) "–" (last) " (" (n) ")" }
                div.scroll { table.numbers.rows {
                    thead { tr { th { "row" } th { "status" } th { "error" } th { "dollars" } th { "seconds" } th { "outputs" } } }
                    tbody { (PreEscaped(page.as_str())) }
                } }
            }
        };
        out.push_str(&markup.into_string());
        page.clear();
        *pages += 1;
    };
    let read = each_row(results, |row| {
        if (row.status == RowStatus::Failed) != failed {
            return;
        }
        if *used >= ROWS_BUDGET {
            reading.hidden += 1;
            reading.hidden_failed += u64::from(failed);
            return;
        }
        let html = row_html(&row, text_budget).into_string();
        *used += html.len();
        page.push_str(&html);
        first.get_or_insert(row.row);
        last = row.row;
        in_page += 1;
        if in_page == PAGE {
            close(
                &mut out,
                &mut page,
                &mut pages,
                first.unwrap_or(0),
                last,
                in_page,
            );
            in_page = 0;
            first = None;
        }
    });
    if in_page > 0 {
        close(
            &mut out,
            &mut page,
            &mut pages,
            first.unwrap_or(0),
            last,
            in_page,
        );
    }
    match read {
        Ok(unreadable) => reading.unreadable = unreadable,
        Err(e) => {
            reading.read_error.get_or_insert(e.to_string());
        }
    }
    out
}

/// Calls `each` with every row of `results`, from its start; says how many lines
/// are not a row's result.
fn each_row(results: &Results<'_>, mut each: impl FnMut(RowResult)) -> std::io::Result<u64> {
    let mut file = results.file;
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let mut unreadable = 0;
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        if !line.ends_with(b"\n") && u64::try_from(n).unwrap_or(u64::MAX) >= MAX_LINE {
            // The rest of an over-long line.
            skip_line(&mut reader)?;
            unreadable += 1;
            continue;
        }
        match serde_json::from_slice::<RowResult>(&line) {
            Ok(row) => each(row),
            Err(_) => unreadable += 1,
        }
    }
    Ok(unreadable)
}

fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            reader.consume(i + 1);
            return Ok(());
        }
        let n = buf.len();
        reader.consume(n);
    }
}

/// One row of the table.
fn row_html(row: &RowResult, budget: usize) -> Markup {
    let (class, label) = match row.status {
        RowStatus::Succeeded => ("ok", "succeeded"),
        RowStatus::Failed => ("failed", "failed"),
        RowStatus::BudgetReached => ("budget", "budget reached"),
        RowStatus::Interrupted => ("cancelled", "interrupted"),
    };
    html! {
        tr {
            td { (row.row) }
            td { span class={ "pill " (class) } { (label) } }
            td {
                @if let Some(e) = &row.error {
                    "line " (e.line)
                    @if let Some(r) = e.record { ", record " (r) }
                    @if let Some(a) = &e.agent { ", agent " code { (a) } }
                    ": " (cut(&e.message, budget))
                    @if let Some(h) = &e.hint { br; span.note { (cut(h, budget)) } }
                }
            }
            td { (dollars(row.cost_usd)) }
            td { @if row.seconds > 0.0 { (seconds(row.seconds)) } @else { "—" } }
            td {
                @for (name, text) in &row.outputs {
                    @let clipped = clip(text, budget);
                    @if clipped.total_chars <= SHORT && !text.contains('\n') {
                        div.short { code { (name) } " " (text) }
                    } @else {
                        details {
                            summary {
                                code { (name) } " " span.preview { (first_chars(clipped.shown, PREVIEW)) }
                                " · " (clipped.total_chars) " characters" @if clipped.cut { ", cut" }
                            }
                            pre.output { (clipped.shown) }
                        }
                    }
                }
            }
        }
    }
}

/// `text`, or its start and `…` with its length.
fn cut(text: &str, budget: usize) -> String {
    let clipped = clip(text, budget);
    if clipped.cut {
        format!("{}… ({} characters)", clipped.shown, clipped.total_chars)
    } else {
        text.to_string()
    }
}

#[allow(clippy::cast_precision_loss)]
fn to_f64(n: u64) -> f64 {
    n as f64
}

/// Writes the report of `run --each FILE --report FILE` when the run ends: each
/// row's result is kept in an unnamed temporary file beside the report as it is
/// told, and read back from it for the table.
pub struct RowsReportFile {
    path: std::path::PathBuf,
    /// How the page names where every row is whole.
    name: String,
    spool: File,
}

impl RowsReportFile {
    pub fn new(path: std::path::PathBuf, name: String) -> std::io::Result<Self> {
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        let spool = tempfile::tempfile_in(folder)?;
        Ok(RowsReportFile { path, name, spool })
    }
}

impl crate::events::Subscriber for RowsReportFile {
    fn on_event(&mut self, event: &crate::events::Event<'_>) -> std::io::Result<()> {
        use std::io::Write as _;
        match event {
            crate::events::Event::RowFinished { result, .. } => {
                (&self.spool).write_all(result.line().as_bytes())
            }
            crate::events::Event::RowsFinished { record } => {
                let results = Results {
                    file: &self.spool,
                    name: &self.name,
                };
                let html = render(record, Some(&results), None);
                crate::report::output::write_atomic(&self.path, html.as_bytes())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::io::Write as _;

    use indexmap::IndexMap;

    use super::*;
    use crate::dataset::record::{AgentAggregate, RowCounts, RowError};
    use crate::usage::Usage;

    /// A failed dataset run of 3 rows over one agent.
    pub fn record() -> DatasetRecord {
        DatasetRecord {
            kind: "dataset".into(),
            run_id: "1700000000-abcdef".into(),
            workflow: "triage".into(),
            file: "workflows/triage.yaml".into(),
            rows_file: "tickets.jsonl".into(),
            rows_in_file: Some(3),
            shard: None,
            started_at: "2026-11-30T04:00:00Z".into(),
            seconds: 2.5,
            status: RunStatus::Failed,
            mock: false,
            inputs: IndexMap::new(),
            rows: RowCounts {
                total: 3,
                succeeded: 2,
                failed: 1,
                budget_reached: 0,
                interrupted: 0,
            },
            agents: vec![AgentAggregate {
                name: "classify".into(),
                provider: "anthropic".into(),
                model: "claude-sonnet-4-5".into(),
                calls: 3,
                succeeded: 2,
                failed: 1,
                cached: 0,
                skipped: 0,
                usage: Usage {
                    input: 300,
                    output: 90,
                    ..Usage::default()
                },
                cost_usd: Some(0.0123),
                unknown_bills: 0,
                seconds: 4.0,
                cache_saved_usd: None,
            }],
            usage: Usage {
                input: 300,
                output: 90,
                ..Usage::default()
            },
            cost_usd: Some(0.0123),
            priced_cost_usd: 0.0123,
            unpriced_agents: Vec::new(),
            max_cost_usd: None,
            budget_usd: Some(1.0),
            cache_saved_usd: None,
            failed_rows: Vec::new(),
            key_failure: false,
        }
    }

    fn row(n: u64, status: RowStatus, output: &str) -> RowResult {
        RowResult {
            row: n,
            status,
            outputs: [("label".to_string(), output.to_string())]
                .into_iter()
                .collect(),
            cost_usd: Some(0.004),
            seconds: 1.25,
            error: (status == RowStatus::Failed).then(|| RowError {
                line: n + 1,
                record: None,
                agent: Some("classify".into()),
                message: format!("the provider said no to row {n}"),
                hint: None,
            }),
        }
    }

    fn results(rows: impl IntoIterator<Item = RowResult>) -> File {
        let mut file = tempfile::tempfile().unwrap();
        for r in rows {
            file.write_all(r.line().as_bytes()).unwrap();
        }
        file
    }

    fn page(record: &DatasetRecord, file: &File) -> String {
        let results = Results {
            file,
            name: "out/results.jsonl",
        };
        render(record, Some(&results), None)
    }

    #[test]
    fn failed_rows_come_first_then_the_rest_in_row_order() {
        let file = results([
            row(0, RowStatus::Succeeded, "reply zero"),
            row(1, RowStatus::Succeeded, "reply one"),
            row(2, RowStatus::Failed, ""),
        ]);
        let html = page(&record(), &file);
        let failed = html.find("the provider said no to row 2").unwrap();
        let zero = html.find("reply zero").unwrap();
        let one = html.find("reply one").unwrap();
        assert!(failed < zero && zero < one, "{html}");
        assert!(html.contains("Failed rows 2–2 (1)"), "{html}");
        assert!(html.contains("Rows 0–1 (2)"), "{html}");
        assert!(html.contains("1 row of 3 failed."), "{html}");
        assert!(html.contains("of a budget of $1.00 (1%)"), "{html}");
        assert!(html.contains("<td>$0.004</td><td>1.2 s</td>"), "{html}");
        assert!(!html.contains("not shown"), "{html}");
    }

    #[test]
    fn a_row_output_is_text_and_runs_nothing() {
        let evil = "<script>alert(1)</script><img src=x onerror=alert(2)></textarea><a href=\"javascript:alert(3)\">x</a>";
        let file = results([
            row(0, RowStatus::Succeeded, evil),
            row(1, RowStatus::Failed, evil),
        ]);
        let mut record = record();
        record.workflow = evil.into();
        record.inputs.insert("topic".into(), evil.into());
        let html = page(&record, &file);
        for bad in ["<script", "<img", "</textarea", "<a href=\"javascript"] {
            assert!(!html.contains(bad), "{bad} in the page");
        }
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("Content-Security-Policy"));
    }

    #[test]
    fn ten_thousand_rows_with_long_replies_stay_under_two_megabytes() {
        let long = "a reply <with> \"quotes\" & more ".repeat(400);
        let file = results((0..10_000).map(|n| {
            let status = if n % 10 == 3 {
                RowStatus::Failed
            } else {
                RowStatus::Succeeded
            };
            row(n, status, &long)
        }));
        let mut record = record();
        record.rows = RowCounts {
            total: 10_000,
            succeeded: 9_000,
            failed: 1_000,
            budget_reached: 0,
            interrupted: 0,
        };
        let html = page(&record, &file);
        assert!(html.len() <= 2_000_000, "{} bytes", html.len());
        // Every failed row is shown, then the first of the rest, and the count of
        // the others.
        assert!(html.contains("the provider said no to row 9993"));
        assert!(html.contains("Rows 0–"));
        let shown = html.matches("<td><span class=\"pill ").count();
        let hidden: usize = html
            .split("id=\"hidden\">")
            .nth(1)
            .and_then(|t| t.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        assert_eq!(shown + hidden, 10_000, "{shown} shown, {hidden} hidden");
        assert!(shown >= 2_000, "only {shown} rows shown");
        assert!(html.contains(" characters, cut</summary>"));
    }

    #[test]
    fn torn_lines_are_counted_and_no_results_is_said() {
        let mut file = results([row(0, RowStatus::Succeeded, "fine")]);
        file.write_all(b"{\"row\": 1, \"stat").unwrap();
        let html = page(&record(), &file);
        assert!(html.contains("fine"));
        assert!(
            html.contains("1 line of <code>out/results.jsonl</code> are not a row"),
            "{html}"
        );
        let html = render(&record(), None, Some("cannot read out/results.jsonl: gone"));
        assert!(html.contains("The rows are not shown: cannot read out/results.jsonl: gone"));
    }
}
