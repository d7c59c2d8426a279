//! `wasi:sockets` as wasmtime-wasi implements it, with the worker's policy
//! and [`Ledger`] in view: socket creation reports refusals as denials, and
//! every socket a worker holds (created or accepted, TCP or UDP) is charged
//! one handle and one host descriptor, every pending name lookup one
//! handle, until the guest drops it. Everything else is wasmtime-wasi's.
//!
//! Generic over nothing: the store's state lends a [`PolicedSockets`]
//! through [`PolicedSocketsView`]; this module does not know the store type.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{self, ResolveAddressStream};
use wasmtime_wasi::p2::bindings::sockets::network::{
    self, ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Network,
};
use wasmtime_wasi::p2::bindings::sockets::tcp::{self, ShutdownType};
use wasmtime_wasi::p2::bindings::sockets::udp::{
    self, IncomingDatagram, IncomingDatagramStream, OutgoingDatagram, OutgoingDatagramStream,
};
use wasmtime_wasi::p2::bindings::sockets::{tcp_create_socket, udp_create_socket};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, DynPollable};
use wasmtime_wasi::p2::{SocketError, SocketResult, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::WasiSocketsCtxView;

use super::pollset::TcpInputs;
use crate::ledger::{Kind, Ledger, Token};
use crate::policy::NetworkPolicy;
use crate::reporter::Reporter;

/// The `HasData` of the socket interfaces: [`PolicedSockets`].
pub(super) struct Policed;

impl HasData for Policed {
    type Data<'a> = PolicedSockets<'a>;
}

/// wasmtime-wasi's sockets with the worker's network grants and ledger in
/// view.
pub(crate) struct PolicedSockets<'a> {
    /// wasmtime-wasi's sockets context and the resource table.
    pub sockets: WasiSocketsCtxView<'a>,
    /// What the worker may do on the network.
    pub network: &'a NetworkPolicy,
    /// Where refusals are reported.
    pub reporter: &'a Reporter,
    /// Where the worker's sockets are charged.
    pub ledger: &'a Arc<Ledger>,
    /// What each socket and lookup the worker holds is charged.
    pub held: &'a mut HeldSockets,
}

/// A store state whose sockets are policed and charged.
pub(crate) trait PolicedSocketsView: Send {
    /// The sockets context, the network grants, the ledger and the reporter
    /// together.
    fn policed_sockets(&mut self) -> PolicedSockets<'_>;
}

/// The ledger's tokens for the sockets and name lookups a worker holds, by
/// their index in its resource table: wasmtime-wasi's resource types have no
/// room for them. Dropped with the store, so whatever the worker still held
/// is given back then.
#[derive(Default)]
pub(crate) struct HeldSockets {
    charges: HashMap<u32, Charge>,
    /// The TCP input streams among them, which a pollset can watch.
    pub(super) inputs: TcpInputs,
}

/// What one held socket or lookup costs: a handle, and for a socket the
/// host descriptor under it. A socket's streams and pollables are its
/// children in the table, dropped before it, so they are not charged apart.
struct Charge {
    _handle: Token,
    _host_fd: Option<Token>,
}

impl PolicedSockets<'_> {
    /// Charges a new socket (`host_fd`) or lookup to the ledger; `None` at
    /// the worker's limit or the host-wide pool's (which the ledger reports).
    fn charge(&self, host_fd: bool) -> Option<Charge> {
        let handle = self.ledger.try_acquire(Kind::Handle).ok()?;
        let host_fd = match host_fd {
            true => Some(self.ledger.try_acquire(Kind::HostFd).ok()?),
            false => None,
        };
        Some(Charge {
            _handle: handle,
            _host_fd: host_fd,
        })
    }

    /// Records `charge` against the resource at `rep`, now that it exists.
    fn hold(&mut self, rep: u32, charge: Charge) {
        self.held.charges.insert(rep, charge);
    }

    /// Gives back what the resource at `rep` was charged, once it is gone.
    fn release(&mut self, rep: u32) {
        self.held.charges.remove(&rep);
    }
}

