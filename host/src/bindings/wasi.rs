//! WASI 0.2 from wasmtime-wasi: every interface that
//! `wasmtime_wasi::p2::add_to_linker_async` adds, except `wasi:filesystem`,
//! which Corral implements over its own virtual filesystem (`filesystem.rs`).
//! Generic over the store's state, which provides wasmtime-wasi's
//! [`WasiView`] and a [`PolicedSocketsView`].

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddressFamily, Network};
use wasmtime_wasi::p2::bindings::{LinkOptions, cli, clocks, io, random, sockets};
use wasmtime_wasi::p2::{SocketError, SocketResult, TcpSocket, UdpSocket};
use wasmtime_wasi::random::{WasiRandom, WasiRandomCtx};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsCtxView, WasiSocketsView};

use crate::policy::NetworkPolicy;
use crate::reporter::Reporter;

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
    sockets::ip_name_lookup::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::tcp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::udp::add_to_linker::<T, WasiSockets>(l, T::sockets)?;
    sockets::udp_create_socket::add_to_linker::<T, Policed>(l, T::policed_sockets)?;
    Ok(())
}

fn table<T: WasiView>(state: &mut T) -> &mut ResourceTable {
    state.ctx().table
}

fn random<T: WasiView>(state: &mut T) -> &mut WasiRandomCtx {
    state.ctx().ctx.random()
}

/// Socket creation with the worker's policy in view. A worker granted no
/// TCP (or no UDP) at all cannot create such a socket: wasmtime-wasi refuses
/// with `access-denied` before any address is known, so the address check
/// that reports refused binds and connects never runs. This reports that
/// refusal the same way, then lets wasmtime-wasi answer.
struct Policed;

impl HasData for Policed {
    type Data<'a> = PolicedSockets<'a>;
}

/// wasmtime-wasi's sockets with the worker's network grants in view.
pub(crate) struct PolicedSockets<'a> {
    /// wasmtime-wasi's sockets context and the resource table.
    pub sockets: WasiSocketsCtxView<'a>,
    /// What the worker may do on the network.
    pub network: &'a NetworkPolicy,
    /// Where refusals are reported.
    pub reporter: &'a Reporter,
}

/// A store state whose sockets are policed (see [`Policed`]).
pub(crate) trait PolicedSocketsView: Send {
    /// The sockets context, the network grants and the reporter together.
    fn policed_sockets(&mut self) -> PolicedSockets<'_>;
}

// The create-socket interfaces use `network`'s types, so their hosts must
// also implement it: as wasmtime-wasi does.
impl sockets::network::Host for PolicedSockets<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        self.sockets.convert_error_code(error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<io::error::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        self.sockets.network_error_code(err)
    }
}

impl sockets::network::HostNetwork for PolicedSockets<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        sockets::network::HostNetwork::drop(&mut self.sockets, network)
    }
}

impl sockets::tcp_create_socket::Host for PolicedSockets<'_> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        if !self.network.any_tcp() {
            self.reporter.deny("network", "tcp socket");
        }
        self.sockets.create_tcp_socket(family)
    }
}

impl sockets::udp_create_socket::Host for PolicedSockets<'_> {
    async fn create_udp_socket(
        &mut self,
        family: IpAddressFamily,
    ) -> SocketResult<Resource<UdpSocket>> {
        if self.network.udp.is_empty() {
            self.reporter.deny("network", "udp socket");
        }
        self.sockets.create_udp_socket(family).await
    }
}
