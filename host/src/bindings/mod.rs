//! Thin adapters from the WIT interfaces in `wit/` to the host's objects.
//! Each `corral:worker` interface lands in the module of the same name and
//! is implemented on a narrow view of the worker's state, as wasmtime-wasi
//! does: the IPC interfaces on [`IpcCtxView`], `process` on
//! [`ProcessCtxView`](process::ProcessCtxView). The store type that
//! composes the contexts belongs to the runtime; nothing here imports it.

pub(crate) mod filesystem;
mod generated;
mod lock;
mod pipe;
pub(crate) mod pollset;
pub(crate) mod process;
mod queue;
mod readiness;
pub(crate) mod sockets;
mod sync;
pub(crate) mod wasi;

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::WasiView;

use crate::ipc::{self, IpcError, PendingReleases, Registry};
use crate::observe::Activity;
use crate::policy::{self, ObjectKind, Op, OpSet, Policy};
use crate::reporter::Reporter;

use corral_worker::types::Error as WitError;
pub(crate) use generated::corral::worker as corral_worker;

/// What [`add_to_linker`] provides, by package and interface: the names a
/// component may import. Keep in step with `add_to_linker`; the end-to-end
/// tests load guests that import every one of them.
pub(crate) const PROVIDED_INTERFACES: &[(&str, &[&str])] = &[
    ("wasi:io", &["error", "poll", "streams"]),
    ("wasi:clocks", &["monotonic-clock", "wall-clock"]),
    ("wasi:random", &["random", "insecure", "insecure-seed"]),
    (
        "wasi:cli",
        &[
            "environment",
            "exit",
            "stdin",
            "stdout",
            "stderr",
            "terminal-input",
            "terminal-output",
            "terminal-stdin",
            "terminal-stdout",
            "terminal-stderr",
        ],
    ),
    ("wasi:filesystem", &["types", "preopens"]),
    (
        "wasi:sockets",
        &[
            "network",
            "instance-network",
            "tcp",
            "tcp-create-socket",
            "udp",
            "udp-create-socket",
            "ip-name-lookup",
        ],
    ),
    (
        "corral:worker",
        &[
            "types", "process", "queue", "pipe", "lock", "sync", "pollset",
        ],
    ),
];

/// Adds WASI 0.2 (from wasmtime-wasi, but `wasi:filesystem` from Corral's
/// virtual filesystem) and every Corral interface to `linker`, each on its
/// view of the store's `T`.
pub(crate) fn add_to_linker<T>(linker: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: WasiView
        + sockets::PolicedSocketsView
        + filesystem::VfsView
        + IpcView
        + process::ProcessView
        + 'static,
{
    wasi::add_to_linker(linker)?;
    filesystem::add_to_linker(linker)?;
    corral_worker::types::add_to_linker::<T, Ipc>(linker, T::ipc)?;
    corral_worker::process::add_to_linker::<T, process::Process>(linker, T::process)?;
    corral_worker::queue::add_to_linker::<T, Ipc>(linker, T::ipc)?;
    corral_worker::pipe::add_to_linker::<T, Ipc>(linker, T::ipc)?;
    corral_worker::lock::add_to_linker::<T, Ipc>(linker, T::ipc)?;
    corral_worker::sync::add_to_linker::<T, Ipc>(linker, T::ipc)?;
    corral_worker::pollset::add_to_linker::<T, sockets::Policed>(linker, T::policed_sockets)?;
    Ok(())
}

/// What the IPC interfaces (queue, pipe, lock, sync) need of a worker: the
/// run's named objects, and the policy that grants access to them.
pub(crate) struct IpcCtx {
    /// The worker's id: what pipes and locks know it by.
    pub id: u64,
    /// The worker's name, for pipe peers' messages.
    pub name: Arc<str>,
    /// The named objects of the worker's run.
    pub objects: Arc<Registry>,
    /// What the worker may open, and for which operations.
    pub policy: Arc<Policy>,
    /// Where refusals are reported.
    pub reporter: Reporter,
    /// Lock releases on their way to Redis, which the worker's end awaits.
    pub releases: PendingReleases,
    /// What the worker is blocked on, for snapshots: set by the calls that
    /// can wait, only once they do.
    pub activity: Arc<Activity>,
}

/// An [`IpcCtx`] with the resource table its handles live in: what the IPC
/// interfaces are implemented on.
pub(crate) struct IpcCtxView<'a> {
    /// The worker's IPC context.
    pub ctx: &'a IpcCtx,
    /// The store's resource table.
    pub table: &'a mut ResourceTable,
}

/// A store state that holds an [`IpcCtx`].
pub(crate) trait IpcView: Send {
    /// The IPC context and the resource table, borrowed together.
    fn ipc(&mut self) -> IpcCtxView<'_>;
}

/// Links the IPC interfaces to [`IpcCtxView`] (see [`HasData`]).
struct Ipc;

impl HasData for Ipc {
    type Data<'a> = IpcCtxView<'a>;
}

impl corral_worker::types::Host for IpcCtxView<'_> {}

