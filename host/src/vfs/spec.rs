//! Mount specifications as users write them (`--mount`, manifests, library):
//! what to mount where, before it is opened for one worker.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use super::{ByteBudget, MemFs, Mount};

/// Where a mount's files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountSource {
    /// The run's shared in-memory tree, or the subtree at this path of it.
    Shared {
        /// Path inside the shared tree ("/" for all of it).
        subtree: String,
    },
    /// A private, empty in-memory directory for this worker alone, whose
    /// bytes count against the worker's memory cap.
    Scratch,
    /// A directory of the host.
    Host {
        /// The host directory.
        dir: PathBuf,
    },
}

/// One mount: a source at a guest path, read-only or read-write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// Where the files come from.
    pub source: MountSource,
    /// The absolute guest path it appears at, e.g. `/` or `/data`.
    pub guest_path: String,
    /// Whether every write is refused.
    pub read_only: bool,
}

impl MountSpec {
    /// The run's whole shared tree at `/`, read-write: what a worker that
    /// shares files with its peers usually wants.
    pub fn shared_root() -> MountSpec {
        MountSpec {
            source: MountSource::Shared {
                subtree: "/".into(),
            },
            guest_path: "/".into(),
            read_only: false,
        }
    }

    /// Resolves a relative host directory against `base` (a manifest's
    /// directory); other sources are unchanged.
    pub fn relative_to(mut self, base: &Path) -> MountSpec {
        if let MountSource::Host { dir } = &mut self.source
            && dir.is_relative()
        {
            *dir = base.join(&*dir);
        }
        self
    }

    /// Opens the mount for one worker. `shared` is the run's tree; a
    /// scratch tree draws its bytes from `private`, the worker's budget.
    pub fn open(&self, shared: &MemFs, private: &Arc<ByteBudget>) -> Result<Mount, String> {
        match &self.source {
            MountSource::Shared { subtree } => Mount::mem(shared, subtree, self.read_only)
                .map_err(|e| format!("cannot mount shared tree path {subtree}: {e}")),
            MountSource::Scratch => {
                Mount::mem(&MemFs::private(Arc::clone(private)), "/", self.read_only)
                    .map_err(|e| format!("cannot create a scratch directory: {e}"))
            }
            MountSource::Host { dir } => Mount::host_path(dir, self.read_only)
                .map_err(|e| format!("cannot mount host directory {}: {e}", dir.display())),
        }
    }
}

impl FromStr for MountSpec {
    type Err = String;

    /// `SOURCE:GUEST_PATH[:ro|rw]`, where SOURCE is `@shared` (the run's
    /// tree), `@shared/sub/dir` (a subtree of it), `@scratch` (a private
    /// empty directory) or a host directory. Host directories default to
    /// read-only, the others to read-write.
    fn from_str(text: &str) -> Result<MountSpec, String> {
        let usage = || {
            format!(
                "`{text}` is not a mount: write SOURCE:GUEST_PATH[:ro|rw], where SOURCE is \
                 @shared, @shared/SUBDIR, @scratch or a host directory (e.g. ./data:/data:ro)"
            )
        };
        let (rest, mode) = match text.rsplit_once(':') {
            Some((rest, mode @ ("ro" | "rw"))) => (rest, Some(mode == "ro")),
            _ => (text, None),
        };
        let (source, guest) = rest.rsplit_once(':').ok_or_else(usage)?;
        if source.is_empty() || !guest.starts_with('/') {
            return Err(usage());
        }
        let source = if source == "@shared" {
            MountSource::Shared {
                subtree: "/".into(),
            }
        } else if let Some(sub) = source.strip_prefix("@shared/") {
            MountSource::Shared {
                subtree: format!("/{sub}"),
            }
        } else if source == "@scratch" {
            MountSource::Scratch
        } else if source.starts_with('@') {
            return Err(format!(
                "`{source}`: unknown mount source (@shared, @shared/SUBDIR or @scratch)"
            ));
        } else {
            MountSource::Host { dir: source.into() }
        };
        let read_only = mode.unwrap_or(matches!(source, MountSource::Host { .. }));
        Ok(MountSpec {
            source,
            guest_path: guest.to_string(),
            read_only,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_source() {
        assert_eq!("@shared:/".parse(), Ok(MountSpec::shared_root()));
        let sub: MountSpec = "@shared/logs:/logs:ro".parse().unwrap();
        assert_eq!(
            sub.source,
            MountSource::Shared {
                subtree: "/logs".into()
            }
        );
        assert!(sub.read_only);
        let host: MountSpec = "./data:/data".parse().unwrap();
        assert_eq!(
            host.source,
            MountSource::Host {
                dir: "./data".into()
            }
        );
        assert!(host.read_only, "host directories default to read-only");
        let rw: MountSpec = "/srv/x:/x:rw".parse().unwrap();
        assert!(!rw.read_only);
        let scratch: MountSpec = "@scratch:/tmp".parse().unwrap();
        assert_eq!(scratch.source, MountSource::Scratch);
        assert!(!scratch.read_only);
        assert!(
            "nonsense"
                .parse::<MountSpec>()
                .unwrap_err()
                .contains("is not a mount")
        );
        assert!("./d:relative".parse::<MountSpec>().is_err());
        assert!(
            "@nope:/x"
                .parse::<MountSpec>()
                .unwrap_err()
                .contains("unknown mount source")
        );
    }
}