// The create-socket interfaces use `network`'s types, so their hosts must
// also implement it: as wasmtime-wasi does.
impl network::Host for PolicedSockets<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        self.sockets.convert_error_code(error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime_wasi::p2::bindings::io::error::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        self.sockets.network_error_code(err)
    }
}

impl network::HostNetwork for PolicedSockets<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.sockets, network)
    }
}

// A worker granted no TCP (or no UDP) at all cannot create such a socket:
// wasmtime-wasi refuses with `access-denied` before any address is known, so
// the address check that reports refused binds and connects never runs.
// Creation reports that refusal the same way, then lets wasmtime-wasi answer.
// Past the worker's handle or descriptor limit it answers `new-socket-limit`,
// which wasi-libc gives the guest as `EMFILE`.
impl tcp_create_socket::Host for PolicedSockets<'_> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        if !self.network.any_tcp() {
            self.reporter.deny("network", "tcp socket");
            return self.sockets.create_tcp_socket(family);
        }
        let charge = self.charge(true).ok_or(ErrorCode::NewSocketLimit)?;
        let socket = self.sockets.create_tcp_socket(family)?;
        self.hold(socket.rep(), charge);
        Ok(socket)
    }
}

impl udp_create_socket::Host for PolicedSockets<'_> {
    async fn create_udp_socket(
        &mut self,
        family: IpAddressFamily,
    ) -> SocketResult<Resource<UdpSocket>> {
        if self.network.udp.is_empty() {
            self.reporter.deny("network", "udp socket");
            return self.sockets.create_udp_socket(family).await;
        }
        let charge = self.charge(true).ok_or(ErrorCode::NewSocketLimit)?;
        let socket = self.sockets.create_udp_socket(family).await?;
        self.hold(socket.rep(), charge);
        Ok(socket)
    }
}

/// A socket option's getter and setter, passed on to wasmtime-wasi as they
/// are: options cost the host nothing to hold.
macro_rules! socket_option {
    ($host:path, $socket:ty, $get:ident, $set:ident, $value:ty) => {
        fn $get(&mut self, this: Resource<$socket>) -> SocketResult<$value> {
            <WasiSocketsCtxView<'_> as $host>::$get(&mut self.sockets, this)
        }

        fn $set(&mut self, this: Resource<$socket>, value: $value) -> SocketResult<()> {
            <WasiSocketsCtxView<'_> as $host>::$set(&mut self.sockets, this, value)
        }
    };
}

/// The methods TCP and UDP sockets share, passed on to wasmtime-wasi as
/// they are, except `drop`, which also gives back the socket's charge.
macro_rules! shared_socket_methods {
    ($host:path, $socket:ty) => {
        fn local_address(&mut self, this: Resource<$socket>) -> SocketResult<IpSocketAddress> {
            <WasiSocketsCtxView<'_> as $host>::local_address(&mut self.sockets, this)
        }

        fn remote_address(&mut self, this: Resource<$socket>) -> SocketResult<IpSocketAddress> {
            <WasiSocketsCtxView<'_> as $host>::remote_address(&mut self.sockets, this)
        }

        fn address_family(&mut self, this: Resource<$socket>) -> wasmtime::Result<IpAddressFamily> {
            <WasiSocketsCtxView<'_> as $host>::address_family(&mut self.sockets, this)
        }

        socket_option!(
            $host,
            $socket,
            receive_buffer_size,
            set_receive_buffer_size,
            u64
        );
        socket_option!($host, $socket, send_buffer_size, set_send_buffer_size, u64);

        fn subscribe(
            &mut self,
            this: Resource<$socket>,
        ) -> wasmtime::Result<Resource<DynPollable>> {
            <WasiSocketsCtxView<'_> as $host>::subscribe(&mut self.sockets, this)
        }

        fn drop(&mut self, this: Resource<$socket>) -> wasmtime::Result<()> {
            let rep = this.rep();
            <WasiSocketsCtxView<'_> as $host>::drop(&mut self.sockets, this)?;
            self.release(rep);
            Ok(())
        }
    };
}

