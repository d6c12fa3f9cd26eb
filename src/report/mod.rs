//! Everything a run shows or writes, each a [`crate::events::Subscriber`]:
//! progress on stderr (a live view on a terminal, plain lines elsewhere), the
//! closing table, the results on stdout (`--json` for the run record), and `--out DIR`.

pub mod output;
pub mod progress;
pub mod table;

/// Dollars as shown in tables: `$0.0123`, or `unpriced`.
pub fn usd(cost: Option<f64>) -> String {
    cost.map_or_else(|| "unpriced".to_string(), |c| format!("${c:.4}"))
}
