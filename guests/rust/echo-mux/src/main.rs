//! The multiplexing TCP echo server: one loop waits on the listener, every
//! client socket, a control queue and a timer at once (the `select()`
//! pattern), so any number of clients are served by one thread.
//! Args: ADDR CONTROL_QUEUE [LIMIT_MS] [MODE]
//!
//! MODE says how the loop waits. `pollset` (the default) watches the
//! clients in a `corral:worker/pollset`, which wakes only for the clients
//! whose socket changed, the way `epoll` does; the listener, queue, timer
//! and any client owed a write go in the same call. `poll` passes every
//! pollable to `wasi:io/poll.poll` on every round, the way `select()` does.
//!
//! A message `stop` on the control queue (or the queue being closed) shuts
//! it down cleanly: no more accepts, what clients sent is echoed (for up to a
//! second), every connection is closed, a summary is printed, exit 0. The
//! timer bounds the server's life: after LIMIT_MS (default 10 minutes) it
//! stops the same way by itself. A bind its policy does not grant is the WASI
//! `access-denied` error: the worker says so and exits 3.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use corral_guest::pollset::Pollset;
use corral_guest::wasi::clocks::monotonic_clock;
use corral_guest::wasi::io::poll::{Pollable, poll};
use corral_guest::wasi::io::streams::{InputStream, OutputStream, StreamError};
use corral_guest::wasi::sockets::instance_network::instance_network;
use corral_guest::wasi::sockets::network::{
    ErrorCode, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use corral_guest::wasi::sockets::tcp::{ShutdownType, TcpSocket};
use corral_guest::wasi::sockets::tcp_create_socket::create_tcp_socket;
use corral_guest::{Error, Queue, arg, exit, or_die};

/// Bytes asked for per read, least and most. The host allocates and zeroes
/// what is asked for, so a client of small messages is read in small
/// chunks; a read that fills its chunk doubles the next one.
const MIN_CHUNK: u64 = 4 << 10;
const MAX_CHUNK: u64 = 64 << 10;
/// Nanoseconds a shutdown waits for echoes still owed to clients.
const DRAIN_NS: u64 = 1_000_000_000;
/// Most clients one pollset wait reports.
const READY_MAX: u32 = 1024;

/// One connected client. Fields drop in declaration order: the pollables
/// and streams go before the socket they belong to, as WASI requires.
struct Client {
    readable: Pollable,
    writable: Pollable,
    input: InputStream,
    output: OutputStream,
    socket: TcpSocket,
    /// Bytes read and not yet echoed. While any are owed the server waits
    /// for the socket to be writable, not readable: a client that does not
    /// read its echoes is not read from (backpressure, bounded memory).
    owed: Vec<u8>,
    /// The client closed its side: close once everything is echoed.
    eof: bool,
    /// Bytes to ask for at the next read.
    chunk: u64,
    /// Whether the pollset watches this client's input (`pollset` mode):
    /// not while echoes are owed, which wait for `writable` instead.
    watched: bool,
}

impl Client {
    fn new((socket, input, output): (TcpSocket, InputStream, OutputStream)) -> Client {
        Client {
            readable: input.subscribe(),
            writable: output.subscribe(),
            input,
            output,
            socket,
            owed: Vec::new(),
            eof: false,
            chunk: MIN_CHUNK,
            watched: false,
        }
    }

    /// What to wait for next.
    fn pollable(&self) -> &Pollable {
        if self.owed.is_empty() {
            &self.readable
        } else {
            &self.writable
        }
    }

    /// Reads what is there and echoes what the socket takes now. Returns
    /// the bytes echoed, or `None` when the connection is finished (closed
    /// by the client, or broken).
    fn serve(&mut self) -> Option<u64> {
        if self.owed.is_empty() && !self.eof {
            match self.input.read(self.chunk) {
                Ok(data) => {
                    self.chunk = if data.len() as u64 == self.chunk {
                        (self.chunk * 2).min(MAX_CHUNK)
                    } else {
                        (self.chunk / 2).max(MIN_CHUNK)
                    };
                    self.owed = data;
                }
                Err(StreamError::Closed) => self.eof = true,
                Err(StreamError::LastOperationFailed(_)) => return None,
            }
        }
        let echoed = self.write_some()?;
        if self.eof && self.owed.is_empty() {
            return None;
        }
        Some(echoed)
    }

    /// Writes as much of what is owed as the socket accepts without waiting.
    fn write_some(&mut self) -> Option<u64> {
        if self.owed.is_empty() {
            return Some(0);
        }
        let room = self.output.check_write().ok()?;
        let n = (room as usize).min(self.owed.len());
        if n > 0 {
            self.output.write(&self.owed[..n]).ok()?;
            self.owed.drain(..n);
        }
        Some(n as u64)
    }
}

fn main() {
    let addr: String = arg(1, "127.0.0.1:7007".to_string());
    let control_name: String = arg(2, "control".to_string());
    let limit_ms: u64 = arg(3, 600_000);
    let addr: SocketAddr = addr.parse().unwrap_or_else(|_| {
        eprintln!("`{addr}` is not an IP address and port");
        exit(2)
    });
    let control = or_die("open the control queue", Queue::open(&control_name));
    let listener = listen(addr).unwrap_or_else(|e| {
        eprintln!("listen on {addr}: {e:?}");
        exit(if e == ErrorCode::AccessDenied { 3 } else { 1 })
    });
    match listener.local_address() {
        Ok(local) => println!("listening on {}", show(local)),
        Err(e) => println!("listening on {addr} ({e:?})"),
    }

    let mut waiter = match arg(4, "pollset".to_string()).as_str() {
        "pollset" => Waiter::Pollset {
            set: or_die("create a pollset", Pollset::create()),
            owing: BTreeSet::new(),
        },
        "poll" => Waiter::Poll,
        other => {
            eprintln!("unknown mode `{other}`: `pollset` or `poll`");
            exit(2)
        }
    };

    let incoming = listener.subscribe();
    let told = control.subscribe_get();
    let deadline = monotonic_clock::subscribe_duration(limit_ms.saturating_mul(1_000_000));
    // Slots keep their index for the life of a client: a pollset token.
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let (mut served, mut echoed, mut polls) = (0u64, 0u64, 0u64);
    let reason = 'serve: loop {
        let ready = waiter.wait([&incoming, &told, &deadline], &clients);
        polls += 1;
        for event in ready {
            match event {
                Wake::Listener => loop {
                    match listener.accept() {
                        Ok(accepted) => {
                            served += 1;
                            let mut client = Client::new(accepted);
                            let slot = free.pop().unwrap_or(clients.len());
                            waiter.update(slot, &mut client);
                            match clients.get_mut(slot) {
                                Some(place) => *place = Some(client),
                                None => clients.push(Some(client)),
                            }
                        }
                        Err(ErrorCode::WouldBlock) => break,
                        // A connection that failed before it was accepted
                        // concerns that client only.
                        Err(_) => break,
                    }
                },
                Wake::Control => match control.try_get() {
                    Ok(Some(message)) if message == b"stop" => break 'serve "told to stop",
                    Ok(Some(message)) => {
                        eprintln!("ignored control message {message:?}: only `stop` is known")
                    }
                    Ok(None) => {}
                    Err(Error::Closed) => break 'serve "control queue closed",
                    Err(e) => or_die("control queue", Err(e)),
                },
                Wake::Deadline => break 'serve "time limit reached",
                Wake::Client(slot) => {
                    let Some(client) = clients.get_mut(slot).and_then(Option::as_mut) else {
                        continue;
                    };
                    match client.serve() {
                        Some(n) => {
                            echoed += n;
                            waiter.update(slot, client);
                        }
                        None => {
                            waiter.forget(slot);
                            clients[slot] = None;
                            free.push(slot);
                        }
                    }
                }
            }
        }
    };
    let mut clients: Vec<Client> = clients.into_iter().flatten().collect();
    drop(incoming);
    drop(listener);
    echoed += drain(&mut clients);
    for client in &clients {
        let _ = client.socket.shutdown(ShutdownType::Both);
    }
    let open = clients.len();
    drop(clients);
    println!(
        "stopped ({reason}): {served} clients served ({open} still connected, now closed), \
         {echoed} bytes echoed, {polls} polls"
    );
}

