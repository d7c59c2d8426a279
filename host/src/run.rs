//! A run: the shared world of a group of workers. Its named objects
//! (queues, pipes, locks, sync objects) are visible to every worker spawned
//! into it and to nobody else, and are dropped when the run is.

use std::sync::Arc;

use crate::ipc::Registry;

/// What the workers of one run share. Cheap to clone: clones are the same run.
#[derive(Clone, Default)]
pub struct Run {
    objects: Arc<Registry>,
}

impl Run {
    /// A new, empty run.
    pub fn new() -> Run {
        Run::default()
    }

    /// The run's named objects: declare queues, pipes, locks and sync
    /// objects here before spawning the workers that open them.
    pub fn objects(&self) -> &Registry {
        &self.objects
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("queues", &self.objects.queue_names())
            .finish_non_exhaustive()
    }
}