impl tcp::Host for PolicedSockets<'_> {}

impl tcp::HostTcpSocket for PolicedSockets<'_> {
    shared_socket_methods!(tcp::HostTcpSocket, TcpSocket);
    socket_option!(
        tcp::HostTcpSocket,
        TcpSocket,
        keep_alive_enabled,
        set_keep_alive_enabled,
        bool
    );
    socket_option!(
        tcp::HostTcpSocket,
        TcpSocket,
        keep_alive_idle_time,
        set_keep_alive_idle_time,
        u64
    );
    socket_option!(
        tcp::HostTcpSocket,
        TcpSocket,
        keep_alive_interval,
        set_keep_alive_interval,
        u64
    );
    socket_option!(
        tcp::HostTcpSocket,
        TcpSocket,
        keep_alive_count,
        set_keep_alive_count,
        u32
    );
    socket_option!(tcp::HostTcpSocket, TcpSocket, hop_limit, set_hop_limit, u8);

    async fn start_bind(
        &mut self,
        this: Resource<TcpSocket>,
        network: Resource<Network>,
        local_address: IpSocketAddress,
    ) -> SocketResult<()> {
        self.sockets.start_bind(this, network, local_address).await
    }

    fn finish_bind(&mut self, this: Resource<TcpSocket>) -> SocketResult<()> {
        self.sockets.finish_bind(this)
    }

    fn start_connect(
        &mut self,
        this: Resource<TcpSocket>,
        network: Resource<Network>,
        remote_address: IpSocketAddress,
    ) -> SocketResult<()> {
        self.sockets.start_connect(this, network, remote_address)
    }

    fn finish_connect(
        &mut self,
        this: Resource<TcpSocket>,
    ) -> SocketResult<(Resource<DynInputStream>, Resource<DynOutputStream>)> {
        let (input, output) = self.sockets.finish_connect(this)?;
        Ok((
            self.make_watchable(input).map_err(SocketError::trap)?,
            output,
        ))
    }

    async fn start_listen(&mut self, this: Resource<TcpSocket>) -> SocketResult<()> {
        self.sockets.start_listen(this).await
    }

    fn finish_listen(&mut self, this: Resource<TcpSocket>) -> SocketResult<()> {
        self.sockets.finish_listen(this)
    }

    /// An accepted connection is a new socket, charged like a created one.
    /// Past the limit the connection is left in the kernel's backlog (not
    /// taken and closed), so it is served once the worker closes another.
    fn accept(
        &mut self,
        this: Resource<TcpSocket>,
    ) -> SocketResult<(
        Resource<TcpSocket>,
        Resource<DynInputStream>,
        Resource<DynOutputStream>,
    )> {
        let charge = self.charge(true).ok_or(ErrorCode::NewSocketLimit)?;
        let (socket, input, output) = self.sockets.accept(this)?;
        self.hold(socket.rep(), charge);
        Ok((
            socket,
            self.make_watchable(input).map_err(SocketError::trap)?,
            output,
        ))
    }

    fn is_listening(&mut self, this: Resource<TcpSocket>) -> wasmtime::Result<bool> {
        self.sockets.is_listening(this)
    }

    fn set_listen_backlog_size(
        &mut self,
        this: Resource<TcpSocket>,
        value: u64,
    ) -> SocketResult<()> {
        self.sockets.set_listen_backlog_size(this, value)
    }

    fn shutdown(
        &mut self,
        this: Resource<TcpSocket>,
        shutdown_type: ShutdownType,
    ) -> SocketResult<()> {
        self.sockets.shutdown(this, shutdown_type)
    }
}

impl udp::Host for PolicedSockets<'_> {}