/// What one wait found ready.
enum Wake {
    Listener,
    Control,
    Deadline,
    /// The client in this slot.
    Client(usize),
}

/// How the loop waits (MODE).
enum Waiter {
    /// The `select()` shape: every pollable, every round.
    Poll,
    /// The `epoll` shape: clients that are read from are watched in `set`
    /// (their slot is the token); the slots of clients owed a write, whose
    /// `writable` waits in the call's `also` list.
    Pollset {
        set: Pollset,
        owing: BTreeSet<usize>,
    },
}

impl Waiter {
    /// Waits until something is ready.
    fn wait(&self, fixed: [&Pollable; 3], clients: &[Option<Client>]) -> Vec<Wake> {
        match self {
            Waiter::Poll => {
                let slots: Vec<usize> = (0..clients.len())
                    .filter(|&i| clients[i].is_some())
                    .collect();
                let mut list = fixed.to_vec();
                list.extend(
                    slots
                        .iter()
                        .filter_map(|&i| clients[i].as_ref().map(Client::pollable)),
                );
                poll(&list).into_iter().map(|i| wake(i, &slots)).collect()
            }
            Waiter::Pollset { set, owing } => {
                let slots: Vec<usize> = owing.iter().copied().collect();
                let mut also = fixed.to_vec();
                also.extend(
                    slots
                        .iter()
                        .filter_map(|&i| clients[i].as_ref().map(|c| &c.writable)),
                );
                let ready = or_die("wait on the pollset", set.wait(&also, READY_MAX));
                let mut wakes: Vec<Wake> = ready
                    .tokens
                    .into_iter()
                    .map(|token| Wake::Client(token as usize))
                    .collect();
                wakes.extend(ready.also.into_iter().map(|i| wake(i, &slots)));
                wakes
            }
        }
    }

