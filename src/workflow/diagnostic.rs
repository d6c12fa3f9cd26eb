//! Problems found in a workflow file, and how they are shown.
//!
//! A [`Diagnostic`] is a kind (a stable code), a message, a place in the file and a
//! hint. Rendering is miette's, like a compiler's: the file, the line, a caret, the
//! message and `help:`. Other outputs (GitHub annotations, `--json`) read the same
//! fields.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceSpan};

use super::yaml::Pos;

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

    /// Renders every diagnostic like a compiler, then a count.
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_links(false)
            .with_width(120);
        let mut out = String::new();
        for diagnostic in &self.diagnostics {
            let shown = Shown {
                diagnostic,
                source: NamedSource::new(self.path.display().to_string(), self.source.clone()),
                location: self.location(diagnostic),
            };
            if handler.render_report(&mut out, &shown).is_err() {
                out.push_str(&format!(
                    "{}: {}\n",
                    shown.location,
                    diagnostic.full_message()
                ));
            }
        }
        let errors = self.error_count();
        let warnings = self.diagnostics.len() - errors;
        let name = self.path.display();
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

/// "1 error", "3 errors".
pub fn counted(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Lines longer than this are not quoted: they would not be readable, and miette
/// panics on a caret past column 65,535.
const MAX_QUOTED_LINE: usize = 1_000;

/// A diagnostic as miette sees it.
struct Shown<'a> {
    diagnostic: &'a Diagnostic,
    source: NamedSource<Arc<str>>,
    location: String,
}

impl Shown<'_> {
    /// Whether the problem's line is quoted with a caret under it.
    fn quotes_source(&self) -> bool {
        let Some(pos) = self.diagnostic.span.pos else {
            return false;
        };
        let text = self.source.inner();
        let offset = pos.offset.min(text.len());
        let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
        let end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
        text[start..end].chars().count() <= MAX_QUOTED_LINE
    }
}

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.quotes_source() {
            f.write_str(&self.diagnostic.full_message())
        } else {
            write!(f, "{}: {}", self.location, self.diagnostic.full_message())
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
        self.diagnostic
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.quotes_source()
            .then_some(&self.source as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if !self.quotes_source() {
            return None;
        }
        let pos = self.diagnostic.span.pos?;
        let len = self.diagnostic.span.len.max(1);
        let offset = pos.offset.min(self.source.inner().len());
        let len = len
            .min(self.source.inner().len().saturating_sub(offset))
            .max(usize::from(offset < self.source.inner().len()));
        let span = SourceSpan::new(offset.into(), len);
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(Some("here".to_string()), span),
        )))
    }
}
