//! The named objects of one run. The host declares them (manifest or library
//! API); workers open them by name. One generic map serves every kind: an
//! object kind joins by implementing [`NamedObject`], with no code here.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::{
    Backend, Barrier, Condition, Event, IpcError, Lock, Pipe, PipeConfig, Queue, QueueConfig,
    Semaphore,
};

/// A kind of object a run names: queues, pipes, locks and the rest.
pub trait NamedObject: Send + Sync + Sized + 'static {
    /// The kind, as messages name it: `queue`, `lock`...
    const KIND: &'static str;
    /// What a declaration says besides the name and the backend.
    type Config;

    /// Makes the object `name` on `backend`. Kinds that only exist in this
    /// process ignore `backend`.
    fn create(backend: &Backend, name: &str, config: Self::Config) -> Result<Arc<Self>, IpcError>;
}

/// The objects of one kind, by name.
struct NamedObjects<T>(HashMap<String, Arc<T>>);

/// Every named object of a run, whatever its kind. Dropped with the run;
/// objects still open by a worker live until it closes them.
///
/// Objects are declared on the registry's backend unless
/// [`Registry::declare_on`] (or a `declare_*_on` method) names another.
/// Names are per kind: a queue and a lock may share one.
#[derive(Default)]
pub struct Registry {
    backend: Backend,
    /// A `NamedObjects<T>` per kind `T`, under `T`'s `TypeId`.
    kinds: RwLock<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
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

    /// Declares an object of kind `T` on the registry's backend. `Invalid`
    /// if the kind already has an object of that name.
    pub fn declare<T: NamedObject>(
        &self,
        name: &str,
        config: T::Config,
    ) -> Result<Arc<T>, IpcError> {
        self.declare_on(&self.backend, name, config)
    }