impl From<IpcError> for WitError {
    fn from(e: IpcError) -> WitError {
        match e {
            IpcError::Timeout => WitError::Timeout,
            IpcError::Closed => WitError::Closed,
            IpcError::Broken => WitError::Broken,
            IpcError::Denied(why) => WitError::Denied(why),
            IpcError::NotFound(what) => WitError::NotFound(what),
            IpcError::TooLarge(limit) => WitError::TooLarge(limit),
            IpcError::Invalid(why) => WitError::Invalid(why),
            IpcError::Unavailable(why) => WitError::Invalid(format!("unavailable: {why}")),
        }
    }
}

/// A guest's handle on a named object, with the operations its policy
/// granted when it was opened: every later call is checked with one AND.
pub struct Granted<T> {
    /// The object (or this worker's handle on it).
    pub object: T,
    /// What the worker may do with it.
    pub ops: OpSet,
}

/// The table entries behind each Corral resource.
pub type QueueRes = Granted<ipc::QueueHandle>;
/// See [`QueueRes`].
pub type PipeRes = Granted<ipc::PipeEnd>;
/// See [`QueueRes`].
pub type LockRes = Granted<Arc<ipc::Lock>>;
/// See [`QueueRes`].
pub type SemaphoreRes = Granted<Arc<ipc::Semaphore>>;
/// See [`QueueRes`].
pub type EventRes = Granted<Arc<ipc::Event>>;
/// See [`QueueRes`].
pub type BarrierRes = Granted<ipc::BarrierHandle>;
/// See [`QueueRes`].
pub type ConditionRes = Granted<Arc<ipc::Condition>>;

impl IpcCtxView<'_> {
    /// The operations this worker's policy grants on the object `name`:
    /// `denied` (and a denial event) if none.
    fn grant(&self, kind: ObjectKind, name: &str) -> Result<OpSet, IpcError> {
        policy::ipc_check::grant(&self.ctx.policy, &self.ctx.reporter, kind, name)
    }

    /// Checks one operation against what was granted at open.
    fn check<T: PolicyNamed>(&self, res: &Granted<T>, op: Op) -> Result<(), IpcError> {
        policy::ipc_check::check(
            &self.ctx.policy,
            &self.ctx.reporter,
            res.ops,
            op,
            T::KIND,
            res.object.policy_name(),
        )
    }

    /// The entry behind `r`, if the policy grants `op` on its object. The
    /// outer error traps (a bad handle), the inner one is the guest's.
    fn granted<T: PolicyNamed + Send + 'static>(
        &self,
        r: &Resource<Granted<T>>,
        op: Op,
    ) -> wasmtime::Result<Result<&Granted<T>, IpcError>> {
        let res = self.table.get(r)?;
        Ok(self.check(res, op).map(|()| res))
    }

    /// Opens the object `name` through `find`, recording the operations the
    /// policy grants on it.
    fn open_granted<T: PolicyNamed + Send + 'static>(
        &mut self,
        name: &str,
        find: impl FnOnce(&Registry) -> Result<T, IpcError>,
    ) -> Call<Resource<Granted<T>>> {
        let opened = find(&self.ctx.objects).and_then(|object| {
            Ok(Granted {
                object,
                ops: self.grant(T::KIND, name)?,
            })
        });
        match opened {
            Ok(res) => Ok(Ok(self.table.push(res)?)),
            Err(e) => reply(Err(e)),
        }
    }
}

/// What a policy check needs to know of an object a guest opened: its kind
/// and its name.
trait PolicyNamed {
    /// The kind, as policies name it.
    const KIND: ObjectKind;
    /// The object's name.
    fn policy_name(&self) -> &str;
}

/// Implements [`PolicyNamed`] for a resource's object: its kind, and how
/// to reach its name.
macro_rules! policy_named {
    ($($object:ty => $kind:ident, |$x:ident| $name:expr;)*) => {$(
        impl PolicyNamed for $object {
            const KIND: ObjectKind = ObjectKind::$kind;
            fn policy_name(&self) -> &str {
                let $x = self;
                $name
            }
        }
    )*};
}

policy_named! {
    ipc::QueueHandle => Queue, |q| q.queue().name();
    ipc::PipeEnd => Pipe, |end| end.pipe().name();
    Arc<ipc::Lock> => Lock, |lock| lock.name();
    Arc<ipc::Semaphore> => Semaphore, |sem| sem.name();
    Arc<ipc::Event> => Event, |event| event.name();
    ipc::BarrierHandle => Barrier, |b| b.barrier().name();
    Arc<ipc::Condition> => Condition, |cond| cond.name();
}

/// A WIT timeout (nanoseconds; `none` waits forever) as a `Duration`.
fn timeout(nanos: Option<u64>) -> Option<Duration> {
    nanos.map(Duration::from_nanos)
}

/// A host call's result: the outer `Result` traps the worker (a bad handle),
/// the inner one is the WIT `result<T, error>` the guest sees.
type Call<T> = wasmtime::Result<Result<T, WitError>>;

/// Wraps an IPC result as a host call's result.
fn reply<T>(result: Result<T, IpcError>) -> Call<T> {
    Ok(result.map_err(WitError::from))
}
