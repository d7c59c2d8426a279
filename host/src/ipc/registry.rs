//! The named objects of one run. The host declares them (manifest or library
//! API); workers open them by name.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::{
    Backend, Barrier, Condition, Event, IpcError, Lock, Pipe, PipeConfig, Queue, QueueConfig,
    Semaphore,
};

/// One map of named objects of a kind.
struct Named<T>(RwLock<HashMap<String, Arc<T>>>);

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named(RwLock::new(HashMap::new()))
    }
}

impl<T> Named<T> {
    fn insert(&self, kind: &str, name: &str, object: Arc<T>) -> Result<Arc<T>, IpcError> {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        if map.contains_key(name) {
            return Err(IpcError::Invalid(format!(
                "a {kind} named `{name}` already exists"
            )));
        }
        map.insert(name.to_string(), object.clone());
        Ok(object)
    }

    fn get(&self, kind: &str, name: &str) -> Result<Arc<T>, IpcError> {
        self.0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .ok_or_else(|| IpcError::NotFound(format!("{kind} `{name}`")))
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        names.sort();
        names
    }
}

/// Every named queue, pipe, lock and sync object of a run. Dropped with the
/// run; objects still open by a worker live until it closes them.
///
/// Objects are declared on the registry's backend unless a `declare_*_on`
/// method names another. Pipes and conditions are always local.
#[derive(Default)]
pub struct Registry {
    backend: Backend,
    queues: Named<Queue>,
    pipes: Named<Pipe>,
    locks: Named<Lock>,
    semaphores: Named<Semaphore>,
    events: Named<Event>,
    barriers: Named<Barrier>,
    conditions: Named<Condition>,
}