    /// Says what the client in `slot` waits for next, now that it was
    /// accepted or served: to be read (watched), or to take what it is owed
    /// (its `writable`, in `also`).
    fn update(&mut self, slot: usize, client: &mut Client) {
        let Waiter::Pollset { set, owing } = self else {
            return;
        };
        let read = client.owed.is_empty() && !client.eof;
        if read == client.watched {
            return;
        }
        if read {
            or_die("watch a client", set.watch(&client.input, slot as u64));
            owing.remove(&slot);
        } else {
            set.unwatch(&client.input);
            owing.insert(slot);
        }
        client.watched = read;
    }

    /// Forgets the client in `slot`, which is closing. (Dropping its input
    /// stream takes it out of the pollset.)
    fn forget(&mut self, slot: usize) {
        if let Waiter::Pollset { owing, .. } = self {
            owing.remove(&slot);
        }
    }
}

/// What index `index` of a wait's list is: the fixed three (listener,
/// control, deadline), then the clients in `slots`.
fn wake(index: u32, slots: &[usize]) -> Wake {
    match index {
        0 => Wake::Listener,
        1 => Wake::Control,
        2 => Wake::Deadline,
        n => Wake::Client(slots[n as usize - 3]),
    }
}

/// Binds and listens, finishing each two-phase WASI operation.
fn listen(addr: SocketAddr) -> Result<TcpSocket, ErrorCode> {
    let family = match addr.ip() {
        IpAddr::V4(_) => IpAddressFamily::Ipv4,
        IpAddr::V6(_) => IpAddressFamily::Ipv6,
    };
    let socket = create_tcp_socket(family)?;
    let network = instance_network();
    socket.start_bind(&network, wasi_addr(addr))?;
    finish(&socket, || socket.finish_bind())?;
    // Room for many clients connecting at once (the default is 128).
    socket.set_listen_backlog_size(1024)?;
    socket.start_listen()?;
    finish(&socket, || socket.finish_listen())?;
    Ok(socket)
}

/// Waits out `would-block` from the finish half of a WASI socket operation.
fn finish(
    socket: &TcpSocket,
    mut step: impl FnMut() -> Result<(), ErrorCode>,
) -> Result<(), ErrorCode> {
    let ready = socket.subscribe();
    loop {
        match step() {
            Err(ErrorCode::WouldBlock) => ready.block(),
            done => return done,
        }
    }
}

/// Writes what is still owed to clients, for at most `DRAIN_NS`; returns
/// the bytes written.
fn drain(clients: &mut [Client]) -> u64 {
    let deadline = monotonic_clock::subscribe_duration(DRAIN_NS);
    let mut written = 0;
    loop {
        let owing: Vec<usize> = (0..clients.len())
            .filter(|&i| !clients[i].owed.is_empty())
            .collect();
        if owing.is_empty() {
            return written;
        }
        let mut list = vec![&deadline];
        list.extend(owing.iter().map(|&i| &clients[i].writable));
        let ready = poll(&list);
        if ready.contains(&0) {
            return written;
        }
        for index in ready {
            let client = &mut clients[owing[index as usize - 1]];
            match client.write_some() {
                Some(n) => written += n,
                // Broken: nothing more can be delivered to this one.
                None => client.owed.clear(),
            }
        }
    }
}

fn wasi_addr(addr: SocketAddr) -> IpSocketAddress {
    match addr {
        SocketAddr::V4(a) => {
            let [a0, a1, a2, a3] = a.ip().octets();
            IpSocketAddress::Ipv4(Ipv4SocketAddress {
                port: a.port(),
                address: (a0, a1, a2, a3),
            })
        }
        SocketAddr::V6(a) => {
            let [s0, s1, s2, s3, s4, s5, s6, s7] = a.ip().segments();
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port: a.port(),
                flow_info: a.flowinfo(),
                address: (s0, s1, s2, s3, s4, s5, s6, s7),
                scope_id: a.scope_id(),
            })
        }
    }
}

fn show(addr: IpSocketAddress) -> String {
    match addr {
        IpSocketAddress::Ipv4(a) => {
            let (a0, a1, a2, a3) = a.address;
            format!("{a0}.{a1}.{a2}.{a3}:{}", a.port)
        }
        IpSocketAddress::Ipv6(a) => {
            let (s0, s1, s2, s3, s4, s5, s6, s7) = a.address;
            let ip = std::net::Ipv6Addr::new(s0, s1, s2, s3, s4, s5, s6, s7);
            format!("[{ip}]:{}", a.port)
        }
    }
}
