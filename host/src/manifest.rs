//! `corral.toml`: a topology of workers to start together with `corral up`.
//!
//! ```toml
//! [defaults]            # optional; applies to every worker
//! memory = "64MiB"
//! timeout = "10s"
//!
//! [[worker]]
//! name = "hello"
//! component = "hello.wasm"   # relative to this file
//! count = 10                 # named hello-1 .. hello-10
//! args = ["--greeting", "hi"]
//! env = { LANG = "C" }
//! cpu = "2s"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::units::serde_opt;
use crate::worker::Limits;

/// A parsed manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Limits applied to every worker unless the worker sets its own.
    #[serde(default)]
    pub defaults: LimitsEntry,
    /// The workers, in the order they are started.
    #[serde(rename = "worker", default)]
    pub workers: Vec<WorkerEntry>,
}

/// Limits as written in a manifest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsEntry {
    /// Total linear memory per worker, e.g. `"64MiB"`.
    #[serde(default, deserialize_with = "serde_opt::size")]
    pub memory: Option<u64>,
    /// CPU-time budget per worker, e.g. `"2s"`.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub cpu: Option<Duration>,
    /// Wall-clock timeout per worker, e.g. `"10s"`.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub timeout: Option<Duration>,
}

/// One `[[worker]]` table: a component run `count` times.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerEntry {
    /// The worker's name; with `count > 1`, copies are `name-1` .. `name-N`.
    pub name: String,
    /// The component, core module or `.wat` file, relative to the manifest.
    pub component: toml::Spanned<PathBuf>,
    /// How many copies to start.
    #[serde(default = "one")]
    pub count: u32,
    /// Arguments after `argv[0]`.
    #[serde(default)]
    pub args: Vec<String>,
    /// The worker's environment (nothing is inherited from the host).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Total linear memory, overriding `[defaults]`.
    #[serde(default, deserialize_with = "serde_opt::size")]
    pub memory: Option<u64>,
    /// CPU-time budget, overriding `[defaults]`.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub cpu: Option<Duration>,
    /// Wall-clock timeout, overriding `[defaults]`.
    #[serde(default, deserialize_with = "serde_opt::duration")]
    pub timeout: Option<Duration>,
}

fn one() -> u32 {
    1
}

/// Why a manifest could not be used. Messages name the file, line and key.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error("cannot read manifest {}", path.display())]
    Io {
        /// The manifest.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The TOML is malformed, or a key is unknown or has a bad value.
    #[error("{}: {message}", path.display())]
    Parse {
        /// The manifest.
        path: PathBuf,
        /// The parser's message, with line, column and the offending text.
        message: String,
    },
    /// The TOML is well formed but describes something impossible.
    #[error("{}:{line}: {message}", path.display())]
    Invalid {
        /// The manifest.
        path: PathBuf,
        /// The line of the offending key.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl Manifest {
    /// Reads and checks a manifest file.
    pub fn from_file(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Io {
            path: path.to_owned(),
            source,
        })?;
        Manifest::parse(path, &text)
    }

    /// Parses and checks manifest text; `path` is used in messages and to
    /// resolve component paths.
    pub fn parse(path: &Path, text: &str) -> Result<Manifest, ManifestError> {
        let mut manifest: Manifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        let line_of = |offset: usize| text[..offset.min(text.len())].lines().count().max(1);
        if manifest.workers.is_empty() {
            return Err(ManifestError::Invalid {
                path: path.to_owned(),
                line: 1,
                message:
                    "no workers: add at least one [[worker]] table with `name` and `component`"
                        .into(),
            });
        }
        let mut seen = std::collections::HashSet::new();
        for worker in &mut manifest.workers {
            let line = line_of(worker.component.span().start);
            let invalid = |message: String| ManifestError::Invalid {
                path: path.to_owned(),
                line,
                message,
            };
            if worker.name.is_empty() || worker.name.contains(char::is_whitespace) {
                return Err(invalid(format!(
                    "worker name {:?} must be non-empty and contain no spaces",
                    worker.name
                )));
            }
            if !seen.insert(worker.name.clone()) {
                return Err(invalid(format!("two workers are named `{}`", worker.name)));
            }
            if worker.count == 0 {
                return Err(invalid(format!(
                    "worker `{}`: count must be at least 1",
                    worker.name
                )));
            }
            let resolved = base.join(worker.component.get_ref());
            let span = worker.component.span();
            worker.component = toml::Spanned::new(span, resolved);
        }
        Ok(manifest)
    }
}

impl WorkerEntry {
    /// The names of this entry's workers: `name`, or `name-1` .. `name-N`.
    pub fn instance_names(&self) -> Vec<String> {
        if self.count == 1 {
            vec![self.name.clone()]
        } else {
            (1..=self.count)
                .map(|i| format!("{}-{i}", self.name))
                .collect()
        }
    }

    /// This worker's limits, falling back to the manifest's defaults.
    pub fn effective_limits(&self, defaults: &LimitsEntry) -> Limits {
        Limits {
            memory: self.memory.or(defaults.memory),
            cpu_time: self.cpu.or(defaults.cpu),
            wall_time: self.timeout.or(defaults.timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(Path::new("dir/corral.toml"), text)
    }

    #[test]
    fn full_manifest() {
        let m = parse(
            r#"
[defaults]
memory = "64MiB"
timeout = "10s"

[[worker]]
name = "hello"
component = "hello.wasm"
count = 3
args = ["a"]
env = { K = "V" }
cpu = "2s"
"#,
        )
        .unwrap();
        let w = &m.workers[0];
        assert_eq!(w.component.get_ref(), Path::new("dir/hello.wasm"));
        assert_eq!(w.instance_names(), ["hello-1", "hello-2", "hello-3"]);
        let limits = w.effective_limits(&m.defaults);
        assert_eq!(limits.memory, Some(64 << 20));
        assert_eq!(limits.cpu_time, Some(Duration::from_secs(2)));
        assert_eq!(limits.wall_time, Some(Duration::from_secs(10)));
    }

    #[test]
    fn unknown_key_names_line_and_key() {
        let err = parse("[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\ncuont = 2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 4"), "{err}");
        assert!(err.contains("cuont"), "{err}");
    }

    #[test]
    fn bad_size_names_line() {
        let err = parse(
            "[defaults]\nmemory = \"lots\"\n[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 2"), "{err}");
        assert!(err.contains("`lots` is not a size"), "{err}");
    }

    #[test]
    fn semantic_errors_point_at_line() {
        let err = parse("[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\ncount = 0\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "dir/corral.toml:3: worker `a`: count must be at least 1"
        );
        let err = parse("[[worker]]\nname = \"a\"\ncomponent = \"a.wasm\"\n[[worker]]\nname = \"a\"\ncomponent = \"b.wasm\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(err, "dir/corral.toml:6: two workers are named `a`");
        assert!(parse("").unwrap_err().to_string().contains("no workers"));
    }
}
