//! `byok-flow graph`: the squad as a Mermaid flowchart, Graphviz DOT, or the SVG
//! drawing the HTML report shows (laid out by byok-flow itself).

use std::path::PathBuf;

use crate::error::{Exit, Result};
use crate::report::html;
use crate::settings::Global;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The workflow file.
    #[arg(value_name = "WORKFLOW.yaml")]
    pub file: PathBuf,

    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Mermaid)]
    pub format: Format,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    /// A Mermaid flowchart (renders in GitHub Markdown).
    Mermaid,
    /// Graphviz DOT (`dot -Tsvg`).
    Dot,
    /// An SVG drawing, as the HTML report shows it (no other tool needed).
    Svg,
}

pub fn run(args: &Args, global: Global) -> Result<Exit> {
    let checked = super::load_checked(&args.file, global)?;
    let models: Vec<&str> = checked
        .workflow
        .agents
        .values()
        .map(|a| a.model.as_str())
        .collect();
    let agents: Vec<&crate::workflow::Agent> = checked.workflow.agents.values().collect();
    let label = |i: usize| {
        let mut text = format!("{}\n{}", checked.dag.name(i), models[i]);
        if let Some(list) = &agents[i].for_each {
            text.push_str(&format!("\nfor each {list}"));
            if let Some(max) = agents[i].max_items {
                text.push_str(&format!(" (at most {max})"));
            }
        }
        text
    };
    let stacked = |i: usize| agents[i].for_each.is_some();
    let text = match args.format {
        Format::Mermaid => checked
            .dag
            .to_mermaid(|i| label(i).replace('\n', "<br/>"), stacked),
        Format::Dot => checked
            .dag
            .to_dot(|i| label(i).replace('\n', "\\n"), stacked),
        Format::Svg => {
            let (nodes, edges) = html::squad_of_workflow(&checked);
            html::graph::svg(&nodes, &edges).into_string() + "\n"
        }
    };
    print!("{text}");
    Ok(Exit::Success)
}
