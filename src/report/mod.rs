//! Everything a run shows or writes, each a [`crate::events::Subscriber`]:
//! progress on stderr (a live view on a terminal, plain lines elsewhere), the
//! closing table, the results on stdout (`--json` for the run record), and `--out DIR`;
//! in GitHub Actions, annotations, log groups, the step summary and outputs (`github`),
//! and the tables of `byok-flow runs`.

pub mod diff_table;
pub mod estimate_table;
pub mod github;
pub mod html;
pub mod output;
pub mod progress;
pub mod rows;
pub mod runs;
pub mod table;

use crate::record::{AgentRecord, RunRecord};
use crate::tools::Citation;
use crate::usage::Usage;

/// Dollars as shown in tables: `$0.0123`, or `unpriced`.
pub fn usd(cost: Option<f64>) -> String {
    cost.map_or_else(|| "unpriced".to_string(), |c| format!("${c:.4}"))
}

/// The mark of a count or an amount that byok-flow counted itself, because the
/// provider did not report it: `~`.
pub fn approx(counted_locally: bool) -> &'static str {
    if counted_locally { "~" } else { "" }
}

/// An agent's dollars: `$0.0123`, `~$0.0123` when its tokens were counted
/// locally, `unpriced` when its model has no price.
pub fn agent_usd(agent: &AgentRecord) -> String {
    match agent.cost_usd {
        Some(_) => format!("{}{}", approx(agent.counted_locally), usd(agent.cost_usd)),
        None => usd(None),
    }
}

/// An agent's tokens in and out: `41`, or `~41` when counted locally.
pub fn agent_tokens(agent: &AgentRecord) -> (String, String) {
    let mark = approx(agent.counted_locally);
    (
        format!("{mark}{}", agent.usage.input),
        format!("{mark}{}", agent.usage.output),
    )
}

/// The run's dollars: `$0.0123`; `~$0.0123` when some tokens were counted locally;
/// `>= $0.0123` (what the priced agents cost) when an agent is unpriced.
pub fn run_usd(record: &RunRecord) -> String {
    match record.cost_usd {
        Some(cost) => format!("{}{}", approx(record.counted_locally()), usd(Some(cost))),
        None => format!(">= {}", usd(Some(record.priced_usd()))),
    }
}

/// The most characters of a source's quote that a listing shows.
const QUOTE_CHARS: usize = 300;

