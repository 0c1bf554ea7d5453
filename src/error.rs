//! The one error type of the crate. Every fallible public function returns
//! [`Result`]; messages name the op and the shapes involved.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// An op was given tensors whose shapes do not fit together.
    #[error("{op}: {msg}")]
    Shape { op: &'static str, msg: String },
    /// A valid request that this engine does not implement (yet).
    #[error("{op}: unsupported: {msg}")]
    Unsupported { op: &'static str, msg: String },
    /// No adapter, device creation failed, or a request exceeds the device limits.
    #[error("gpu: {0}")]
    Gpu(String),
    /// A tensor or buffer larger than the device allows.
    #[error(
        "{op}: {what} needs {bytes} bytes but the device allows at most {limit} ({limit_name})"
    )]
    TooLarge {
        op: &'static str,
        what: String,
        bytes: u64,
        limit: u64,
        limit_name: &'static str,
    },
    /// Bad file contents or I/O failure, naming the file.
    #[error("{path}: {msg}")]
    File { path: String, msg: String },
    #[error("{0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn shape(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Shape {
            op,
            msg: msg.into(),
        }
    }
    pub fn unsupported(op: &'static str, msg: impl Into<String>) -> Self {
        Error::Unsupported {
            op,
            msg: msg.into(),
        }
    }
    pub fn file(path: impl AsRef<std::path::Path>, msg: impl std::fmt::Display) -> Self {
        Error::File {
            path: path.as_ref().display().to_string(),
            msg: msg.to_string(),
        }
    }
}