impl udp::HostUdpSocket for PolicedSockets<'_> {
    shared_socket_methods!(udp::HostUdpSocket, UdpSocket);
    socket_option!(
        udp::HostUdpSocket,
        UdpSocket,
        unicast_hop_limit,
        set_unicast_hop_limit,
        u8
    );

    async fn start_bind(
        &mut self,
        this: Resource<UdpSocket>,
        network: Resource<Network>,
        local_address: IpSocketAddress,
    ) -> SocketResult<()> {
        udp::HostUdpSocket::start_bind(&mut self.sockets, this, network, local_address).await
    }

    fn finish_bind(&mut self, this: Resource<UdpSocket>) -> SocketResult<()> {
        udp::HostUdpSocket::finish_bind(&mut self.sockets, this)
    }

    async fn stream(
        &mut self,
        this: Resource<UdpSocket>,
        remote_address: Option<IpSocketAddress>,
    ) -> SocketResult<(
        Resource<IncomingDatagramStream>,
        Resource<OutgoingDatagramStream>,
    )> {
        self.sockets.stream(this, remote_address).await
    }
}

impl udp::HostIncomingDatagramStream for PolicedSockets<'_> {
    fn receive(
        &mut self,
        this: Resource<IncomingDatagramStream>,
        max_results: u64,
    ) -> SocketResult<Vec<IncomingDatagram>> {
        self.sockets.receive(this, max_results)
    }

    fn subscribe(
        &mut self,
        this: Resource<IncomingDatagramStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        udp::HostIncomingDatagramStream::subscribe(&mut self.sockets, this)
    }

    fn drop(&mut self, this: Resource<IncomingDatagramStream>) -> wasmtime::Result<()> {
        udp::HostIncomingDatagramStream::drop(&mut self.sockets, this)
    }
}

impl udp::HostOutgoingDatagramStream for PolicedSockets<'_> {
    fn check_send(&mut self, this: Resource<OutgoingDatagramStream>) -> SocketResult<u64> {
        self.sockets.check_send(this)
    }

    fn send(
        &mut self,
        this: Resource<OutgoingDatagramStream>,
        datagrams: Vec<OutgoingDatagram>,
    ) -> SocketResult<u64> {
        self.sockets.send(this, datagrams)
    }

    fn subscribe(
        &mut self,
        this: Resource<OutgoingDatagramStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        udp::HostOutgoingDatagramStream::subscribe(&mut self.sockets, this)
    }

    async fn drop(&mut self, this: Resource<OutgoingDatagramStream>) -> wasmtime::Result<()> {
        udp::HostOutgoingDatagramStream::drop(&mut self.sockets, this).await
    }
}

impl ip_name_lookup::Host for PolicedSockets<'_> {
    /// A lookup runs on the blocking pool until the guest reads or drops
    /// it; one handle each bounds how many a worker keeps in flight. Past
    /// the limit: `out-of-memory`, which wasi-libc's `getaddrinfo` gives
    /// the guest as `EAI_MEMORY`.
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        name: String,
    ) -> SocketResult<Resource<ResolveAddressStream>> {
        let charge = self.charge(false).ok_or(ErrorCode::OutOfMemory)?;
        let stream = self.sockets.resolve_addresses(network, name)?;
        self.hold(stream.rep(), charge);
        Ok(stream)
    }
}

impl ip_name_lookup::HostResolveAddressStream for PolicedSockets<'_> {
    fn resolve_next_address(
        &mut self,
        this: Resource<ResolveAddressStream>,
    ) -> SocketResult<Option<IpAddress>> {
        self.sockets.resolve_next_address(this)
    }

    fn subscribe(
        &mut self,
        this: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        ip_name_lookup::HostResolveAddressStream::subscribe(&mut self.sockets, this)
    }

    fn drop(&mut self, this: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        let rep = this.rep();
        ip_name_lookup::HostResolveAddressStream::drop(&mut self.sockets, this)?;
        self.release(rep);
        Ok(())
    }
}