impl Registry {
    /// An empty registry whose objects are local.
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
    }

    /// An empty registry whose objects live on `backend` by default.
    pub fn with_backend(backend: Backend) -> Registry {
        Registry {
            backend,
            ..Registry::default()
        }
    }

    /// Where objects are declared by default.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Declares a queue. `Invalid` if the name is taken.
    pub fn declare_queue(&self, name: &str, config: QueueConfig) -> Result<Arc<Queue>, IpcError> {
        self.declare_queue_on(&self.backend, name, config)
    }

    /// Declares a queue on `backend`. On Redis, hosts that declare the same
    /// name in the same namespace share one queue.
    pub fn declare_queue_on(
        &self,
        backend: &Backend,
        name: &str,
        config: QueueConfig,
    ) -> Result<Arc<Queue>, IpcError> {
        self.queues
            .insert("queue", name, Queue::new(backend, name, config)?)
    }

    /// Declares a pipe (always local: a pipe joins two workers of one host).
    pub fn declare_pipe(&self, name: &str, config: PipeConfig) -> Result<Arc<Pipe>, IpcError> {
        self.pipes.insert("pipe", name, Pipe::new(name, config))
    }

    /// Declares a lock (re-entrant or not).
    pub fn declare_lock(&self, name: &str, reentrant: bool) -> Result<Arc<Lock>, IpcError> {
        self.declare_lock_on(&self.backend, name, reentrant)
    }

    /// Declares a lock on `backend`.
    pub fn declare_lock_on(
        &self,
        backend: &Backend,
        name: &str,
        reentrant: bool,
    ) -> Result<Arc<Lock>, IpcError> {
        self.locks
            .insert("lock", name, Lock::new(backend, name, reentrant)?)
    }

    /// Declares a bounded semaphore.
    pub fn declare_semaphore(
        &self,
        name: &str,
        initial: u32,
        max: u32,
    ) -> Result<Arc<Semaphore>, IpcError> {
        self.declare_semaphore_on(&self.backend, name, initial, max)
    }

    /// Declares a bounded semaphore on `backend`.
    pub fn declare_semaphore_on(
        &self,
        backend: &Backend,
        name: &str,
        initial: u32,
        max: u32,
    ) -> Result<Arc<Semaphore>, IpcError> {
        let semaphore = Semaphore::new(backend, name, initial, max)?;
        self.semaphores.insert("semaphore", name, semaphore)
    }

    /// Declares an event.
    pub fn declare_event(&self, name: &str) -> Result<Arc<Event>, IpcError> {
        self.declare_event_on(&self.backend, name)
    }

    /// Declares an event on `backend`.
    pub fn declare_event_on(&self, backend: &Backend, name: &str) -> Result<Arc<Event>, IpcError> {
        self.events
            .insert("event", name, Event::new(backend, name)?)
    }

    /// Declares a barrier.
    pub fn declare_barrier(&self, name: &str, parties: u32) -> Result<Arc<Barrier>, IpcError> {
        self.declare_barrier_on(&self.backend, name, parties)
    }

    /// Declares a barrier on `backend`.
    pub fn declare_barrier_on(
        &self,
        backend: &Backend,
        name: &str,
        parties: u32,
    ) -> Result<Arc<Barrier>, IpcError> {
        self.barriers
            .insert("barrier", name, Barrier::new(backend, name, parties)?)
    }

    /// Declares a condition over an already declared lock, which must be
    /// local (see `docs/scale-out.md`).
    pub fn declare_condition(&self, name: &str, lock: &str) -> Result<Arc<Condition>, IpcError> {
        let lock = match &*self.lock(lock)? {
            Lock::Local(lock, _) => lock.clone(),
            Lock::Redis(_) => {
                return Err(IpcError::Invalid(format!(
                    "condition `{name}`: lock `{lock}` is on Redis, and conditions need a \
                     local lock (declare it with backend = \"local\")"
                )));
            }
        };
        self.conditions
            .insert("condition", name, Condition::new(name, lock))
    }

    /// The queue of that name.
    pub fn queue(&self, name: &str) -> Result<Arc<Queue>, IpcError> {
        self.queues.get("queue", name)
    }

    /// The pipe of that name.
    pub fn pipe(&self, name: &str) -> Result<Arc<Pipe>, IpcError> {
        self.pipes.get("pipe", name)
    }

    /// The lock of that name.
    pub fn lock(&self, name: &str) -> Result<Arc<Lock>, IpcError> {
        self.locks.get("lock", name)
    }

    /// The semaphore of that name.
    pub fn semaphore(&self, name: &str) -> Result<Arc<Semaphore>, IpcError> {
        self.semaphores.get("semaphore", name)
    }

    /// The event of that name.
    pub fn event(&self, name: &str) -> Result<Arc<Event>, IpcError> {
        self.events.get("event", name)
    }

    /// The barrier of that name.
    pub fn barrier(&self, name: &str) -> Result<Arc<Barrier>, IpcError> {
        self.barriers.get("barrier", name)
    }

    /// The condition of that name.
    pub fn condition(&self, name: &str) -> Result<Arc<Condition>, IpcError> {
        self.conditions.get("condition", name)
    }

    /// The names of all queues, sorted (for reports).
    pub fn queue_names(&self) -> Vec<String> {
        self.queues.names()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declare_and_find() {
        let r = Registry::new();
        r.declare_queue("jobs", QueueConfig::default()).unwrap();
        assert!(matches!(
            r.declare_queue("jobs", QueueConfig::default()),
            Err(IpcError::Invalid(_))
        ));
        assert_eq!(r.queue("jobs").unwrap().name(), "jobs");
        assert_eq!(
            r.queue("nope").err(),
            Some(IpcError::NotFound("queue `nope`".into()))
        );
        assert_eq!(
            r.declare_condition("c", "missing").err(),
            Some(IpcError::NotFound("lock `missing`".into()))
        );
        r.declare_lock("state", false).unwrap();
        r.declare_condition("c", "state").unwrap();
        assert_eq!(r.queue_names(), vec!["jobs".to_string()]);
    }
}
