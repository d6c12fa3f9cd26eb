//! The exit-code table (SPEC §3) and the error type commands return. This is the
//! only place that knows which failure maps to which code.

use std::fmt;

use crate::keys::KeyError;
use crate::printable;

/// How the program ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: everything worked.
    Success,
    /// 1: an agent failed.
    AgentFailed,
    /// 2: bad usage or an invalid workflow.
    Invalid,
    /// 3: the budget would be or was exceeded.
    Budget,
    /// 4: a key could not be found or decrypted.
    Keys,
    /// 130: interrupted (Ctrl-C).
    Interrupted,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::AgentFailed => 1,
            Exit::Invalid => 2,
            Exit::Budget => 3,
            Exit::Keys => 4,
            Exit::Interrupted => 130,
        }
    }
}

/// A failure that ends a command: what went wrong, what to do, and the exit code.
#[derive(Debug)]
pub struct Error {
    pub exit: Exit,
    pub message: String,
    pub hint: Option<String>,
    /// Already printed in full (a diagnostics report), so nothing more is shown.
    pub reported: bool,
}

impl Error {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        Error {
            exit,
            message: message.into(),
            hint: None,
            reported: false,
        }
    }

    /// Bad usage or an invalid workflow (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Error::new(Exit::Invalid, message)
    }

    /// A failure whose details were already printed.
    pub fn reported(exit: Exit) -> Self {
        Error {
            exit,
            message: String::new(),
            hint: None,
            reported: true,
        }
    }

    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Messages quote paths, names and servers' words: shown, never obeyed.
        write!(f, "error: {}", printable::escape(&self.message))?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  help: {}", printable::escape(hint))?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

impl From<KeyError> for Error {
    /// Key, identity and recipients problems exit 4; a bad name, recipient, host
    /// or input typed on the command line is bad usage, exit 2.
    fn from(e: KeyError) -> Self {
        let exit = match &e {
            KeyError::BadName { .. }
            | KeyError::LooksLikeKey
            | KeyError::BadEnvName { .. }
            | KeyError::IdentityEnv { .. }
            | KeyError::BadRecipientArg { .. }
            | KeyError::RecipientNotListed { .. }
            | KeyError::LastRecipient { .. }
            | KeyError::KeyFileExists { .. }
            | KeyError::KeysDirMissing { .. }
            | KeyError::BadInput { .. }
            | KeyError::BadHostPattern(_) => Exit::Invalid,
            _ => Exit::Keys,
        };
        Error {
            exit,
            message: e.to_string(),
            hint: e.hint(),
            reported: false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