/// A quote cut to [`QUOTE_CHARS`], on one line.
fn short_quote(quoted: &str) -> String {
    let one_line: String = quoted.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > QUOTE_CHARS {
        let cut: String = one_line.chars().take(QUOTE_CHARS).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

/// An agent's sources as plain text, one numbered entry each: title, address, and
/// the passage it quotes. Server text, for a code block or a terminal.
pub fn sources_text(citations: &[Citation]) -> String {
    let mut out = String::new();
    for (i, c) in citations.iter().enumerate() {
        let title = if c.title.is_empty() {
            "(untitled)"
        } else {
            &c.title
        };
        out.push_str(&format!(
            "[{}] {}\n    {}\n",
            i + 1,
            one_line(title),
            one_line(&c.url)
        ));
        if !c.quoted.is_empty() {
            out.push_str(&format!("    \"{}\"\n", short_quote(&c.quoted)));
        }
    }
    out
}

/// An agent's sources as Markdown, for `--out DIR/AGENT.md`: a numbered list with
/// every Markdown character of the server's text escaped, so a title or quote can
/// never become a link or an image (whose address could carry data out).
pub fn sources_markdown(citations: &[Citation]) -> String {
    let mut out = String::from("## Sources\n\n");
    for (i, c) in citations.iter().enumerate() {
        let title = if c.title.is_empty() {
            "(untitled)"
        } else {
            &c.title
        };
        out.push_str(&format!(
            "{}. {}  \n   {}\n",
            i + 1,
            markdown_text(title),
            markdown_text(&c.url)
        ));
        if !c.quoted.is_empty() {
            out.push_str(&format!(
                "   > {}\n",
                markdown_text(&short_quote(&c.quoted))
            ));
        }
    }
    out
}

/// Text with Markdown's special characters escaped, on one line.
fn markdown_text(text: &str) -> String {
    let mut out = String::new();
    for c in one_line(text).chars() {
        if "\\`*_{}[]()<>#!|~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether a provider's prompt cache was read or written in the run.
pub fn cache_used(record: &RunRecord) -> bool {
    prompt_cache_used(&record.usage)
}

/// Whether `usage` has cache-read or cache-write tokens.
pub fn prompt_cache_used(usage: &Usage) -> bool {
    usage.cache_read > 0 || usage.cache_writes() > 0
}

/// The line that says what prompt caching did: tokens read and written, and the
/// dollars saved against the same tokens uncached.
pub fn cache_line(record: &RunRecord) -> Option<String> {
    prompt_cache_line(&record.usage, record.cache_saved_usd, record.mock)
}

/// [`cache_line`] of a run (or of many rows' runs) that used `usage` and saved
/// `saved` dollars (`None`: unknown); under `--mock` (free calls), what caching
/// would save at the models' prices.
pub fn prompt_cache_line(usage: &Usage, saved: Option<f64>, mock: bool) -> Option<String> {
    if !prompt_cache_used(usage) {
        return None;
    }
    let tokens = format!(
        "Prompt cache: {} tokens read, {} written",
        usage.cache_read,
        usage.cache_writes()
    );
    // Under `--mock` the dollars are what the same tokens would cost at the models' prices.
    let (would, verb, free_note, free_clause) = if mock {
        (
            "at the models' prices it would ",
            "save",
            " (a `--mock` run costs nothing)",
            "; a `--mock` run costs nothing",
        )
    } else {
        ("", "saved", "", "")
    };
    Some(match saved {
        Some(saved) if saved >= 0.0 => format!(
            "{tokens}; {would}{verb} {} against no caching{free_note}.",
            usd(Some(saved))
        ),
        Some(saved) => format!(
            "{tokens}; {would}cost {} more than no caching (writes not read back in this run; a run within the cache's lifetime reads them{free_clause}).",
            usd(Some(-saved))
        ),
        None => format!("{tokens}."),
    })
}

/// What the notes under a cost table say: prompt caching, tokens counted locally,
/// bills that are unknown, models without a price. One line each, in the order of
/// the agents.
pub fn cost_notes(record: &RunRecord) -> Vec<String> {
    let mut notes: Vec<String> = cache_line(record).into_iter().collect();
    if record.counted_locally() {
        notes.push(
            "~ counted by byok-flow: the provider did not report these tokens (or the reply was cut off), so they and their cost are approximate.".to_string(),
        );
    }
    for a in record.agents.iter().filter(|a| a.bill_unknown) {
        let most = a.max_cost_usd.map_or_else(
            || "how much is unknown".to_string(),
            |m| format!("up to {} in all, which the budget counts", usd(Some(m))),
        );
        notes.push(format!(
            "`{}`: a call was cut off after it was sent, so its bill is unknown: the provider may have billed all of it ({most}).",
            a.name
        ));
    }
    for a in record.agents.iter().filter(|a| a.cost_usd.is_none()) {
        let model = a
            .answered_by
            .clone()
            .unwrap_or_else(|| format!("{}/{}", a.provider, a.model));
        notes.push(format!(
            "`{}`: a model it called has no price, so its cost is unknown (`{model}`; add prices under the provider's `pricing:` or pass `--prices FILE`).",
            a.name
        ));
    }
    notes
}

/// The budget line: `budget $0.5000: $0.1200 spent`, and, when a bill is unknown,
/// the most that may be.
pub fn budget_line(record: &RunRecord, budget: f64) -> String {
    let mut line = format!("budget {}: {} spent", usd(Some(budget)), run_usd(record));
    if let Some(most) = record.max_cost_usd {
        line.push_str(&format!(
            ", up to {} with the calls whose bill is unknown",
            usd(Some(most))
        ));
    }
    line
}

/// Dollars per million tokens as people quote them: `$3.00`, `$0.30`, `$0.0028`.
pub fn per_million(usd: f64) -> String {
    let exact = format!("{usd:.6}");
    let trimmed = exact.trim_end_matches('0');
    let decimals = trimmed.split_once('.').map_or(0, |(_, d)| d.len());
    if decimals <= 2 {
        format!("${usd:.2}")
    } else {
        format!("${trimmed}")
    }
}

/// How a column is aligned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A plain-text table: a header, a rule, the rows, and, if given, a rule and a
/// footer row. Columns are two spaces apart; trailing spaces are trimmed.
pub fn grid(
    header: &[&str],
    align: &[Align],
    rows: &[Vec<String>],
    footer: Option<&[String]>,
) -> String {
    // Cells quote workflows, prices files and servers: control characters are shown escaped.
    let escape = |row: &[String]| -> Vec<String> {
        row.iter()
            .map(|cell| crate::printable::escape_line(cell).into_owned())
            .collect()
    };
    let rows: Vec<Vec<String>> = rows.iter().map(|row| escape(row)).collect();
    let footer = footer.map(escape);
    let footer = footer.as_deref();
    let rows = &rows;
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows.iter().map(Vec::as_slice).chain(footer) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
            if align.get(i) == Some(&Align::Right) {
                out.push_str(&pad);
                out.push_str(cell);
            } else {
                out.push_str(cell);
                out.push_str(&pad);
            }
            if i + 1 < cells.len() {
                out.push_str("  ");
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let mut out = line(&header.iter().map(|h| (*h).to_string()).collect::<Vec<_>>());
    out.push_str(&line(&rule));
    for row in rows {
        out.push_str(&line(row));
    }
    if let Some(footer) = footer {
        out.push_str(&line(&rule));
        out.push_str(&line(footer));
    }
    out
}
