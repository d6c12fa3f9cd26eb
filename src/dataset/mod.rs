//! Datasets (SPEC §8): one squad, many rows. `run --each FILE` runs the whole
//! squad once per row of a JSON Lines, JSON or CSV file (or of JSON Lines on
//! stdin), streamed, every row through one scheduler: one concurrency limit, the
//! providers' own limits, the cache and one budget. Results are told in row order
//! as soon as each row and every row before it have ended, with the rows in flight
//! bounded by a window, so memory does not grow with the number of rows.
//!
//! [`read`] reads the rows, [`inputs`] makes each row's inputs, [`run`] drives the
//! rows through the scheduler and [`collect`] turns what it says into each row's
//! [`record::RowResult`] and the run's [`record::DatasetRecord`]; [`shard`] splits
//! the rows over machines. The outputs (stdout, `--out`, progress, the history)
//! are subscribers, in `report::rows` and `history`.
//!
//! Another way of running rows (the providers' batch APIs) reads them the same
//! way: [`Dataset::open`] checks a [`Source`] (its format, a CSV header against
//! the inputs, a shard); `dataset.source.rows(shard)` yields each
//! [`read::RawRow`] in order (its index, its place in the file, its fields or why
//! it cannot be used), and [`RowInputs::inputs`] turns a row's fields into the
//! template context's `inputs`, or a [`read::RowProblem`] saying what to fix. A
//! row's outcome is a [`record::RowResult`]; the run's, a [`record::DatasetRecord`].

pub mod collect;
mod csv_rows;
pub mod estimate;
pub mod inputs;
mod json_array;
pub mod merge;
pub mod read;
pub mod record;
pub mod run;
pub mod shard;

#[cfg(test)]
mod tests_read;
#[cfg(test)]
mod tests_run;

pub use inputs::RowInputs;
pub use read::{FileError, Source};
pub use run::{Dataset, batch_window, execute, window};
pub use shard::Shard;
