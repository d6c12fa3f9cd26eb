//! `estimate --diff`: the cost change of a workflow as a table, or as Markdown for
//! a pull-request comment (with a first line that marks the comment as this
//! file's, so a workflow can find and update it).

use super::{Align, grid};
use crate::cost::Usd;
use crate::cost::diff::{Change, Delta, Diff, Side};

/// `$0.0123`, or `unpriced`, `no bound`, `-` for nothing on that side.
fn amount(side: Option<&Side>, pick: fn(&Side) -> Option<Usd>, missing: &str) -> String {
    match side {
        None => "-".into(),
        Some(s) => pick(s).map_or_else(|| missing.to_string(), |u| u.to_string()),
    }
}

fn expected(side: &Side) -> Option<Usd> {
    side.expected_usd
}

fn max(side: &Side) -> Option<Usd> {
    side.max_usd
}

/// `+$0.0100 (+20.0%)`, `-$0.0010 (-3.2%)`, `+$0.0500 (new)`.
pub fn delta(d: Delta) -> String {
    let sign = if d.usd < 0.0 { "-" } else { "+" };
    let percent = d.percent.map_or_else(
        || "new".to_string(),
        |p| format!("{}{p:.1}%", if p < 0.0 { "" } else { "+" }),
    );
    format!("{sign}${:.4} ({percent})", d.usd.abs())
}

/// The comparison as a plain-text table, with the totals and their change.
pub fn text(diff: &Diff) -> String {
    let mut out = format!(
        "{}: `{}` compared with the working tree\n\n",
        diff.file, diff.base
    );
    let header = [
        "agent",
        "change",
        "model before",
        "model after",
        "expected before",
        "expected after",
        "max before",
        "max after",
    ];
    let mut align = vec![Align::Left; 4];
    align.extend([Align::Right; 4]);
    let rows: Vec<Vec<String>> = diff
        .agents
        .iter()
        .map(|a| {
            let (b, n) = (a.before.as_ref(), a.after.as_ref());
            vec![
                a.name.clone(),
                a.change.as_str().to_string(),
                b.map_or_else(|| "-".into(), |s| s.model.clone()),
                n.map_or_else(|| "-".into(), |s| s.model.clone()),
                amount(b, expected, "unpriced"),
                amount(n, expected, "unpriced"),
                amount(b, max, "no bound"),
                amount(n, max, "no bound"),
            ]
        })
        .collect();
    let total = |pick: fn(&crate::cost::diff::Totals) -> Usd,
                 side: &Option<crate::cost::diff::Totals>| {
        side.as_ref()
            .map_or_else(|| "-".into(), |t| pick(t).to_string())
    };
    let footer = vec![
        "total".into(),
        String::new(),
        String::new(),
        String::new(),
        total(|t| t.expected_usd, &diff.before),
        total(|t| t.expected_usd, &diff.after),
        total(|t| t.max_usd, &diff.before),
        total(|t| t.max_usd, &diff.after),
    ];
    out.push_str(&grid(&header, &align, &rows, Some(&footer)));
    out.push_str(&format!(
        "\nchange: expected {}, at most {}\n",
        delta(diff.expected),
        delta(diff.max)
    ));
    for line in notes(diff) {
        out.push_str(&format!("note: {line}\n"));
    }
    out
}