    /// Declares an object of kind `T` on `backend`. On Redis, hosts that
    /// declare the same name in the same namespace share one object.
    pub fn declare_on<T: NamedObject>(
        &self,
        backend: &Backend,
        name: &str,
        config: T::Config,
    ) -> Result<Arc<T>, IpcError> {
        let object = T::create(backend, name, config)?;
        let mut kinds = self.kinds.write().unwrap_or_else(|e| e.into_inner());
        let objects = kinds
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(NamedObjects::<T>(HashMap::new())))
            .downcast_mut::<NamedObjects<T>>()
            .expect("each kind is stored under its own TypeId");
        if objects.0.contains_key(name) {
            return Err(IpcError::Invalid(format!(
                "a {} named `{name}` already exists",
                T::KIND
            )));
        }
        objects.0.insert(name.to_string(), object.clone());
        Ok(object)
    }

    /// The object of kind `T` named `name`: `NotFound` if there is none.
    pub fn get<T: NamedObject>(&self, name: &str) -> Result<Arc<T>, IpcError> {
        self.kinds
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&TypeId::of::<T>())
            .and_then(|objects| objects.downcast_ref::<NamedObjects<T>>())
            .and_then(|objects| objects.0.get(name).cloned())
            .ok_or_else(|| IpcError::NotFound(format!("{} `{name}`", T::KIND)))
    }

    /// Closes for good the pipe ends granted to `worker_name` in pipes
    /// that re-grant their ends ([`Pipe::close_end_of`]): called when that
    /// worker has ended and will not start again. Never blocks.
    pub fn close_pipe_ends_of(&self, worker_name: &str) {
        let kinds = self.kinds.read().unwrap_or_else(|e| e.into_inner());
        let pipes = kinds
            .get(&TypeId::of::<Pipe>())
            .and_then(|objects| objects.downcast_ref::<NamedObjects<Pipe>>());
        for pipe in pipes.into_iter().flat_map(|p| p.0.values()) {
            pipe.close_end_of(worker_name);
        }
    }

    /// The names of every object of kind `T`, sorted (for reports).
    pub fn names<T: NamedObject>(&self) -> Vec<String> {
        let kinds = self.kinds.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = kinds
            .get(&TypeId::of::<T>())
            .and_then(|objects| objects.downcast_ref::<NamedObjects<T>>())
            .map(|objects| objects.0.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

/// Shorthands for the kinds the host declares and opens by kind: each is
/// [`Registry::declare`], [`Registry::declare_on`] or [`Registry::get`].
impl Registry {
    /// Declares a queue. `Invalid` if the name is taken.
    pub fn declare_queue(&self, name: &str, config: QueueConfig) -> Result<Arc<Queue>, IpcError> {
        self.declare(name, config)
    }

    /// Declares a queue on `backend`.
    pub fn declare_queue_on(
        &self,
        backend: &Backend,
        name: &str,
        config: QueueConfig,
    ) -> Result<Arc<Queue>, IpcError> {
        self.declare_on(backend, name, config)
    }

    /// Declares a pipe (always local: a pipe joins two workers of one host).
    pub fn declare_pipe(&self, name: &str, config: PipeConfig) -> Result<Arc<Pipe>, IpcError> {
        self.declare(name, config)
    }

    /// Declares a lock (re-entrant or not).
    pub fn declare_lock(&self, name: &str, reentrant: bool) -> Result<Arc<Lock>, IpcError> {
        self.declare(name, reentrant)
    }

    /// Declares a lock on `backend`.
    pub fn declare_lock_on(
        &self,
        backend: &Backend,
        name: &str,
        reentrant: bool,
    ) -> Result<Arc<Lock>, IpcError> {
        self.declare_on(backend, name, reentrant)
    }

    /// Declares a bounded semaphore.
    pub fn declare_semaphore(
        &self,
        name: &str,
        initial: u32,
        max: u32,
    ) -> Result<Arc<Semaphore>, IpcError> {
        self.declare(name, (initial, max))
    }

    /// Declares a bounded semaphore on `backend`.
    pub fn declare_semaphore_on(
        &self,
        backend: &Backend,
        name: &str,
        initial: u32,
        max: u32,
    ) -> Result<Arc<Semaphore>, IpcError> {
        self.declare_on(backend, name, (initial, max))
    }

    /// Declares an event.
    pub fn declare_event(&self, name: &str) -> Result<Arc<Event>, IpcError> {
        self.declare(name, ())
    }

    /// Declares an event on `backend`.
    pub fn declare_event_on(&self, backend: &Backend, name: &str) -> Result<Arc<Event>, IpcError> {
        self.declare_on(backend, name, ())
    }

    /// Declares a barrier.
    pub fn declare_barrier(&self, name: &str, parties: u32) -> Result<Arc<Barrier>, IpcError> {
        self.declare(name, parties)
    }

    /// Declares a barrier on `backend`.
    pub fn declare_barrier_on(
        &self,
        backend: &Backend,
        name: &str,
        parties: u32,
    ) -> Result<Arc<Barrier>, IpcError> {
        self.declare_on(backend, name, parties)
    }

    /// Declares a condition over the already declared lock `lock`, which
    /// must be local (see `docs/scale-out.md`).
    pub fn declare_condition(&self, name: &str, lock: &str) -> Result<Arc<Condition>, IpcError> {
        let lock = self.lock(lock)?;
        self.declare(name, lock)
    }

    /// The queue of that name.
    pub fn queue(&self, name: &str) -> Result<Arc<Queue>, IpcError> {
        self.get(name)
    }

    /// The pipe of that name.
    pub fn pipe(&self, name: &str) -> Result<Arc<Pipe>, IpcError> {
        self.get(name)
    }

    /// The lock of that name.
    pub fn lock(&self, name: &str) -> Result<Arc<Lock>, IpcError> {
        self.get(name)
    }

    /// The semaphore of that name.
    pub fn semaphore(&self, name: &str) -> Result<Arc<Semaphore>, IpcError> {
        self.get(name)
    }

    /// The event of that name.
    pub fn event(&self, name: &str) -> Result<Arc<Event>, IpcError> {
        self.get(name)
    }

    /// The barrier of that name.
    pub fn barrier(&self, name: &str) -> Result<Arc<Barrier>, IpcError> {
        self.get(name)
    }

    /// The condition of that name.
    pub fn condition(&self, name: &str) -> Result<Arc<Condition>, IpcError> {
        self.get(name)
    }

    /// The names of all queues, sorted (for reports).
    pub fn queue_names(&self) -> Vec<String> {
        self.names::<Queue>()
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
