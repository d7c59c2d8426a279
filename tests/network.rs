//! Sockets under policy, end to end: echo server workers (blocking and
//! multiplexing) reached by real TCP clients (Rust test code, `nc` if it is
//! installed, and the `tcp-client` worker), denials of bind and connect, UDP
//! and name lookup under their grants, and a server killed under its
//! clients. All traffic stays on 127.0.0.1; every loop is bounded in count
//! and time.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{denials, profile, runtime_with, spawn_under, stdout_of};
use corral::ipc::{Queue, QueueConfig};
use corral::policy::Profile;
use corral::{Event, EventLog, ExitStatus, KillReason, PolicyFile, Run, Worker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long anything in these tests may wait before it counts as a hang.
const PATIENCE: Duration = Duration::from_secs(60);

/// A server's policy: bind anywhere on 127.0.0.1 (tests take port 0 and
/// learn the port from the `listening` event) and get from `control`.
fn server_policy() -> Profile {
    profile(
        "[profiles.p.network]\nbind = [\"127.0.0.1:*\"]\n\
         [profiles.p.ipc]\nqueues = { control = [\"get\"] }\n",
    )
}

/// The address `worker` announced it listens on, waiting for the event.
async fn listening(events: &EventLog, worker: &Worker) -> SocketAddr {
    let start = Instant::now();
    loop {
        let found = events.events().into_iter().find_map(|e| match e {
            Event::Listening { name, addr, .. } if name == worker.name() => Some(addr),
            _ => None,
        });
        if let Some(addr) = found {
            return addr.parse().expect("a socket address");
        }
        assert!(
            worker.is_alive(),
            "{} ended before listening: {:?} {}",
            worker.name(),
            worker.try_status(),
            String::from_utf8_lossy(&worker.stderr())
        );
        assert!(
            start.elapsed() < PATIENCE,
            "{} never listened",
            worker.name()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Connects to a server that announced itself: the announcement comes just
/// before the `listen` call, so a refusal is retried briefly.
async fn connect(addr: SocketAddr) -> TcpStream {
    let start = Instant::now();
    loop {
        match TcpStream::connect(addr).await {
            Ok(stream) => {
                stream.set_nodelay(true).unwrap();
                return stream;
            }
            Err(e) if start.elapsed() < Duration::from_secs(5) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Err(e) => panic!("connect {addr}: {e}"),
        }
    }
}

/// Message `seq` of client `client`: 1 to 300 bytes, each byte depending on
/// both, so a byte echoed to the wrong client or out of place is caught.
fn message(client: usize, seq: usize) -> Vec<u8> {
    let len = 1 + (client * 7 + seq * 13) % 300;
    (0..len)
        .map(|i| (client * 31 + seq * 17 + i) as u8)
        .collect()
}

/// Sends `count` messages one at a time, checking every echoed byte.
async fn echo_client(addr: SocketAddr, client: usize, count: usize) -> u64 {
    let mut stream = connect(addr).await;
    let mut echo = vec![0u8; 300];
    let mut bytes = 0;
    for seq in 0..count {
        let sent = message(client, seq);
        stream.write_all(&sent).await.unwrap();
        let got = &mut echo[..sent.len()];
        stream.read_exact(got).await.unwrap();
        assert_eq!(got, &sent[..], "client {client}, message {seq}");
        bytes += sent.len() as u64;
    }
    bytes
}

async fn exits_0(worker: &Worker) {
    let status = tokio::time::timeout(PATIENCE, worker.join())
        .await
        .unwrap_or_else(|_| panic!("{} did not end", worker.name()));
    assert_eq!(
        status,
        ExitStatus::Exited { code: 0 },
        "{}: {}",
        worker.name(),
        String::from_utf8_lossy(&worker.stderr())
    );
}

fn control(run: &Run) -> Arc<Queue> {
    run.objects()
        .declare_queue("control", QueueConfig::default())
        .unwrap()
}

async fn stop(queue: &Arc<Queue>) {
    queue
        .handle()
        .put(b"stop".to_vec(), Some(PATIENCE))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn blocking_server_echoes_each_client_in_turn() {
    let (rt, events) = runtime_with(16);
    let server = spawn_under(
        &rt,
        &Run::new(),
        "echo-server",
        "blocking",
        &["127.0.0.1:0", "3"],
        &server_policy(),
    );
    let addr = listening(&events, &server).await;
    // One client at a time is served: the second waits in the backlog
    // until the first is done.
    let (a, b) = tokio::join!(echo_client(addr, 1, 200), echo_client(addr, 2, 200));
    let c = echo_client(addr, 3, 50).await;
    exits_0(&server).await;
    let out = stdout_of(&server);
    assert!(out.starts_with(&format!("listening on {addr}\n")), "{out}");
    let mut echoed: Vec<u64> = out
        .lines()
        .filter_map(|l| {
            l.strip_suffix(" bytes echoed")?
                .rsplit(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    echoed.sort();
    let mut expected = vec![a, b, c];
    expected.sort();
    assert_eq!(echoed, expected, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn mux_server_echoes_100_concurrent_clients_exactly_then_stops() {
    echoes_100_concurrent_clients_exactly_then_stops("pollset").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mux_server_in_poll_mode_echoes_100_concurrent_clients_exactly() {
    echoes_100_concurrent_clients_exactly_then_stops("poll").await;
}

/// echo-mux waiting in `mode` serves 100 clients of 1,000 messages each,
/// every echo checked.
async fn echoes_100_concurrent_clients_exactly_then_stops(mode: &str) {
    const CLIENTS: usize = 100;
    const MESSAGES: usize = 1000;
    let (rt, events) = runtime_with(16);
    let run = Run::new();
    let control = control(&run);
    let server = spawn_under(
        &rt,
        &run,
        "echo-mux",
        "mux",
        &["127.0.0.1:0", "control", "120000", mode],
        &server_policy(),
    );
    let addr = listening(&events, &server).await;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(echo_client(addr, c, MESSAGES)))
        .collect();
    let mut total = 0;
    for client in clients {
        total += tokio::time::timeout(PATIENCE, client)
            .await
            .expect("a client hung")
            .expect("a client failed");
    }
    stop(&control).await;
    exits_0(&server).await;
    // The last clients' closes may still be on their way when `stop` is.
    let out = stdout_of(&server);
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "stopped (told to stop): {CLIENTS} clients served ("
        )) && last.contains(&format!(" {total} bytes echoed, ")),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mux_server_stops_cleanly_with_clients_connected() {
    let (rt, events) = runtime_with(16);
    let run = Run::new();
    let control = control(&run);
    let server = spawn_under(
        &rt,
        &run,
        "echo-mux",
        "mux",
        &["127.0.0.1:0", "control"],
        &server_policy(),
    );
    let addr = listening(&events, &server).await;
    let mut idle = Vec::new();
    for c in 0..5 {
        let mut stream = connect(addr).await;
        stream.write_all(&message(c, 0)).await.unwrap();
        let mut echo = vec![0u8; message(c, 0).len()];
        stream.read_exact(&mut echo).await.unwrap();
        idle.push(stream);
    }
    stop(&control).await;
    exits_0(&server).await;
    assert!(
        stdout_of(&server).contains("5 clients served (5 still connected, now closed)"),
        "{}",
        stdout_of(&server)
    );
    for mut stream in idle {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("the connection stayed open")
            .expect("a clean close, not a reset");
        assert_eq!(n, 0, "end of stream");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_client_talks_to_worker_server_and_stops_it() {
    let (rt, events) = runtime_with(16);
    let run = Run::new();
    control(&run);
    let server = spawn_under(
        &rt,
        &run,
        "echo-mux",
        "mux",
        &["127.0.0.1:0", "control"],
        &server_policy(),
    );
    let addr = listening(&events, &server).await;
    let client_policy = profile(&format!(
        "[profiles.p.network]\nconnect = [\"{addr}\"]\n\
         [profiles.p.ipc]\nqueues = {{ control = [\"put\"] }}\n"
    ));
    let client = spawn_under(
        &rt,
        &run,
        "tcp-client",
        "client",
        &[&addr.to_string(), "2000", "100", "control"],
        &client_policy,
    );
    exits_0(&client).await;
    assert!(
        stdout_of(&client).starts_with("2000 messages of 100 bytes echoed intact"),
        "{}",
        stdout_of(&client)
    );
    exits_0(&server).await;
    assert!(
        stdout_of(&server).contains("stopped (told to stop): 1 clients served"),
        "{}",
        stdout_of(&server)
    );
    assert!(denials(&events.events(), "client").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn nc_talks_to_the_mux_server() {
    if std::process::Command::new("nc").arg("-h").output().is_err() {
        eprintln!("nc is not installed: skipped");
        return;
    }
    let (rt, events) = runtime_with(16);
    let run = Run::new();
    let control = control(&run);
    let server = spawn_under(
        &rt,
        &run,
        "echo-mux",
        "mux",
        &["127.0.0.1:0", "control"],
        &server_policy(),
    );
    let addr = listening(&events, &server).await;
    connect(addr).await; // listening for sure
    let text: String = (0..500).map(|i| format!("line {i} of nc\n")).collect();
    let (host, port) = (addr.ip().to_string(), addr.port().to_string());
    let sent = text.clone();
    let output = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        // -N: shut the socket down at the end of input, so the server's
        // close ends nc; -w: a bound on any wait.
        let mut nc = std::process::Command::new("nc")
            .args(["-N", "-w", "10", &host, &port])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        nc.stdin.take().unwrap().write_all(sent.as_bytes()).unwrap();
        nc.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), text);
    stop(&control).await;
    exits_0(&server).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn denied_bind_and_denied_connect_fail_with_access_denied_and_an_event() {
    let (rt, events) = runtime_with(16);
    let run = Run::new();
    control(&run);
    // The grant is for 127.0.0.1:1 only; the servers ask for another port.
    let narrow = profile(
        "[profiles.p.network]\nbind = [\"127.0.0.1:1\"]\nconnect = [\"127.0.0.1:1\"]\n\
         [profiles.p.ipc]\nqueues = { control = [\"get\"] }\n",
    );
    let mux = spawn_under(
        &rt,
        &run,
        "echo-mux",
        "mux",
        &["127.0.0.1:7009", "control"],
        &narrow,
    );
    let blocking = spawn_under(
        &rt,
        &run,
        "echo-server",
        "blocking",
        &["127.0.0.1:7009"],
        &narrow,
    );
    // A real server the client may not reach: its policy names another.
    let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = open.local_addr().unwrap().to_string();
    let client = spawn_under(
        &rt,
        &run,
        "tcp-client",
        "client",
        &[&target, "1", "8"],
        &narrow,
    );
    for (worker, error) in [
        (&mux, "access-denied"),
        (&blocking, "ermission denied"),
        (&client, "ermission denied"),
    ] {
        let status = tokio::time::timeout(PATIENCE, worker.join()).await.unwrap();
        assert_eq!(status, ExitStatus::Exited { code: 3 }, "{}", worker.name());
        let stderr = String::from_utf8_lossy(&worker.stderr()).into_owned();
        assert!(stderr.contains(error), "{}: {stderr}", worker.name());
    }
    let events = events.events();
    for server in ["mux", "blocking"] {
        assert_eq!(
            denials(&events, server),
            [(
                "network.bind".to_string(),
                "tcp listen 127.0.0.1:7009".to_string()
            )],
            "{server}"
        );
    }
    assert_eq!(
        denials(&events, "client"),
        [(
            "network.connect".to_string(),
            format!("tcp connect {target}")
        )]
    );
    assert!(
        !events.iter().any(|e| matches!(e, Event::Listening { .. })),
        "nothing listened"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_without_network_grants_is_denied_with_an_event() {
    let (rt, events) = runtime_with(16);
    let run = Run::new();
    control(&run);
    let none = profile("[profiles.p.ipc]\nqueues = { control = [\"get\"] }\n");
    let mux = spawn_under(
        &rt,
        &run,
        "echo-mux",
        "mux",
        &["127.0.0.1:7009", "control"],
        &none,
    );
    let status = tokio::time::timeout(PATIENCE, mux.join()).await.unwrap();
    assert_eq!(status, ExitStatus::Exited { code: 3 });
    assert_eq!(
        denials(&events.events(), "mux"),
        [("network".to_string(), "tcp socket".to_string())]
    );
    let probe = spawn_under(
        &rt,
        &run,
        "policy-probe",
        "probe",
        &["udp:127.0.0.1:9", "lookup:localhost"],
        &none,
    );
    exits_0(&probe).await;
    let out = stdout_of(&probe);
    assert_eq!(out.matches("\"observed\": \"denied\"").count(), 2, "{out}");
    // A refused name lookup is the resolver's failure: no event names it.
    assert_eq!(
        denials(&events.events(), "probe"),
        [("network".to_string(), "udp socket".to_string())]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_server_closes_its_clients_and_the_host_stays_up() {
    let (rt, events) = runtime_with(16);
    let run = Run::new();
    control(&run);
    let server = spawn_under(
        &rt,
        &run,
        "echo-mux",
        "doomed",
        &["127.0.0.1:0", "control"],
        &server_policy(),
    );
    let addr = listening(&events, &server).await;
    let mut clients = Vec::new();
    for c in 0..10 {
        let mut stream = connect(addr).await;
        let sent = message(c, 0);
        stream.write_all(&sent).await.unwrap();
        let mut echo = vec![0u8; sent.len()];
        stream.read_exact(&mut echo).await.unwrap();
        assert_eq!(echo, sent);
        clients.push(stream);
    }
    server.terminate();
    assert_eq!(
        tokio::time::timeout(PATIENCE, server.join()).await.unwrap(),
        ExitStatus::Killed {
            reason: KillReason::Terminated
        }
    );
    for mut stream in clients {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("the connection stayed open after its server died");
        // A close or a reset: either way, the client knows.
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    }
    // The host goes on: a new server on the same run serves as before.
    let again = spawn_under(
        &rt,
        &run,
        "echo-mux",
        "again",
        &["127.0.0.1:0", "control"],
        &server_policy(),
    );
    let addr = listening(&events, &again).await;
    echo_client(addr, 0, 100).await;
    again.terminate();
    again.join().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn udp_and_name_lookup_follow_their_grants() {
    let (rt, events) = runtime_with(16);
    let inbox = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    inbox
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let target = inbox.local_addr().unwrap().to_string();
    let probe = |name: &str, policy: &Profile| {
        spawn_under(
            &rt,
            &Run::new(),
            "policy-probe",
            name,
            &[&format!("udp:{target}"), "lookup:localhost"],
            policy,
        )
    };
    let granted = probe(
        "granted",
        &profile(&format!(
            "[profiles.p.network]\nudp = [\"{target}\"]\nlookup = true\n"
        )),
    );
    exits_0(&granted).await;
    let out = stdout_of(&granted);
    assert_eq!(out.matches("\"observed\": \"allowed\"").count(), 2, "{out}");
    let mut datagram = [0u8; 16];
    let (n, _) = inbox.recv_from(&mut datagram).unwrap();
    assert_eq!(&datagram[..n], b"probe");

    let other = format!("127.0.0.1:{}", inbox.local_addr().unwrap().port() ^ 1);
    let refused = probe(
        "refused",
        &profile(&format!("[profiles.p.network]\nudp = [\"{other}\"]\n")),
    );
    exits_0(&refused).await;
    let out = stdout_of(&refused);
    assert_eq!(out.matches("\"observed\": \"denied\"").count(), 2, "{out}");
    assert_eq!(
        denials(&events.events(), "refused"),
        [("network.udp".to_string(), format!("udp {target}"))]
    );
}

#[test]
fn example_policies_grant_the_demo_and_nothing_else() {
    let file = PolicyFile::from_file(&common::root().join("examples/echo-policy.toml")).unwrap();
    let server = file.profile(Some("server")).unwrap();
    let client = file.profile(Some("client")).unwrap();
    let net = |p: &Profile| p.policy.network.clone();
    let (s, c) = (net(&server), net(&client));
    let at = |a: &str| a.parse::<SocketAddr>().unwrap();
    use corral::policy::SocketUse::{Bind, Connect};
    assert!(s.allows(at("127.0.0.1:7007"), Bind));
    assert!(!s.allows(at("127.0.0.1:7007"), Connect));
    assert!(!s.allows(at("0.0.0.0:7007"), Bind));
    assert!(c.allows(at("127.0.0.1:7007"), Connect));
    assert!(!c.allows(at("127.0.0.1:7007"), Bind));
    assert!(!c.allows(at("127.0.0.1:22"), Connect));
    assert!(!s.lookup && !c.lookup && s.udp.is_empty() && c.udp.is_empty());
}
