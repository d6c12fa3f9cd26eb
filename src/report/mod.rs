//! Everything a run shows or writes, each a [`crate::events::Subscriber`]:
//! progress on stderr (a live view on a terminal, plain lines elsewhere), the
//! closing table, the results on stdout (`--json` for the run record), and `--out DIR`;
//! in GitHub Actions, annotations, log groups, the step summary and outputs (`github`),
//! and the tables of `byok-flow runs`.

pub mod estimate_table;
pub mod github;
pub mod output;
pub mod progress;
pub mod rows;
pub mod runs;
pub mod table;

/// Dollars as shown in tables: `$0.0123`, or `unpriced`.
pub fn usd(cost: Option<f64>) -> String {
    cost.map_or_else(|| "unpriced".to_string(), |c| format!("${c:.4}"))
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
