//! Config files: the one loader and error type that manifests (`corral.toml`)
//! and policy files share. It reads a file, deserializes it with toml (whose
//! spans place each key), and turns what is wrong into a message naming the
//! file, the line and the key. A leaf: toml and serde only, nothing else from
//! the crate.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a config file (a manifest or a policy file) cannot be used. Messages
/// name the file, and the line and key where there is one.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {what} {}", path.display())]
    Io {
        /// What the file is for: `manifest`, `policy file`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Malformed TOML, an unknown key, or a bad value.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line, column and the offending text.
        message: String,
    },
    /// Well-formed, but wrong (a bad rule, an unknown name...).
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The line of the offending key.
        line: usize,
        /// What is wrong, starting with the key.
        message: String,
    },
    /// Wrong as a whole, with no one line to blame (no such profile...).
    #[error("{}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// A config file's text and name: what its errors point into.
#[derive(Debug, Clone)]
pub(crate) struct ConfigSource {
    path: PathBuf,
    text: String,
}

impl ConfigSource {
    /// Reads `path`; `what` names the kind of file in the error.
    pub fn read(what: &'static str, path: &Path) -> Result<ConfigSource, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            what,
            path: path.to_owned(),
            source,
        })?;
        Ok(ConfigSource::new(path, &text))
    }

    /// Text that came from `path` (which names it in messages).
    pub fn new(path: &Path, text: &str) -> ConfigSource {
        ConfigSource {
            path: path.to_owned(),
            text: text.to_string(),
        }
    }

    /// The directory relative paths in the file are resolved against.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }

    /// Deserializes the whole file.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(&self.text).map_err(|e| ConfigError::Parse {
            path: self.path.clone(),
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// The 1-based line holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .lines()
            .count()
            .max(1)
    }

    /// An error at the line of `span` (a [`toml::Spanned`] value's).
    pub fn invalid(&self, span: Range<usize>, message: String) -> ConfigError {
        self.invalid_at_line(self.line_of(span.start), message)
    }

    /// An error at the line of the key at `path` (table keys, or array
    /// indices in decimal), or of its deepest part the file has; line 1
    /// when the file has none of it.
    pub fn invalid_at_key(&self, path: &[&str], message: String) -> ConfigError {
        let line = toml::de::DeTable::parse(&self.text)
            .ok()
            .and_then(|doc| {
                let mut span = None;
                let mut table = doc.get_ref();
                let mut value: Option<&toml::Spanned<toml::de::DeValue>> = None;
                for part in path {
                    let next = match value.map(|v| v.get_ref()) {
                        None => table.get(*part),
                        Some(toml::de::DeValue::Array(items)) => {
                            part.parse::<usize>().ok().and_then(|i| items.get(i))
                        }
                        Some(toml::de::DeValue::Table(t)) => {
                            table = t;
                            table.get(*part)
                        }
                        Some(_) => None,
                    };
                    let Some(next) = next else { break };
                    span = Some(next.span());
                    value = Some(next);
                }
                span
            })
            .map_or(1, |span| self.line_of(span.start));
        self.invalid_at_line(line, message)
    }

    /// An error at `line`.
    pub fn invalid_at_line(&self, line: usize, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            line,
            message,
        }
    }

    /// An error about the file as a whole.
    pub fn error(&self, message: String) -> ConfigError {
        ConfigError::File {
            path: self.path.clone(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_path() {
        let source = ConfigSource::new(
            Path::new("c.toml"),
            "[pipes.p]\n\nends = [\"a\", \"b\"]\n[[worker]]\nname = \"w\"\n[[worker]]\n\ncount = 2\n",
        );
        let line = |path: &[&str]| match source.invalid_at_key(path, String::new()) {
            ConfigError::Invalid { line, .. } => line,
            other => panic!("{other}"),
        };
        assert_eq!(line(&["pipes", "p", "ends"]), 3);
        assert_eq!(line(&["worker", "1", "count"]), 8);
        assert_eq!(line(&["nothing", "here"]), 1);
    }
}
