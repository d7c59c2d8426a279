//! The host side of every WIT interface Corral implements itself, from one
//! `bindgen!`: the `corral:worker` interfaces of the `imports` world and
//! `wasi:filesystem/{types,preopens}`. The rest of WASI is wasmtime-wasi's
//! (`with:`), so its resources and streams are the ones wasmtime-wasi's
//! bindings use.
//!
//! Generated code only: the adapters live in the sibling modules.

wasmtime::component::bindgen!({
    path: "../wit",
    // An inline world, rather than `corral:worker/imports`, so that the
    // filesystem, which that world leaves to a guest's WASI, is generated
    // by the same invocation. Only the interfaces are generated: the host
    // links each one itself (`super::add_to_linker`).
    interfaces: "
        include corral:worker/imports@0.1.0;
        import wasi:filesystem/types@0.2.12;
        import wasi:filesystem/preopens@0.2.12;
    ",
    imports: {
        "corral:worker/queue.[method]queue.put": async | trappable,
        "corral:worker/queue.[method]queue.put-many": async | trappable,
        // Never wait, but on a Redis queue they make a round trip: async,
        // so that it holds no runtime thread (a local queue answers at once).
        "corral:worker/queue.[method]queue.try-put": async | trappable,
        "corral:worker/queue.[method]queue.try-get": async | trappable,
        "corral:worker/queue.[method]queue.len": async | trappable,
        "corral:worker/queue.[method]queue.get": async | trappable,
        "corral:worker/queue.[method]queue.get-many": async | trappable,
        "corral:worker/queue.[method]queue.join": async | trappable,
        "corral:worker/queue.[method]queue.close": async | trappable,
        "corral:worker/pipe.[method]endpoint.send": async | trappable,
        "corral:worker/pipe.[method]endpoint.recv": async | trappable,
        "corral:worker/lock.[method]lock.acquire": async | trappable,
        "corral:worker/sync.[method]semaphore.acquire": async | trappable,
        "corral:worker/sync.[method]event.wait": async | trappable,
        "corral:worker/sync.[method]barrier.wait": async | trappable,
        // As try-get: they never wait for the object, but on Redis they
        // make a round trip (a barrier's subscribe reads the round). A
        // guard's drop stays a plain call, the lock's hot path: a Redis
        // release goes on in the background (`Guard::release_soon`).
        "corral:worker/lock.[method]lock.try-acquire": async | trappable,
        "corral:worker/sync.[method]semaphore.try-acquire": async | trappable,
        "corral:worker/sync.[method]semaphore.release": async | trappable,
        "corral:worker/sync.[method]semaphore.value": async | trappable,
        "corral:worker/sync.[method]event.set": async | trappable,
        "corral:worker/sync.[method]event.clear": async | trappable,
        "corral:worker/sync.[method]event.is-set": async | trappable,
        "corral:worker/sync.[method]barrier.waiting": async | trappable,
        "corral:worker/sync.[method]barrier.abort": async | trappable,
        "corral:worker/sync.[method]barrier.reset": async | trappable,
        "corral:worker/sync.[method]barrier.subscribe": async | trappable,
        "corral:worker/sync.[method]condition.wait": async | trappable,
        "corral:worker/process.[method]child.join": async | trappable,
        "corral:worker/pollset.[method]pollset.wait": async | trappable,
        default: trappable,
    },
    with: {
        "wasi:cli": wasmtime_wasi::p2::bindings::cli,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:random": wasmtime_wasi::p2::bindings::random,
        "wasi:sockets": wasmtime_wasi::p2::bindings::sockets,
        "wasi:filesystem/types.descriptor": crate::bindings::filesystem::Descriptor,
        "wasi:filesystem/types.directory-entry-stream": crate::bindings::filesystem::DirEntryStream,
        "corral:worker/process.child": crate::bindings::process::ChildRes,
        "corral:worker/queue.queue": crate::bindings::QueueRes,
        "corral:worker/pipe.endpoint": crate::bindings::PipeRes,
        "corral:worker/lock.lock": crate::bindings::LockRes,
        "corral:worker/lock.guard": crate::ipc::Guard,
        "corral:worker/sync.semaphore": crate::bindings::SemaphoreRes,
        "corral:worker/sync.event": crate::bindings::EventRes,
        "corral:worker/sync.barrier": crate::bindings::BarrierRes,
        "corral:worker/sync.condition": crate::bindings::ConditionRes,
        "corral:worker/pollset.pollset": crate::bindings::pollset::PollSetRes,
    },
});
