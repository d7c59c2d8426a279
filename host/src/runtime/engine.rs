//! Engine configuration: one `Engine` per host, tuned for many small workers.

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How the host's engine is sized. These settings trade address space and
/// memory mappings for instantiation speed; see `docs/architecture.md`.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How many workers may be alive at once. The pooling allocator reserves
    /// a slot (memory, tables, stack) for each up front.
    pub max_workers: u32,
    /// The most linear memory one worker may ever use, in bytes. Per-worker
    /// caps (`--memory`) must not exceed it.
    pub max_memory_per_worker: u64,
    /// Virtual address space reserved per linear memory. 4 GiB and more lets
    /// compiled code skip bounds checks; less fits more workers in one host.
    pub memory_reservation: u64,
    /// Guard pages after each linear memory, in bytes.
    pub memory_guard: u64,
    /// Maximum wasm stack per worker, in bytes (deep recursion traps past it).
    pub max_wasm_stack: usize,
    /// How often the epoch ticker interrupts running wasm to check limits
    /// and let other workers run.
    pub epoch_tick: std::time::Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            max_workers: 12_000,
            max_memory_per_worker: 4 << 30,
            memory_reservation: 4 << 30,
            memory_guard: 32 << 20,
            max_wasm_stack: 512 << 10,
            epoch_tick: std::time::Duration::from_millis(2),
        }
    }
}

impl EngineOptions {
    /// The smallest wasm stack an engine accepts (see [`crate::policy::MIN_STACK`]).
    pub const MIN_WASM_STACK: u64 = crate::policy::MIN_STACK;
    /// The largest wasm stack an engine accepts (see [`crate::policy::MAX_STACK`]).
    pub const MAX_WASM_STACK: u64 = crate::policy::MAX_STACK;

    /// `bytes` as a wasm stack size, or an error naming the limit it is
    /// outside of. Policies give stack sizes in bytes, from user input.
    pub fn wasm_stack(bytes: u64) -> Result<usize, String> {
        crate::policy::check_stack(bytes)?;
        let size = |b: u64| bytesize::ByteSize(b).display().iec().to_string();
        usize::try_from(bytes).map_err(|_| format!("a wasm stack of {} does not fit", size(bytes)))
    }
}

/// Host frames that run on a worker's async stack beside its wasm frames
/// (host calls, the epoch callback).
const HOST_STACK: usize = 256 << 10;

/// Pool slots per worker, on average across a host's workers. A Rust or C
/// component holds its program plus a few shim instances of the component
/// model; the per-component maxima leave room for larger ones.
const AVG_CORE_INSTANCES_PER_WORKER: u32 = 4;
const AVG_TABLES_PER_WORKER: u32 = 2;
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;
const MAX_TABLES_PER_COMPONENT: u32 = 16;
const MAX_MEMORIES_PER_COMPONENT: u32 = 4;

/// Bytes of a freed memory or table slot reset in place rather than
/// decommitted: enough for the whole initial memory of a small guest.
const KEEP_RESIDENT: usize = 2 << 20;

/// Whether the running kernel has the PAGEMAP_SCAN ioctl (Linux 6.7+).
fn pagemap_scan_available() -> bool {
    // SAFETY: `uname` fills the zeroed struct it is given.
    let release = unsafe {
        let mut name: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut name) != 0 {
            return false;
        }
        std::ffi::CStr::from_ptr(name.release.as_ptr())
            .to_string_lossy()
            .into_owned()
    };
    let mut numbers = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse::<u32>().ok());
    let version = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    cfg!(target_os = "linux") && version >= (6, 7)
}

