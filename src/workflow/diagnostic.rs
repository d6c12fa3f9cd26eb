//! Problems found in a workflow file, and how they are shown.
//!
//! A [`Diagnostic`] is a kind (a stable code), a message, a place in the file and a
//! hint. Rendering is miette's, like a compiler's: the file, the line, a caret, the
//! message and `help:`. Other outputs (GitHub annotations, `--json`) read the same
//! fields.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan};

use super::lines::LineIndex;
use super::snippet::{CONTEXT_LINES, Snippet};
use super::yaml::Pos;
use crate::printable;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// Where in the file a problem is: a position and a length, or nowhere in particular.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub pos: Option<Pos>,
    pub len: usize,
}

impl Span {
    /// A span of `len` bytes at `pos`.
    pub fn at(pos: Option<Pos>, len: usize) -> Self {
        Span { pos, len }
    }

    /// No position: the problem concerns the whole file or the command line.
    pub const NONE: Span = Span { pos: None, len: 0 };
}

/// One problem in a workflow.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// A stable code such as `workflow::cycle`.
    pub code: &'static str,
    pub message: String,
    pub span: Span,
    /// The agent the problem belongs to, if any.
    pub agent: Option<String>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error with a place (use [`Span::NONE`] when there is none).
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            message: message.into(),
            span,
            agent: None,
            help: None,
        }
    }

    /// A warning with a place.
    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, span, message)
        }
    }

    /// Adds what to do about it.
    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Names the agent the problem is in.
    #[must_use]
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = Some(agent.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The message with the agent's name in front, as printed.
    pub fn full_message(&self) -> String {
        match &self.agent {
            Some(agent) => format!("agent `{agent}`: {}", self.message),
            None => self.message.clone(),
        }
    }
}

/// The problems of one file, with the text needed to show them in place.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub path: PathBuf,
    pub source: Arc<str>,
    pub diagnostics: Vec<Diagnostic>,
}

impl FileReport {
    pub fn new(path: &Path, source: Arc<str>, diagnostics: Vec<Diagnostic>) -> Self {
        FileReport {
            path: path.to_path_buf(),
            source,
            diagnostics,
        }
    }

    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    /// `file:line:col` of a diagnostic, or just the file.
    pub fn location(&self, diagnostic: &Diagnostic) -> String {
        match diagnostic.span.pos {
            Some(pos) => format!("{}:{}:{}", self.path.display(), pos.line, pos.column),
            None => self.path.display().to_string(),
        }
    }

    /// Renders the first [`MAX_SHOWN`] diagnostics like a compiler, then how many
    /// more there are, then a count. The file's line starts are indexed once, so
    /// this is linear in the number of problems.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_links(false)
            .with_width(120)
            .with_context_lines(CONTEXT_LINES);
        let index = LineIndex::new(&self.source);
        let name = self.path.display().to_string();
        let mut out = String::new();
        for diagnostic in self.diagnostics.iter().take(MAX_SHOWN) {
            let shown = Shown {
                diagnostic,
                snippet: diagnostic.span.pos.and_then(|pos| {
                    Snippet::new(&name, &self.source, &index, pos, diagnostic.span.len)
                }),
                location: printable::escape(&self.location(diagnostic)).into_owned(),
                message: printable::escape(&diagnostic.full_message()).into_owned(),
                help: diagnostic
                    .help
                    .as_deref()
                    .map(|h| printable::escape(h).into_owned()),
            };
            if handler.render_report(&mut out, &shown).is_err() {
                out.push_str(&format!("{}: {}\n", shown.location, shown.message));
            }
        }
        let errors = self.error_count();
        let warnings = self.diagnostics.len() - errors;
        let name = printable::escape(&name);
        if let Some(hidden) = self.diagnostics.get(MAX_SHOWN..).filter(|h| !h.is_empty()) {
            let hidden_errors = hidden.iter().filter(|d| d.is_error()).count();
            let kinds = match (hidden_errors, hidden.len() - hidden_errors) {
                (e, 0) => counted(e, "more error"),
                (0, w) => counted(w, "more warning"),
                (e, w) => format!("{} and {}", counted(e, "more error"), counted(w, "warning")),
            };
            out.push_str(&format!(
                "... {kinds} not shown; `byok-flow validate --json {name}` lists every one.\n"
            ));
        }
        if errors > 0 {
            out.push_str(&format!("Found {} in {name}.\n", counted(errors, "error")));
        } else if warnings > 0 {
            out.push_str(&format!(
                "Found {} in {name}.\n",
                counted(warnings, "warning")
            ));
        }
        out
    }
}

/// How many problems of one file are printed; the rest are counted (and all are
/// in `validate --json`), so a file with thousands of mistakes still reads.
pub const MAX_SHOWN: usize = 200;

/// One problem as `validate --json` prints it.
#[derive(Debug, serde::Serialize)]
pub struct DiagnosticJson<'a> {
    pub severity: Severity,
    pub code: &'static str,
    pub message: &'a str,
    pub agent: Option<&'a str>,
    pub help: Option<&'a str>,
    /// 1-based line and column, when the problem has a place in the file.
    pub line: Option<usize>,
    pub column: Option<usize>,
}

impl FileReport {
    /// Every problem (none left out), as data.
    pub fn json(&self) -> Vec<DiagnosticJson<'_>> {
        self.diagnostics
            .iter()
            .map(|d| DiagnosticJson {
                severity: d.severity,
                code: d.code,
                message: &d.message,
                agent: d.agent.as_deref(),
                help: d.help.as_deref(),
                line: d.span.pos.map(|p| p.line),
                column: d.span.pos.map(|p| p.column),
            })
            .collect()
    }
}

/// "1 error", "3 errors".
pub fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A diagnostic as miette sees it: its text escaped, and the lines it quotes.
struct Shown<'a> {
    diagnostic: &'a Diagnostic,
    snippet: Option<Snippet>,
    location: String,
    message: String,
    help: Option<String>,
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.snippet.is_some() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.location, self.message)
        }
    }
}

impl std::error::Error for Shown<'_> {}

impl miette::Diagnostic for Shown<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diagnostic.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.snippet.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = self.snippet.as_ref()?.span;
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(Some("here".to_string()), span),
        )))
    }
}
