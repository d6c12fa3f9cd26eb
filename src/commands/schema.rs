//! `byok-flow schema`: prints the workflow JSON Schema.

use crate::error::{Exit, Result};
use crate::workflow::schema;

/// Print the workflow JSON Schema, generated from byok-flow's own types.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_: &Args) -> Result<Exit> {
    print!("{}", schema::workflow_schema_text());
    Ok(Exit::Success)
}
