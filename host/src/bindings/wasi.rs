//! WASI 0.2 from wasmtime-wasi: every interface that
//! `wasmtime_wasi::p2::add_to_linker_async` adds, except `wasi:filesystem`,
//! which Corral implements over its own virtual filesystem (`filesystem.rs`).
//! Generic over the store's state, which provides wasmtime-wasi's
//! [`WasiView`] and a [`PolicedSocketsView`] (`sockets.rs`: the sockets
//! under the worker's policy and ledger).

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::bindings::{LinkOptions, cli, clocks, io, random, sockets};
use wasmtime_wasi::random::{WasiRandom, WasiRandomCtx};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

use super::sockets::{Policed, PolicedSocketsView};

/// `wasi:io` works on the resource table alone.
struct IoTable;

impl HasData for IoTable {
    type Data<'a> = &'a mut ResourceTable;
}

/// Adds the wasmtime-wasi interfaces (all but `wasi:filesystem`) to `linker`,
/// in their async variants where wasmtime-wasi has them.
pub(super) fn add_to_linker<T>(l: &mut Linker<T>) -> wasmtime::Result<()>
where
    T: WasiView + PolicedSocketsView + 'static,
{
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
    sockets::tcp_create_socket::add_to_linker::<T, Policed>(l, T::policed_sockets)?;
    sockets::instance_network::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::network::add_to_linker::<T, WasiSockets>(l, &(&options).into(), T::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<T, Policed>(l, T::policed_sockets)?;
    sockets::tcp::add_to_linker::<T, Policed>(l, T::policed_sockets)?;
    sockets::udp::add_to_linker::<T, Policed>(l, T::policed_sockets)?;
    sockets::udp_create_socket::add_to_linker::<T, Policed>(l, T::policed_sockets)?;
    Ok(())
}

fn table<T: WasiView>(state: &mut T) -> &mut ResourceTable {
    state.ctx().table
}

fn random<T: WasiView>(state: &mut T) -> &mut WasiRandomCtx {
    state.ctx().ctx.random()
}
