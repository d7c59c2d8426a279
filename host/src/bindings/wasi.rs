//! WASI 0.2 from wasmtime-wasi: every interface that
//! `wasmtime_wasi::p2::add_to_linker_async` adds, except `wasi:filesystem`,
//! which Corral implements over its own virtual filesystem (`vfs::wasi`).

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::bindings::{LinkOptions, cli, clocks, io, random, sockets};
use wasmtime_wasi::random::{WasiRandom, WasiRandomCtx};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

use crate::runtime::WorkerState;

/// `wasi:io` works on the resource table alone.
struct IoTable;

impl HasData for IoTable {
    type Data<'a> = &'a mut ResourceTable;
}

/// Adds the wasmtime-wasi interfaces (all but `wasi:filesystem`) to `linker`,
/// in their async variants where wasmtime-wasi has them.
pub(super) fn add_to_linker(l: &mut Linker<WorkerState>) -> wasmtime::Result<()> {
    type T = WorkerState;
    io::error::add_to_linker::<T, IoTable>(l, table)?;
    io::poll::add_to_linker::<T, IoTable>(l, table)?;
    io::streams::add_to_linker::<T, IoTable>(l, table)?;
    clocks::wall_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    clocks::monotonic_clock::add_to_linker::<T, WasiClocks>(l, T::clocks)?;
    random::random::add_to_linker::<T, WasiRandom>(l, random)?;
    random::insecure::add_to_linker::<T, WasiRandom>(l, random)?;
    random::insecure_seed::add_to_linker::<T, WasiRandom>(l, random)?;
    cli::exit::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::environment::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_input::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_output::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdin::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stdout::add_to_linker::<T, WasiCli>(l, T::cli)?;
    cli::terminal_stderr::add_to_linker::<T, WasiCli>(l, T::cli)?;
    let options = LinkOptions::default();
    sockets::tcp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::instance_network::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::network::add_to_linker::<T, WasiSockets>(l, &(&options).into(), T::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::tcp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::udp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::udp_create_socket::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    Ok(())
}

fn table(state: &mut WorkerState) -> &mut ResourceTable {
    &mut state.table
}

fn random(state: &mut WorkerState) -> &mut WasiRandomCtx {
    state.wasi.random()
}
