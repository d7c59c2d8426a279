//! A run: the shared world of a group of workers. Its named objects
//! (queues, pipes, locks, sync objects) and its in-memory file tree are
//! visible to every worker spawned into it and to nobody else, and are
//! dropped when the run is.
//!
//! A run also holds the programs its workers may spawn, but as values of a
//! type it does not know: the runtime defines programs and registers them
//! (`Run::register_component`), so this module depends on `ipc` and `vfs`
//! only, never on the runtime.

use std::any::Any;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::ipc::{Backend, Registry};
use crate::vfs::{Limits, MemFs};

/// What the workers of one run share. Cheap to clone: clones are the same run.
#[derive(Clone)]
pub struct Run {
    objects: Arc<Registry>,
    fs: MemFs,
    components: Arc<RwLock<HashMap<String, Arc<dyn Any + Send + Sync>>>>,
}

impl Default for Run {
    fn default() -> Self {
        Run::with_fs_limits(Limits::DEFAULT)
    }
}

impl Run {
    /// A new, empty run whose file tree has the default quotas
    /// ([`Limits::DEFAULT`]).
    pub fn new() -> Run {
        Run::default()
    }

    /// A new, empty run whose file tree holds at most `limits` (bytes and
    /// inodes); writes past them fail with `insufficient-space`.
    pub fn with_fs_limits(limits: Limits) -> Run {
        Run::with_options(limits, Backend::Local)
    }

    /// A new, empty run whose named objects live on `backend` by default:
    /// with [`Backend::Redis`], runs of several hosts that declare the same
    /// names in the same namespace share those objects.
    pub fn with_backend(backend: Backend) -> Run {
        Run::with_options(Limits::DEFAULT, backend)
    }

    /// A new, empty run with both settings.
    pub fn with_options(limits: Limits, backend: Backend) -> Run {
        Run {
            objects: Arc::new(Registry::with_backend(backend)),
            fs: MemFs::new(limits),
            components: Arc::default(),
        }
    }

    /// Registers `program` under `name`, replacing any program of that name.
    pub(crate) fn register<P: Any + Send + Sync>(&self, name: String, program: P) {
        self.components
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, Arc::new(program));
    }

    /// The program registered under `name`, if it is a `P`.
    pub(crate) fn registered<P: Any + Clone>(&self, name: &str) -> Option<P> {
        self.components
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .and_then(|program| program.downcast_ref::<P>())
            .cloned()
    }

    /// The run's shared in-memory file tree, which workers see through
    /// mounts of [`MountSource::Shared`](crate::vfs::MountSource::Shared).
    pub fn fs(&self) -> &MemFs {
        &self.fs
    }

    /// The run's named objects: declare queues, pipes, locks and sync
    /// objects here before spawning the workers that open them.
    pub fn objects(&self) -> &Registry {
        &self.objects
    }

    /// [`objects`](Self::objects), shared: for a worker's IPC context.
    pub(crate) fn shared_objects(&self) -> Arc<Registry> {
        self.objects.clone()
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("queues", &self.objects.queue_names())
            .finish_non_exhaustive()
    }
}
