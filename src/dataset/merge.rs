//! `byok-flow merge DIR... --out DIR` (SPEC §8): the shards of a dataset run, each
//! written with `--shard K/N --out DIR`, joined into one: `results.jsonl` in row
//! order, line for line as each shard wrote it (so the merge of every shard equals
//! the unsharded run's results byte for byte), and one `run.json` with the counts,
//! tokens and dollars of all of them.
//!
//! Every row must be there exactly once: a missing shard, a shard given twice, a
//! row in the wrong shard, a row missing or doubled, and shards of different runs
//! are errors that name the folder. The shards' results are read side by side, one
//! line of each at a time, so merging a million rows holds a line per shard.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::record::{DatasetRecord, FAILED_ROWS_KEPT, RowCounts, RowResult, RowStatus};
use super::shard::Shard;
use crate::cost::Usd;
use crate::keys::atomic::Staged;
use crate::record::new_run_id;

/// Why shards cannot be merged: what is wrong, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeError {
    pub message: String,
    pub hint: String,
}

fn error(message: impl Into<String>, hint: impl Into<String>) -> MergeError {
    MergeError {
        message: message.into(),
        hint: hint.into(),
    }
}

/// One shard's folder.
struct Part {
    dir: PathBuf,
    record: DatasetRecord,
    shard: Shard,
    lines: io::Lines<BufReader<File>>,
    /// The line read ahead, and its row.
    next: Option<(u64, String)>,
    /// Lines read so far (for messages).
    read: u64,
}

/// Just the row of a result line.
#[derive(Deserialize)]
struct RowOf {
    row: u64,
}

impl Part {
    fn open(dir: &Path) -> Result<Part, MergeError> {
        let shown = dir.display();
        let run = dir.join("run.json");
        let text = std::fs::read_to_string(&run).map_err(|e| {
            error(
                format!("{shown}: cannot read run.json: {e}"),
                "give the folders that `run --each … --shard K/N --out DIR` wrote",
            )
        })?;
        let record: DatasetRecord = serde_json::from_str(&text).map_err(|e| {
            error(
                format!("{shown}/run.json is not the record of a dataset run: {e}"),
                "give the folders that `run --each … --shard K/N --out DIR` wrote",
            )
        })?;
        let shard = record.shard.unwrap_or(Shard { k: 1, n: 1 });
        let file = File::open(dir.join("results.jsonl")).map_err(|e| {
            error(
                format!("{shown}: cannot read results.jsonl: {e}"),
                "the shard's run did not write its results; run it again",
            )
        })?;
        let mut part = Part {
            dir: dir.to_path_buf(),
            record,
            shard,
            lines: BufReader::new(file).lines(),
            next: None,
            read: 0,
        };
        part.advance()?;
        Ok(part)
    }

    /// Reads the next line ahead.
    fn advance(&mut self) -> Result<(), MergeError> {
        self.next = None;
        let Some(line) = self.lines.next() else {
            return Ok(());
        };
        self.read += 1;
        let shown = self.dir.display();
        let line =
            line.map_err(|e| error(format!("{shown}/results.jsonl: {e}"), "check the file"))?;
        let row = serde_json::from_str::<RowOf>(&line).map_err(|e| {
            error(
                format!(
                    "{shown}/results.jsonl line {}: not a row's result: {e}",
                    self.read
                ),
                "the file was cut short or edited; run the shard again",
            )
        })?;
        if !self.shard.takes(row.row) {
            return Err(error(
                format!(
                    "{shown}/results.jsonl line {}: row {} is not shard {}'s",
                    self.read, row.row, self.shard
                ),
                "each folder must hold one shard's results, as `--shard K/N --out DIR` writes them",
            ));
        }
        self.next = Some((row.row, line));
        Ok(())
    }
}