/// The comparison as Markdown for a pull-request comment.
pub fn markdown(diff: &Diff) -> String {
    let file = safe(&diff.file);
    let mut out = format!("{}\n### Cost of `{file}`\n\n", marker(&diff.file));
    let totals = |pick: fn(&crate::cost::diff::Totals) -> Usd| {
        let side = |t: &Option<crate::cost::diff::Totals>| {
            t.as_ref()
                .map_or_else(|| "—".into(), |t| pick(t).to_string())
        };
        format!("{} → {}", side(&diff.before), side(&diff.after))
    };
    if diff.is_unchanged() {
        out.push_str(&format!(
            "No change to the estimated cost: {} expected per run, {} at most. Compared with `{}`.\n",
            diff.after.as_ref().map_or(Usd::ZERO, |t| t.expected_usd),
            diff.after.as_ref().map_or(Usd::ZERO, |t| t.max_usd),
            safe(&diff.base)
        ));
    } else {
        out.push_str(&format!(
            "Expected per run: **{}**, {}. At most: {}, {}. Compared with `{}`.\n\n",
            totals(|t| t.expected_usd),
            delta(diff.expected),
            totals(|t| t.max_usd),
            delta(diff.max),
            safe(&diff.base)
        ));
        out.push_str(
            "| agent | change | model | expected | at most |\n| --- | --- | --- | ---: | ---: |\n",
        );
        for a in diff.agents.iter().filter(|a| a.change != Change::Unchanged) {
            let (b, n) = (a.before.as_ref(), a.after.as_ref());
            let model = match (b, n) {
                (Some(b), Some(n)) if b.model != n.model => {
                    format!("`{}` → `{}`", safe(&b.model), safe(&n.model))
                }
                (_, Some(s)) | (Some(s), None) => format!("`{}`", safe(&s.model)),
                (None, None) => String::new(),
            };
            let pair = |pick: fn(&Side) -> Option<Usd>, missing: &str| {
                let side = |s: Option<&Side>| match s {
                    None => "—".to_string(),
                    Some(s) => pick(s).map_or_else(|| missing.to_string(), |u| u.to_string()),
                };
                format!("{} → {}", side(b), side(n))
            };
            out.push_str(&format!(
                "| `{}` | {} | {model} | {} | {} |\n",
                safe(&a.name),
                a.change.as_str(),
                pair(expected, "unpriced"),
                pair(max, "no bound"),
            ));
        }
        let unchanged = diff
            .agents
            .iter()
            .filter(|a| a.change == Change::Unchanged)
            .count();
        if unchanged > 0 {
            out.push_str(&format!(
                "\n{unchanged} other agent{} unchanged.\n",
                if unchanged == 1 { "" } else { "s" }
            ));
        }
    }
    let notes = notes(diff);
    out.push_str(&format!(
        "\n<sub>`byok-flow estimate --diff`: offline, no keys; prompts counted as rendered, replies at `expected_output_tokens` (at most: `max_tokens`). {}</sub>\n",
        notes
            .iter()
            .map(|n| n.replace(['<', '>', '\r', '\n'], " "))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    out
}

/// The comment's first line: which file it is about.
pub fn marker(file: &str) -> String {
    format!("<!-- byok-flow cost-diff: {} -->", safe(file))
}

/// What the reader should know besides the numbers.
fn notes(diff: &Diff) -> Vec<String> {
    let mut notes = vec![format!("Prices: {}.", diff.prices)];
    for (side, totals) in [("before", &diff.before), ("after", &diff.after)] {
        if let Some(t) = totals {
            if !t.unpriced.is_empty() {
                notes.push(format!(
                    "Unpriced {side} (left out of the totals): {}.",
                    t.unpriced.join(", ")
                ));
            }
            if !t.unbounded.is_empty() {
                notes.push(format!(
                    "No bound {side} (left out of \"at most\"): {}.",
                    t.unbounded.join(", ")
                ));
            }
        }
    }
    if diff.before.is_none() {
        notes.push("The file is new: it did not exist at the base.".into());
    }
    if diff.after.is_none() {
        notes.push("The file is removed.".into());
    }
    if !diff.empty_inputs.is_empty() {
        notes.push(format!(
            "Estimated with these required inputs empty (pass `--input NAME=VALUE` to count them): {}.",
            diff.empty_inputs.join(", ")
        ));
    }
    notes
}

/// Text safe inside Markdown code, a table cell and an HTML comment: no
/// backticks, bars, line breaks, angle brackets or `--`; a file name in a pull
/// request is chosen by its author.
fn safe(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| match c {
            '`' | '|' | '<' | '>' | '\r' | '\n' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-_");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hostile_file_name_cannot_break_out() {
        assert_eq!(
            marker("x --><img src=y>`|.yaml"),
            "<!-- byok-flow cost-diff: x -___img src=y___.yaml -->"
        );
    }

    #[test]
    fn deltas_read_with_their_sign() {
        let d = Delta {
            usd: -0.001,
            percent: Some(-3.25),
        };
        assert_eq!(delta(d), "-$0.0010 (-3.2%)");
        let d = Delta {
            usd: 0.05,
            percent: None,
        };
        assert_eq!(delta(d), "+$0.0500 (new)");
    }
}
