//! `corral:worker/process`: who this worker is, and the children it spawns.
//! Children are started through a [`Spawner`] that the runtime provides, so
//! this module needs nothing of the runtime.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use wasmtime::component::{HasData, Resource, ResourceTable};
use wasmtime_wasi::p2::DynPollable;

use super::corral_worker::process::{ExitStatus as WitStatus, Host, HostChild};
use super::readiness::{Readiness, subscribe};
use super::{Call, reply, timeout};
use crate::budget::Budget;
use crate::ipc::IpcError;
use crate::policy::Policy;
use crate::reporter::Reporter;
use crate::restart::{RESTARTS_VAR, RestartPolicy};
use crate::run::Run;
use crate::status::ExitStatus;
use crate::worker::{Worker, WorkerSpec};

/// What `corral:worker/process` needs of a worker: who it is and, if its
/// policy lets it spawn, its family.
pub(crate) struct ProcessCtx {
    /// The worker's host-unique id.
    pub id: u64,
    /// The worker's name.
    pub name: Arc<str>,
    /// What the worker may spawn, and how many.
    pub policy: Arc<Policy>,
    /// Where refusals are reported.
    pub reporter: Reporter,
    /// Set when the policy lets the worker spawn children.
    pub family: Option<Family>,
    /// Becomes true when the host asks the worker to stop.
    pub shutdown: watch::Receiver<bool>,
}

/// A [`ProcessCtx`] with the resource table its children's handles live in.
pub(crate) struct ProcessCtxView<'a> {
    /// The worker's process context.
    pub ctx: &'a mut ProcessCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// A store state that holds a [`ProcessCtx`].
pub(crate) trait ProcessView: Send {
    /// The process context and the resource table, borrowed together.
    fn process(&mut self) -> ProcessCtxView<'_>;
}

/// Links `corral:worker/process` to [`ProcessCtxView`] (see [`HasData`]).
pub(super) struct Process;

impl HasData for Process {
    type Data<'a> = ProcessCtxView<'a>;
}

/// Starts child workers. The runtime implements it; the process interface
/// holds it as a trait object, so that the bindings need not know the runtime.
pub(crate) trait Spawner: Send + Sync {
    /// The component `run` registered as `component`, ready to start as a
    /// child; `None` if the run has no component of that name.
    fn find(&self, run: &Run, component: &str) -> Option<Launch>;
}

/// Starts one found component as a worker of `spec` in `lineage`.
pub(crate) type Launch = Box<dyn FnOnce(WorkerSpec, Lineage) -> Worker + Send>;

/// The family tree a worker belongs to: what its spawn limits count, and
/// the budget its memory and CPU time are carved from.
#[derive(Clone, Default)]
pub(crate) struct Lineage {
    /// Workers spawned anywhere below the tree's root worker.
    pub descendants: Arc<AtomicU32>,
    /// The parent's budget (`None` for a root worker).
    pub parent: Option<Arc<Budget>>,
}

/// What a worker that may spawn needs: what starts its children, its own
/// spec (children inherit it), its lineage, and its children so far.
pub(crate) struct Family {
    /// Starts the children.
    pub spawner: Arc<dyn Spawner>,
    /// The worker's own spec: its run, and what its children inherit.
    pub spec: Arc<WorkerSpec>,
    /// The tree the worker and its children count against.
    pub lineage: Lineage,
    /// The worker's own budget, which its children's come out of.
    pub budget: Arc<Budget>,
    /// The children spawned so far (the dead ones pruned at each spawn).
    pub children: Vec<Worker>,
}

/// A child worker, killed when its handle goes (so when its parent ends).
pub struct ChildRes(Worker);

impl Drop for ChildRes {
    fn drop(&mut self) {
        self.0.terminate();
    }
}

impl Host for ProcessCtxView<'_> {
    fn id(&mut self) -> wasmtime::Result<u64> {
        Ok(self.ctx.id)
    }

    fn name(&mut self) -> wasmtime::Result<String> {
        Ok(self.ctx.name.to_string())
    }

    fn shutdown_requested(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let shutdown = self.ctx.shutdown.clone();
        subscribe(self.table, Readiness::Shutdown(shutdown))
    }
}

/// Longest name a worker may give its child, in bytes.
const MAX_CHILD_NAME: usize = 64;

/// Why `name` cannot name a child, if it cannot. A child's full name is
/// `PARENT/NAME`: no `/` in NAME keeps every spawned name under its parent's,
/// so a worker can never take the name (and so the pipe ends, or the console
/// prefix) of a worker outside its own subtree.
fn child_name_fault(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("is empty")
    } else if name.len() > MAX_CHILD_NAME {
        Some("is longer than 64 bytes")
    } else if name.contains('/') {
        Some("contains `/` (the host puts children under their parent's name, `parent/child`)")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains spaces or control characters")
    } else {
        None
    }
}

