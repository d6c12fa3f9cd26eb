//! Results: on stdout (the workflow's outputs, or one JSON run record with
//! `--json`) and, with `--out DIR`, a file per agent plus `run.json`. An agent
//! whose reply cites sources has them listed under its output in its file.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::events::{Event, Subscriber};
use crate::keys::atomic;
use crate::record::{AgentStatus, RunRecord};

/// Prints the outputs (or the run record) on stdout when the run ends.
pub struct Stdout {
    pub json: bool,
    /// Fence the results from GitHub's workflow commands: in GitHub Actions, when
    /// stdout is not a file, it may be the job's log (see `report::github`).
    pub fence: bool,
}

/// The outputs as text: one output alone, several each under a `## NAME` heading.
pub fn render_outputs(record: &RunRecord) -> String {
    let mut out = String::new();
    if record.outputs.len() == 1 {
        if let Some(text) = record.outputs.values().next() {
            out.push_str(text);
            if !text.ends_with('\n') {
                out.push('\n');
            }
        }
        return out;
    }
    for (i, (name, text)) in record.outputs.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("## {name}\n\n{}", text.trim_end()));
        out.push('\n');
    }
    out
}

impl Subscriber for Stdout {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        if let Event::RunFinished { record } = event {
            let text = if self.json {
                let mut text =
                    serde_json::to_string_pretty(record).map_err(std::io::Error::other)?;
                text.push('\n');
                text
            } else {
                render_outputs(record)
            };
            let text = if self.fence && !text.is_empty() {
                super::github::command::fenced(&text)
            } else {
                text
            };
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
        Ok(())
    }
}

/// Writes `DIR/AGENT.md` (or `.json`) as each agent finishes, and `DIR/run.json` at the end.
pub struct OutDir {
    dir: PathBuf,
}

impl OutDir {
    /// The folder, made if needed, rid of the temporary files a killed run left.
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        atomic::sweep(dir, |t| {
            Path::new(t)
                .extension()
                .is_some_and(|e| e == "md" || e == "json")
        });
        Ok(OutDir {
            dir: dir.to_path_buf(),
        })
    }
}

/// Writes a file through a temporary file and a rename, so a reader never sees
/// half of it. The temporary file has a fresh name (`.NAME.XXXXXX.tmp`, the
/// pattern [`atomic::sweep`] removes), and is not synced: outputs can be made again.
pub fn write_atomic(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |w| w.write_all(contents))
}

/// [`write_atomic`], the contents written by `write` through a buffer (a record
/// of 100,000 agents is not made into one string first).
pub fn write_atomic_with(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(atomic::PUBLIC));
    }
    let mut file = builder.tempfile_in(dir)?;
    let mut buffered = std::io::BufWriter::new(file.as_file_mut());
    write(&mut buffered)?;
    buffered.flush()?;
    drop(buffered);
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

impl Subscriber for OutDir {
    fn on_event(&mut self, event: &Event<'_>) -> std::io::Result<()> {
        match event {
            Event::AgentFinished { record } if record.status == AgentStatus::Succeeded => {
                if let Some(json) = &record.json {
                    let mut text =
                        serde_json::to_string_pretty(json).map_err(std::io::Error::other)?;
                    text.push('\n');
                    write_atomic(
                        &self.dir.join(format!("{}.json", record.name)),
                        text.as_bytes(),
                    )
                } else {
                    let mut text = record.output.clone().unwrap_or_default();
                    if !record.citations.is_empty() {
                        if !text.ends_with('\n') {
                            text.push('\n');
                        }
                        text.push('\n');
                        text.push_str(&super::sources_markdown(&record.citations));
                    }
                    write_atomic(
                        &self.dir.join(format!("{}.md", record.name)),
                        text.as_bytes(),
                    )
                }
            }
            Event::RunFinished { record } => write_atomic_with(&self.dir.join("run.json"), |w| {
                serde_json::to_writer_pretty(&mut *w, record).map_err(std::io::Error::other)?;
                w.write_all(b"\n")
            }),
            _ => Ok(()),
        }
    }
}