/// Merges the shards in `dirs` into `out` (`results.jsonl` and `run.json`), and
/// returns the merged record.
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<DatasetRecord, MergeError> {
    let mut parts = dirs
        .iter()
        .map(|d| Part::open(d))
        .collect::<Result<Vec<_>, _>>()?;
    check_shards(&mut parts, out)?;
    std::fs::create_dir_all(out).map_err(|e| {
        error(
            format!("cannot create `{}`: {e}", out.display()),
            "check the path",
        )
    })?;
    let results = out.join("results.jsonl");
    let fail = |e: io::Error| {
        error(
            format!("cannot write {}: {e}", results.display()),
            "check the folder",
        )
    };
    let mut temp = tempfile::Builder::new()
        .prefix(".results.jsonl.")
        .tempfile_in(out)
        .map_err(fail)?;
    let mut tally = Tally::default();
    let rows = {
        let mut writer = io::BufWriter::new(temp.as_file_mut());
        let rows = join(&mut parts, &mut writer, &mut tally)?;
        writer.flush().map_err(fail)?;
        rows
    };
    if let Some(expected) = parts[0].record.rows_in_file
        && rows != expected
    {
        let short = parts
            .iter()
            .find(|p| p.read < rows_of(p.shard, expected))
            .map_or_else(String::new, |p| {
                format!(
                    ": shard {} ({}) has {} of its {}",
                    p.shard,
                    p.dir.display(),
                    p.read,
                    rows_of(p.shard, expected)
                )
            });
        return Err(error(
            format!("the shards hold {rows} rows; the file has {expected}{short}"),
            "run the shard that stopped short again (its finished rows come from the cache), then merge",
        ));
    }
    temp.as_file().sync_all().map_err(fail)?;
    temp.persist(&results).map_err(|e| fail(e.error))?;
    let record = total(&parts, rows, tally);
    let mut text = serde_json::to_string_pretty(&record)
        .map_err(|e| error(format!("cannot write run.json: {e}"), "report this"))?;
    text.push('\n');
    write_file(&out.join("run.json"), text.as_bytes())?;
    Ok(record)
}

/// How many of `rows` rows are shard `shard`'s.
fn rows_of(shard: Shard, rows: u64) -> u64 {
    (rows + shard.n - shard.k) / shard.n
}

/// The shards are of one run, each once, all of them; `out` is none of them.
fn check_shards(parts: &mut [Part], out: &Path) -> Result<(), MergeError> {
    let Some(first) = parts.first() else {
        return Err(error(
            "no folders to merge",
            "give each shard's `--out` folder",
        ));
    };
    let (n, workflow, rows_file) = (
        first.shard.n,
        first.record.workflow.clone(),
        first.record.rows_file.clone(),
    );
    for p in parts.iter() {
        if p.shard.n != n {
            return Err(error(
                format!(
                    "{} is shard {} and {} is shard {}: not the same split",
                    first.dir.display(),
                    first.shard,
                    p.dir.display(),
                    p.shard
                ),
                "merge the shards of one run, all with the same N in `--shard K/N`",
            ));
        }
        if p.record.workflow != workflow || p.record.rows_file != rows_file {
            return Err(error(
                format!(
                    "{} ran `{}` over {}, and {} ran `{}` over {}",
                    first.dir.display(),
                    workflow,
                    rows_file,
                    p.dir.display(),
                    p.record.workflow,
                    p.record.rows_file
                ),
                "merge the shards of one run",
            ));
        }
        if same_dir(&p.dir, out) {
            return Err(error(
                format!("`--out {}` is one of the shards", out.display()),
                "write the merged results to a folder of their own",
            ));
        }
    }
    parts.sort_by_key(|p| p.shard.k);
    for pair in parts.windows(2) {
        if pair[0].shard.k == pair[1].shard.k {
            return Err(error(
                format!(
                    "shard {} is given twice: {} and {}",
                    pair[0].shard,
                    pair[0].dir.display(),
                    pair[1].dir.display()
                ),
                "give each shard's folder once",
            ));
        }
    }
    let missing: Vec<String> = (1..=n)
        .filter(|k| !parts.iter().any(|p| p.shard.k == *k))
        .map(|k| format!("{k}/{n}"))
        .collect();
    if !missing.is_empty() {
        return Err(error(
            format!(
                "shard{} {} {} missing",
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", "),
                if missing.len() == 1 { "is" } else { "are" }
            ),
            "give every shard's folder (download every artifact of the matrix)",
        ));
    }
    Ok(())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// How the merged rows ended.
#[derive(Default)]
struct Tally {
    counts: RowCounts,
    failed_rows: Vec<RowResult>,
}

impl Tally {
    fn add(&mut self, line: &str) {
        if let Ok(result) = serde_json::from_str::<RowResult>(line) {
            self.counts.add(result.status);
            if result.status == RowStatus::Failed && self.failed_rows.len() < FAILED_ROWS_KEPT {
                self.failed_rows.push(result);
            }
        }
    }
}

