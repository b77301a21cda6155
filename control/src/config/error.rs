//! The one error type of configuration loading: where (a key path such as
//! `peers[2].allowed_ips[0]`, or a file path) and why, printed as one line.

use std::fmt;
use std::io;

use serde_path_to_error::Segment;

/// A configuration problem. `path` is the key path in the form `a.b[3].c`, or a file
/// path when the file itself cannot be read or is not YAML; `reason` says what is wrong
/// and, where it helps, what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `peers[2].allowed_ips[0]`, a file path, or empty for the document as a whole.
    pub path: String,
    /// What is wrong, without the path.
    pub reason: String,
}

impl ConfigError {
    pub(super) fn new(path: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// An I/O failure on `file`, reported the way the shell does
    /// (`/etc/wgdp/x.yaml: No such file or directory`).
    pub(super) fn io(path: impl Into<String>, file: &std::path::Path, err: &io::Error) -> Self {
        let path = path.into();
        let file = file.display();
        let reason = io_reason(err);
        if path.is_empty() {
            ConfigError::new(file.to_string(), reason)
        } else {
            ConfigError::new(path, format!("{file}: {reason}"))
        }
    }

    /// Turns a deserialisation failure into a key path and a reason in the words of this
    /// file format (keys, not fields).
    pub(super) fn from_serde(err: serde_path_to_error::Error<serde_yaml::Error>) -> Self {
        let mut path = format_path(err.path());
        let message = err.into_inner().to_string();
        let reason = if let Some(rest) = message.strip_prefix("unknown field ") {
            // "unknown field `x`, expected one of `a`, `b`": the path already ends in x.
            match rest.split_once(", ") {
                Some((_, expected)) => format!("unknown key ({expected})"),
                None => "unknown key".to_string(),
            }
        } else if let Some(rest) = message.strip_prefix("missing field `") {
            // The path ends at the mapping that lacks the key; name the key itself.
            let key = rest.trim_end_matches('`');
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            "is required".to_string()
        } else if let Some(rest) = message.strip_prefix("invalid type: unit value, ") {
            format!("has no value, {rest}")
        } else {
            // Integers are read as i64 only to range-check them afterwards.
            message.replace("expected i64", "expected an integer")
        };
        ConfigError::new(path, reason)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "config error: {}", self.reason)
        } else {
            write!(f, "config error: {}: {}", self.path, self.reason)
        }
    }
}

impl std::error::Error for ConfigError {}

/// The OS message without Rust's " (os error N)" suffix, as `cat` would print it.
fn io_reason(err: &io::Error) -> String {
    let text = err.to_string();
    match err.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or_else(|| text.clone(), str::to_string),
        None => text,
    }
}

/// `a.b[3].c`; a key that is not a string (such as `3: x`) shows as `?`.
fn format_path(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
            // Enum variants are values here (`idle: poll`), not steps in the path.
            Segment::Enum { .. } => {}
        }
    }
    out
}
