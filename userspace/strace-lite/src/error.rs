//! The tracer's errors, each naming the call and the path or process that failed.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {reason}")]
    NotFound { path: String, reason: &'static str },
    #[error("{path}: {reason}")]
    NotExecutable { path: String, reason: String },
    #[error("{call}: {source}")]
    Sys {
        call: String,
        #[source]
        source: std::io::Error,
    },
    #[error("attach: ptrace(PTRACE_SEIZE, {pid}): {source}")]
    Attach {
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("open {path}: {source}")]
    Output {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn sys(call: impl Into<String>) -> Error {
        Error::Sys {
            call: call.into(),
            source: std::io::Error::last_os_error(),
        }
    }

    /// A shell's exit status for this failure: 127 not found, 126 not runnable.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NotFound { .. } => 127,
            Error::NotExecutable { .. } => 126,
            _ => 1,
        }
    }
}