/// Writes the shards' lines in row order into `out`; the number of rows. Every
/// row from 0 on must come exactly once.
fn join(parts: &mut [Part], out: &mut impl Write, tally: &mut Tally) -> Result<u64, MergeError> {
    let mut expected = 0u64;
    loop {
        let Some(i) = (0..parts.len())
            .filter(|&i| parts[i].next.is_some())
            .min_by_key(|&i| parts[i].next.as_ref().map(|(row, _)| *row))
        else {
            return Ok(expected);
        };
        let Some((row, line)) = parts[i].next.take() else {
            return Ok(expected);
        };
        let part = &parts[i];
        if row < expected {
            return Err(error(
                format!(
                    "{}/results.jsonl has row {row} twice, or out of order (line {})",
                    part.dir.display(),
                    part.read
                ),
                "the file was edited or written twice; run the shard again",
            ));
        }
        if row > expected {
            let owner = parts
                .iter()
                .find(|p| p.shard.takes(expected))
                .map_or_else(String::new, |p| {
                    format!(" (shard {}, {})", p.shard, p.dir.display())
                });
            return Err(error(
                format!("row {expected} is missing{owner}"),
                "that shard stopped before the row; run it again (its finished rows come from the cache), then merge",
            ));
        }
        tally.add(&line);
        writeln!(out, "{line}").map_err(|e| {
            error(
                format!("cannot write the merged results: {e}"),
                "check the folder",
            )
        })?;
        expected += 1;
        parts[i].advance()?;
    }
}

/// The merged run's record: the shards' counts, tokens and dollars summed.
fn total(parts: &[Part], rows: u64, tally: Tally) -> DatasetRecord {
    let first = &parts[0].record;
    let Tally {
        counts,
        failed_rows,
    } = tally;
    debug_assert_eq!(counts.total, rows);
    let mut agents = first.agents.clone();
    let mut usage = first.usage;
    let cost = |c: Option<f64>| c.map(Usd::from_dollars);
    let mut priced = Usd::from_dollars(first.priced_cost_usd);
    let mut total = cost(first.cost_usd);
    // Each shard's most: its own, or its cost when no bill of it was unknown.
    let most = |r: &DatasetRecord| cost(r.max_cost_usd).or(cost(r.cost_usd));
    let mut max = most(first);
    let unknown = parts.iter().any(|p| p.record.max_cost_usd.is_some());
    let mut unpriced = first.unpriced_agents.clone();
    for p in &parts[1..] {
        let r = &p.record;
        usage += r.usage;
        priced += Usd::from_dollars(r.priced_cost_usd);
        total = total.zip(cost(r.cost_usd)).map(|(a, b)| a + b);
        max = max.zip(most(r)).map(|(a, b)| a + b);
        for name in &r.unpriced_agents {
            if !unpriced.contains(name) {
                unpriced.push(name.clone());
            }
        }
        for (agent, other) in agents.iter_mut().zip(&r.agents) {
            agent.calls += other.calls;
            agent.succeeded += other.succeeded;
            agent.failed += other.failed;
            agent.cached += other.cached;
            agent.skipped += other.skipped;
            agent.usage += other.usage;
            agent.seconds += other.seconds;
            agent.unknown_bills += other.unknown_bills;
            agent.cache_saved_usd = crate::record::sum_saved(
                [agent.cache_saved_usd, other.cache_saved_usd].into_iter(),
            );
            agent.cost_usd = agent
                .cost_usd
                .zip(other.cost_usd)
                .map(|(a, b)| (Usd::from_dollars(a) + Usd::from_dollars(b)).micro_dollars());
        }
    }
    DatasetRecord {
        kind: "dataset".into(),
        run_id: new_run_id(),
        workflow: first.workflow.clone(),
        file: first.file.clone(),
        rows_file: first.rows_file.clone(),
        rows_in_file: first.rows_in_file,
        shard: None,
        started_at: parts
            .iter()
            .map(|p| p.record.started_at.clone())
            .min()
            .unwrap_or_default(),
        seconds: parts.iter().map(|p| p.record.seconds).fold(0.0, f64::max),
        status: DatasetRecord::status_of(&counts, counts.interrupted > 0),
        mock: parts.iter().all(|p| p.record.mock),
        inputs: first.inputs.clone(),
        rows: counts,
        agents,
        usage,
        cost_usd: total.map(Usd::micro_dollars),
        priced_cost_usd: priced.micro_dollars(),
        unpriced_agents: unpriced,
        max_cost_usd: max.filter(|_| unknown).map(Usd::micro_dollars),
        budget_usd: None,
        cache_saved_usd: crate::record::sum_saved(parts.iter().map(|p| p.record.cache_saved_usd)),
        failed_rows,
        key_failure: false,
    }
}

/// Writes a file whole, through a temporary file and a rename.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), MergeError> {
    Staged::write(path, bytes, 0o600)
        .and_then(Staged::commit)
        .map_err(|e| {
            error(
                format!("cannot write {}: {e}", path.display()),
                "check the folder",
            )
        })
}
