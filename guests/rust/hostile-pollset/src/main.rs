//! A hostile worker for `corral:worker/pollset`: each mode abuses the
//! interface one way and prints what it got, one line per check, so the
//! test (tests/pollset.rs) can say which went wrong. All traffic stays on
//! 127.0.0.1, over a connection the worker makes to itself.
//!
//! - `abuse`: bad arguments (`max` 0, nothing to wait for, a stream that is
//!   not TCP), one stream watched a million times across two sets, a stream
//!   dropped while watched, `max` of `u32::MAX`, an `also` list of 10,000
//!   entries, and that readiness stays until a read takes the data.
//! - `sets-forever`: creates pollsets without dropping any until one fails;
//!   prints `sets N` and the error.
//! - `many-writable N`: opens N connections, waits until each is writable,
//!   then asks every one how much it may write (`check-write`) in one go,
//!   and prints how many said 0. A socket checked late in a long run of
//!   host calls must not look unwritable because the host's task has run
//!   long (tokio's cooperative budget).
//! - `wait-forever`: watches a connection that never sends, prints
//!   `waiting`, and waits with nothing else to end the wait: only a kill
//!   ends it.

use corral_guest::pollset::Pollset;
use corral_guest::wasi::cli::stdin::get_stdin;
use corral_guest::wasi::clocks::monotonic_clock;
use corral_guest::wasi::io::poll::Pollable;
use corral_guest::wasi::io::streams::{InputStream, OutputStream};
use corral_guest::wasi::sockets::instance_network::instance_network;
use corral_guest::wasi::sockets::network::{
    IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Network,
};
use corral_guest::wasi::sockets::tcp::TcpSocket;
use corral_guest::wasi::sockets::tcp_create_socket::create_tcp_socket;
use corral_guest::{arg, or_die};

/// `result`'s value, or the worker ends saying what failed (exit 1).
fn must<T, E: std::fmt::Debug>(what: &str, result: Result<T, E>) -> T {
    result.unwrap_or_else(|e| {
        eprintln!("{what}: {e:?}");
        std::process::exit(1)
    })
}

fn main() {
    match arg::<String>(1, String::new()).as_str() {
        "abuse" => abuse(),
        "sets-forever" => sets_forever(),
        "wait-forever" => wait_forever(),
        "many-writable" => many_writable(arg(2, 200)),
        other => {
            eprintln!(
                "unknown mode `{other}`: abuse | sets-forever | wait-forever | many-writable [N]"
            );
            std::process::exit(2);
        }
    }
}

/// Both ends of a TCP connection to itself. Fields drop in order: streams
/// before their sockets, as WASI requires.
struct Pair {
    server_in: Option<InputStream>,
    _server_out: OutputStream,
    client_in: InputStream,
    client_out: OutputStream,
    _server: TcpSocket,
    _client: TcpSocket,
    _listener: TcpSocket,
}

/// A listener on 127.0.0.1 with room for `backlog` pending connections,
/// its address, and its pollable (ready when a connection waits).
fn listening(network: &Network, backlog: u64) -> (TcpSocket, IpSocketAddress, Pollable) {
    let listener = must("socket", create_tcp_socket(IpAddressFamily::Ipv4));
    let any = IpSocketAddress::Ipv4(Ipv4SocketAddress {
        port: 0,
        address: (127, 0, 0, 1),
    });
    must("bind", listener.start_bind(network, any));
    let ready = listener.subscribe();
    ready.block();
    must("bind", listener.finish_bind());
    must("listen", listener.set_listen_backlog_size(backlog));
    must("listen", listener.start_listen());
    ready.block();
    must("listen", listener.finish_listen());
    let addr = must("address", listener.local_address());
    (listener, addr, ready)
}

fn connected() -> Pair {
    let network = instance_network();
    let (listener, addr, ready) = listening(&network, 16);

    let client = must("socket", create_tcp_socket(IpAddressFamily::Ipv4));
    must("connect", client.start_connect(&network, addr));
    let connecting = client.subscribe();
    connecting.block();
    let (client_in, client_out) = must("connect", client.finish_connect());
    ready.block();
    let (server, server_in, server_out) = must("accept", listener.accept());
    drop((ready, connecting));
    Pair {
        server_in: Some(server_in),
        _server_out: server_out,
        client_in,
        client_out,
        _server: server,
        _client: client,
        _listener: listener,
    }
}