impl ProcessCtx {
    /// Starts a child if the policy allows it; every refusal is a denial.
    fn spawn_child(
        &mut self,
        component: &str,
        name: String,
        args: Vec<String>,
    ) -> Result<Worker, IpcError> {
        let spawn = &self.policy.spawn;
        let deny = |state: &Self, rule: &str, why: String| {
            state.reporter.deny(rule, format!("spawn `{component}`"));
            Err(IpcError::Denied(format!(
                "policy `{}` {why} ({rule})",
                state.policy.name
            )))
        };
        if let Some(fault) = child_name_fault(&name) {
            return Err(IpcError::Invalid(format!("child name {name:?} {fault}")));
        }
        let Some(family) = self.family.as_mut() else {
            return deny(self, "spawn.components", "does not allow spawning".into());
        };
        if !spawn.components.iter().any(|c| c == component || c == "*") {
            return deny(
                self,
                "spawn.components",
                format!("does not allow spawning `{component}`"),
            );
        }
        let Some(launch) = family.spawner.find(&family.spec.run, component) else {
            return Err(IpcError::NotFound(format!("component `{component}`")));
        };
        family.children.retain(Worker::is_alive);
        if family.children.len() as u32 >= spawn.max_children {
            let max = spawn.max_children;
            return deny(
                self,
                "spawn.max-children",
                format!("allows {max} live children"),
            );
        }
        // The child's limits are what the parent has left: spawning never
        // multiplies the memory or CPU time a worker may use, and a child
        // never outlives its parent's wall-time limit.
        let mut limits = family.spec.limits.clone();
        limits.memory = min_limit(limits.memory, family.budget.memory_left());
        limits.cpu_time = min_limit(limits.cpu_time, family.budget.cpu_left());
        limits.wall_time = min_limit(limits.wall_time, family.budget.wall_left());
        if limits.memory == Some(0) {
            return deny(self, "memory", "leaves no memory for a child".into());
        }
        if limits.cpu_time == Some(Duration::ZERO) {
            return deny(self, "cpu", "leaves no CPU time for a child".into());
        }
        if limits.wall_time == Some(Duration::ZERO) {
            return deny(self, "timeout", "leaves no wall time for a child".into());
        }
        let descendants = family.lineage.descendants.fetch_add(1, Ordering::Relaxed) + 1;
        if descendants > spawn.max_descendants {
            family.lineage.descendants.fetch_sub(1, Ordering::Relaxed);
            let max = spawn.max_descendants;
            return deny(
                self,
                "spawn.max-descendants",
                format!("allows {max} descendants"),
            );
        }
        let spec = WorkerSpec {
            name: format!("{}/{name}", self.name),
            // A child's argv[0] is its own name, whatever its parent's was.
            argv0: None,
            args,
            limits,
            // Its parent supervises it: the host does not restart a child,
            // and the child does not read its parent's restart count.
            restart: RestartPolicy::default(),
            group: None,
            env: (family.spec.env.iter())
                .filter(|(key, _)| key != RESTARTS_VAR)
                .cloned()
                .collect(),
            ..(*family.spec).clone()
        };
        let lineage = Lineage {
            descendants: family.lineage.descendants.clone(),
            parent: Some(family.budget.clone()),
        };
        let child = launch(spec, lineage);
        family.children.push(child.clone());
        Ok(child)
    }
}

/// The tighter of two optional limits (`None`: no limit).
fn min_limit<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn wit_status(status: ExitStatus) -> WitStatus {
    match status {
        ExitStatus::Exited { code } => WitStatus::Exited(code),
        ExitStatus::Trapped { message, .. } => WitStatus::Trapped(message),
        ExitStatus::Killed { reason } => WitStatus::Killed(reason.to_string()),
        ExitStatus::FailedToStart { reason } => WitStatus::FailedToStart(reason),
    }
}

impl HostChild for ProcessCtxView<'_> {
    fn spawn(
        &mut self,
        component: String,
        name: String,
        args: Vec<String>,
    ) -> Call<Resource<ChildRes>> {
        match self.ctx.spawn_child(&component, name, args) {
            Ok(child) => Ok(Ok(self.table.push(ChildRes(child))?)),
            Err(e) => reply(Err(e)),
        }
    }

    fn id(&mut self, child: Resource<ChildRes>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&child)?.0.id())
    }

    fn is_alive(&mut self, child: Resource<ChildRes>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&child)?.0.is_alive())
    }

    async fn join(&mut self, child: Resource<ChildRes>, wait: Option<u64>) -> Call<WitStatus> {
        let worker = self.table.get(&child)?.0.clone();
        let status = match timeout(wait) {
            Some(limit) => worker.join_timeout(limit).await.ok_or(IpcError::Timeout),
            None => Ok(worker.join().await),
        };
        reply(status.map(wit_status))
    }

    fn kill(&mut self, child: Resource<ChildRes>) -> wasmtime::Result<()> {
        self.table.get(&child)?.0.terminate();
        Ok(())
    }

    fn drop(&mut self, child: Resource<ChildRes>) -> wasmtime::Result<()> {
        self.table.delete(child)?;
        Ok(())
    }
}