/// Builds the engine: component model, async host calls, epoch interruption
/// and the pooling allocator.
pub fn build_engine(opts: &EngineOptions) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    let workers = opts.max_workers.max(1);
    // The averages hold across thousands of workers; a small engine (one
    // sized to a single run) must still fit the largest single component.
    pool.total_component_instances(workers)
        .total_core_instances(
            workers
                .saturating_mul(AVG_CORE_INSTANCES_PER_WORKER)
                .max(MAX_CORE_INSTANCES_PER_COMPONENT),
        )
        .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
        .total_memories(workers.max(MAX_MEMORIES_PER_COMPONENT))
        .max_memories_per_component(MAX_MEMORIES_PER_COMPONENT)
        .total_tables(
            workers
                .saturating_mul(AVG_TABLES_PER_WORKER)
                .max(MAX_TABLES_PER_COMPONENT),
        )
        .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
        .total_stacks(workers)
        .max_memory_size(opts.max_memory_per_worker as usize);
    // Where the kernel can list a slot's dirty pages (PAGEMAP_SCAN, Linux
    // 6.7+), reset a freed slot by rewriting just those instead of
    // madvise: the next worker takes no page faults and the host no TLB
    // shootdown. Measured here: spawn+join 28-36 µs instead of 60-68 µs.
    // Without the ioctl, keeping pages resident would mean memset of the
    // whole region, slower than madvise, so it stays off.
    if pagemap_scan_available() {
        pool.pagemap_scan(wasmtime::Enabled::Yes)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
    }

    let mut config = base_config(opts, opts.max_wasm_stack)?;
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// An engine for workers whose policy asks for what the shared engine does
/// not do: fuel metering (compiled into the code) or another wasm stack
/// size. Instances are allocated on demand: such workers are few, and a
/// second pool would reserve address space for thousands.
pub fn build_variant_engine(
    opts: &EngineOptions,
    fuel: bool,
    max_wasm_stack: usize,
) -> wasmtime::Result<Engine> {
    let mut config = base_config(opts, max_wasm_stack)?;
    config
        .consume_fuel(fuel)
        .allocation_strategy(InstanceAllocationStrategy::OnDemand);
    Engine::new(&config)
}

fn base_config(opts: &EngineOptions, max_wasm_stack: usize) -> wasmtime::Result<Config> {
    let max_wasm_stack =
        EngineOptions::wasm_stack(max_wasm_stack as u64).map_err(wasmtime::Error::msg)?;
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(max_wasm_stack)
        // The async stack must hold the wasm stack plus the host's frames;
        // the sum cannot overflow, as `wasm_stack` bounds the first term.
        .async_stack_size(max_wasm_stack + HOST_STACK)
        .memory_reservation(opts.memory_reservation)
        .memory_guard_size(opts.memory_guard)
        .memory_reservation_for_growth(0)
        // Copy a module's data segments into each new memory rather than
        // map the compiled file copy-on-write: the mapping split every
        // worker's memory into more regions (6.5 mappings per idle worker
        // instead of 2), and vm.max_map_count (65,530) then stopped a host
        // short of 10,000 workers. Guests' initial data is small; measured
        // here, spawn+join got faster (16 µs/worker at once instead of 25).
        .memory_init_cow(false)
        .wasm_backtrace_max_frames(std::num::NonZeroUsize::new(32));
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_stack_sizes_outside_the_limits_are_refused_naming_the_limit() {
        // What `stack = "16EiB"` parses to.
        let huge = EngineOptions::wasm_stack(u64::MAX).unwrap_err();
        assert!(
            huge.contains("16.0 EiB") && huge.contains("(1.0 GiB)"),
            "{huge}"
        );
        let zero = EngineOptions::wasm_stack(0).unwrap_err();
        assert!(zero.contains("0 B") && zero.contains("(4.0 KiB)"), "{zero}");
        assert_eq!(EngineOptions::wasm_stack(512 << 10), Ok(512 << 10));
    }

    #[test]
    fn an_engine_with_a_stack_past_the_limit_is_an_error_not_an_overflow() {
        let opts = EngineOptions::default();
        let err = build_variant_engine(&opts, false, usize::MAX).unwrap_err();
        assert!(err.to_string().contains("above the largest"), "{err:#}");
        let err = build_variant_engine(&opts, true, 0).unwrap_err();
        assert!(err.to_string().contains("below the smallest"), "{err:#}");
    }
}