fn abuse() {
    let set = or_die("create", Pollset::create());
    let timer = monotonic_clock::subscribe_duration(0);
    println!("max 0: {:?}", set.wait(&[&timer], 0).map(|r| r.tokens));
    println!(
        "nothing to wait for: {:?}",
        set.wait(&[], 1).map(|r| r.tokens)
    );
    let stdin = get_stdin();
    println!("watch stdin: {:?}", set.watch(&stdin, 1));
    set.unwatch(&stdin);
    println!("unwatch stdin: ok, len {}", set.len());

    let mut pair = connected();
    let server_in = pair.server_in.as_ref().unwrap();
    let other = or_die("create", Pollset::create());
    for i in 0..1_000_000u64 {
        let to = if i % 2 == 0 { &set } else { &other };
        or_die("watch", to.watch(server_in, i));
    }
    println!("a million watches: len {} and {}", set.len(), other.len());
    other.unwatch(server_in);
    println!("unwatched: len {} and {}", set.len(), other.len());

    // A new connection may look readable until a first read finds nothing,
    // as its `wasi:io` pollable does; after that read, the timer ends an
    // idle wait, with no token.
    or_die("watch", set.watch(server_in, 7));
    println!(
        "first read: {} bytes",
        must("read", server_in.read(64)).len()
    );
    let short = monotonic_clock::subscribe_duration(20_000_000);
    let ready = or_die("wait", set.wait(&[&short], 16));
    println!("idle: tokens {:?} also {:?}", ready.tokens, ready.also);

    must("send", pair.client_out.blocking_write_and_flush(b"ping"));
    let far = monotonic_clock::subscribe_duration(10_000_000_000);
    let ready = or_die("wait", set.wait(&[&far], u32::MAX));
    println!("sent: tokens {:?} also {:?}", ready.tokens, ready.also);
    let ready = or_die("wait", set.wait(&[&far], 16));
    println!("not read yet: tokens {:?}", ready.tokens);
    // With a token ready, `also` is looked at without waiting. A zero timer
    // is not ready at its first look (wasmtime-wasi yields once there), so
    // it shows at the second.
    let first = or_die("wait", set.wait(&[&far, &timer], 16));
    let ready = or_die("wait", set.wait(&[&far, &timer], 16));
    println!(
        "both: tokens {:?} also {:?}, then tokens {:?} also {:?}",
        first.tokens, first.also, ready.tokens, ready.also
    );
    let got = must("read", server_in.read(64));
    println!("read {:?}", String::from_utf8_lossy(&got));
    // As with a `wasi:io` pollable, the stream looks readable until a read
    // finds nothing.
    println!(
        "read again: {} bytes",
        must("read", server_in.read(64)).len()
    );
    let short = monotonic_clock::subscribe_duration(20_000_000);
    let ready = or_die("wait", set.wait(&[&short], 16));
    println!("drained: tokens {:?} also {:?}", ready.tokens, ready.also);

    let many: Vec<&_> = std::iter::repeat_n(&timer, 10_000).collect();
    let ready = or_die("wait", set.wait(&many, 16));
    println!("10000 also: {} ready", ready.also.len());

    drop(pair.server_in.take());
    println!("stream dropped: len {}", set.len());
    drop(pair.client_in);
    println!("ok");
}

fn sets_forever() {
    let mut sets = Vec::new();
    loop {
        match Pollset::create() {
            Ok(set) => sets.push(set),
            Err(e) => {
                println!("sets {}: {e:?}", sets.len());
                sets.pop();
                println!("after dropping one: {:?}", Pollset::create().map(|_| ()));
                return;
            }
        }
    }
}

fn wait_forever() {
    let pair = connected();
    let set = or_die("create", Pollset::create());
    let input = pair.server_in.as_ref().unwrap();
    or_die("watch", set.watch(input, 1));
    // See `abuse`: the first read makes the connection's readiness true.
    must("read", input.read(64));
    println!("waiting");
    let ready = set.wait(&[], 16);
    println!("woke: {:?}", ready.map(|r| r.tokens));
}

fn many_writable(n: usize) {
    let network = instance_network();
    let (_listener, addr, _ready) = listening(&network, n as u64 + 16);
    let mut held = Vec::new();
    for _ in 0..n {
        let client = must("socket", create_tcp_socket(IpAddressFamily::Ipv4));
        must("connect", client.start_connect(&network, addr));
        client.subscribe().block();
        let (input, output) = must("connect", client.finish_connect());
        output.subscribe().block();
        held.push((input, output, client));
    }
    let zero = held
        .iter()
        .filter(|(_, output, _)| output.check_write().map_or(true, |n| n == 0))
        .count();
    println!("{n} connections, {zero} said 0");
}
