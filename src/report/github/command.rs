//! GitHub's workflow commands as text: annotations, groups, masks and the
//! `::stop-commands::` fence, each escaped by the rules of GitHub's own toolkit
//! (`@actions/core`, `command.ts`): `%`, `\r` and `\n` in data, and also `:`
//! and `,` in properties.
//!
//! Every command is written to **stderr**. The runner reads workflow commands
//! from a step's stderr as well as its stdout (`actions/runner`,
//! `ScriptHandler.cs`, hands both streams to the same command manager), and
//! stdout carries only results, which people redirect to files
//! (`byok-flow run x.yaml > review.md`): a command there would end up in the file.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;
use secrecy::zeroize::Zeroizing;

use crate::keys::ApiKey;
use crate::printable;

/// An annotation's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Error,
    Warning,
}

impl Level {
    fn command(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
        }
    }
}

/// Where an annotation points: a file as the runner wants it (relative to the
/// workspace), and a line and column when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Place {
    pub file: String,
    pub line: Option<usize>,
    pub col: Option<usize>,
}

impl Place {
    /// `file` as an annotation names it: relative to `workspace` when it is
    /// inside it (GitHub shows annotations on the repository's files by their
    /// path in the repository), else as given.
    pub fn file(file: &Path, workspace: Option<&Path>) -> Place {
        Place {
            file: relative_to(file, workspace).display().to_string(),
            line: None,
            col: None,
        }
    }

    /// The same file, at a line and column.
    #[must_use]
    pub fn at(&self, line: usize, col: usize) -> Place {
        Place {
            file: self.file.clone(),
            line: Some(line),
            col: Some(col),
        }
    }
}

fn relative_to(file: &Path, workspace: Option<&Path>) -> PathBuf {
    let inside = workspace.and_then(|root| {
        let root = root.canonicalize().ok()?;
        let file = file.canonicalize().ok()?;
        file.strip_prefix(&root).ok().map(Path::to_path_buf)
    });
    inside.unwrap_or_else(|| file.to_path_buf())
}

/// Escapes a command's data (the part after the last `::`); other control
/// characters are shown escaped (`\x1b`): the log viewer would obey them.
pub fn escape_data(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut one = [0; 4];
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\r' => out.push_str("%0D"),
            '\n' => out.push_str("%0A"),
            c => out.push_str(&printable::escape(c.encode_utf8(&mut one))),
        }
    }
    out
}

/// Escapes a property value (`file=`, `title=`).
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// `::error file=F,line=L,col=C,title=T::message` and a newline.
pub fn annotation(level: Level, place: Option<&Place>, title: &str, message: &str) -> String {
    let mut props = Vec::new();
    if let Some(place) = place {
        props.push(format!("file={}", escape_property(&place.file)));
        if let Some(line) = place.line {
            props.push(format!("line={line}"));
            if let Some(col) = place.col {
                props.push(format!("col={col}"));
            }
        }
    }
    if !title.is_empty() {
        props.push(format!("title={}", escape_property(title)));
    }
    let mut out = format!("::{}", level.command());
    if !props.is_empty() {
        let _ = write!(out, " {}", props.join(","));
    }
    let _ = writeln!(out, "::{}", escape_data(message));
    out
}

/// An error annotation with no place, for a failure that ends the program.
pub fn error(message: &str, hint: Option<&str>) -> String {
    let text = match hint {
        Some(hint) => format!("{message}\nhelp: {hint}"),
        None => message.to_string(),
    };
    annotation(Level::Error, None, "byok-flow", &text)
}

/// `::group::TITLE`: the log lines until `::endgroup::` fold under it.
pub fn group(title: &str) -> String {
    format!("::group::{}\n", escape_data(title))
}

pub const END_GROUP: &str = "::endgroup::\n";

/// A token no one can guess and that `text` does not contain, for a fence or a
/// `$GITHUB_OUTPUT` delimiter.
pub fn token(prefix: &str, text: &str) -> String {
    loop {
        let token = format!("{prefix}{:032x}", rand::random::<u128>());
        if !text.contains(&token) {
            return token;
        }
    }
}

/// `text` between `::stop-commands::TOKEN` and `::TOKEN::`: while the fence is
/// up the runner treats every line as plain text, so a model's reply that says
/// `::set-output` or `::add-mask::` is only shown, never obeyed.
pub fn fenced(text: &str) -> String {
    let token = token("byok-flow-", text);
    let mut out = format!("::stop-commands::{token}\n{text}");
    if !text.ends_with('\n') {
        out.push('\n');
    }
    let _ = writeln!(out, "::{token}::");
    out
}

/// Tells the runner to hide `key` in every log line from now on (`::add-mask::`),
/// on stderr, before anything else is printed about the key.
///
/// Besides building the auth header, this is the one place a key's text is
/// read: the runner needs the value itself to mask it. The line is zeroed on
/// drop. Callers skip it when stderr is a file (`GitHub::masks_keys`): no
/// runner reads that, and the file would keep the key.
pub fn add_mask(key: &ApiKey) -> std::io::Result<()> {
    let secret = key.expose_secret();
    let mut line = Zeroizing::new(String::with_capacity(secret.len() + 16));
    line.push_str("::add-mask::");
    // A key holds no line breaks (keys are checked when read), but a `%` must
    // not be taken for an escape, or the runner would mask another string.
    for c in secret.chars() {
        match c {
            '%' => line.push_str("%25"),
            '\r' => line.push_str("%0D"),
            '\n' => line.push_str("%0A"),
            c => line.push(c),
        }
    }
    line.push('\n');
    let mut err = std::io::stderr().lock();
    err.write_all(line.as_bytes())?;
    err.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_data_and_properties_like_the_toolkit() {
        assert_eq!(escape_data("50% done\r\nnext"), "50%25 done%0D%0Anext");
        assert_eq!(escape_property("a:b,c%"), "a%3Ab%2Cc%25");
        assert_eq!(escape_data("a\x1b]0;t\x07\tb"), "a\\x1b]0;t\\x07\tb");
    }

    #[test]
    fn annotations_name_their_place() {
        let place = Place {
            file: "flows/a,b.yaml".into(),
            line: Some(3),
            col: Some(5),
        };
        assert_eq!(
            annotation(
                Level::Error,
                Some(&place),
                "workflow::cycle",
                "a -> b\n-> a"
            ),
            "::error file=flows/a%2Cb.yaml,line=3,col=5,title=workflow%3A%3Acycle::a -> b%0A-> a\n"
        );
        assert_eq!(
            annotation(Level::Warning, None, "", "hm"),
            "::warning::hm\n"
        );
    }

    #[test]
    fn a_fence_token_never_occurs_in_the_text() {
        let text = "::set-output name=x::y\n::add-mask::z";
        let out = fenced(text);
        let first = out.lines().next().unwrap();
        let token = first.strip_prefix("::stop-commands::").unwrap();
        assert!(
            token.starts_with("byok-flow-") && token.len() == 42,
            "{token}"
        );
        assert!(out.ends_with(&format!("\n::{token}::\n")));
        assert_eq!(out.matches(token).count(), 2);
    }
}
