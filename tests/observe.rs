//! Seeing a running host from outside (issue 18): `corral ps` and `corral
//! kill` through the control socket, and `--metrics` scraped directly, by
//! `promtool` and by a real Prometheus server. Each test has a private
//! `XDG_RUNTIME_DIR`, so hosts of parallel tests never see each other, and
//! every wait has a deadline.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::child::{Bounded, output_within};
use common::{g, shared_cache_dir, text};
use corral::observe::Snapshot;

/// How long a host or a `corral` command may take before it counts as hung.
const PATIENCE: Duration = Duration::from_secs(120);

/// A test's private world: its runtime directory and its manifest.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    /// A manifest of workers blocked on the queue `jobs`, a `gate` that
    /// sleeps until killed, and a `producer` that puts 50 messages on
    /// `backlog` (read by nobody) once the gate has ended; with `spin`, a
    /// worker that burns CPU until it is killed.
    fn new(spin: bool) -> World {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("xdg")).unwrap();
        let mut manifest = format!(
            r#"
[queues.jobs]

[queues.backlog]
capacity = 1000

[locks.file]

[[worker]]
name = "consumer"
component = "{consumer}"
count = 2
args = ["jobs"]

[[worker]]
name = "gate"
component = "{sleepy}"

[[worker]]
name = "producer"
component = "{producer}"
args = ["backlog", "50"]
after = ["gate"]
"#,
            consumer = g("consumer"),
            sleepy = g("sleepy"),
            producer = g("producer"),
        );
        if spin {
            manifest += &format!(
                "\n[[worker]]\nname = \"spin\"\ncomponent = \"{}\"\n",
                g("spin")
            );
        }
        std::fs::write(dir.path().join("watch.toml"), manifest).unwrap();
        World { dir }
    }

    fn xdg(&self) -> PathBuf {
        self.dir.path().join("xdg")
    }

    fn sockets(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(self.xdg().join("corral")) {
            Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
            Err(_) => Vec::new(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
        command
            .arg("--cache-dir")
            .arg(shared_cache_dir())
            .args(args)
            .env("XDG_RUNTIME_DIR", self.xdg())
            .env("RUST_BACKTRACE", "1");
        command
    }

    /// Runs a short `corral` command (ps, kill) to its end.
    fn corral(&self, args: &[&str]) -> Output {
        output_within(&mut self.command(args), b"", PATIENCE)
    }

    /// Starts `corral up watch.toml` with `extra` flags.
    fn up(&self, extra: &[&str]) -> Bounded {
        let manifest = self.dir.path().join("watch.toml");
        let mut args = vec!["--threads", "1", "up", manifest.to_str().unwrap()];
        args.extend(extra);
        Bounded::spawn(&mut self.command(&args), b"", PATIENCE)
    }

    /// The host's snapshot, through `corral ps HOST --json`.
    fn snapshot(&self, host: &str) -> Snapshot {
        let out = self.corral(&["ps", host, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Waits until the host's snapshot satisfies `ready`.
    fn snapshot_when(&self, host: &str, what: &str, ready: impl Fn(&Snapshot) -> bool) -> Snapshot {
        poll(what, || {
            // The host may not have made its socket yet.
            let out = self.corral(&["ps", host, "--json"]);
            let snapshot: Snapshot = serde_json::from_slice(&out.stdout).ok()?;
            ready(&snapshot).then_some(snapshot)
        })
    }
}

/// Retries `attempt` every 50 ms until it gives a value; fails the test
/// past the deadline.
fn poll<T>(what: &str, mut attempt: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = attempt() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn worker<'a>(snapshot: &'a Snapshot, name: &str) -> &'a corral::observe::WorkerSnapshot {
    snapshot
        .workers
        .iter()
        .find(|w| w.name == name)
        .unwrap_or_else(|| panic!("no worker {name} in {snapshot:#?}"))
}

fn consumers_waiting(snapshot: &Snapshot) -> bool {
    ["consumer-1", "consumer-2"].iter().all(|name| {
        snapshot
            .workers
            .iter()
            .any(|w| w.name == *name && w.waiting_on.as_deref() == Some("queue.get jobs"))
    })
}

#[test]
fn ps_shows_the_host_and_what_its_workers_wait_on_and_kill_stops_them() {
    let world = World::new(false);
    let host = world.up(&[]);
    let pid = host.id().to_string();
    let snapshot =
        world.snapshot_when("watch", "both consumers blocked on jobs", consumers_waiting);
    let consumer = worker(&snapshot, "consumer-1");
    assert_eq!(consumer.state, "waiting");
    assert_eq!(consumer.group, "consumer");
    assert!(consumer.memory_bytes > 0, "{consumer:?}");
    let jobs = snapshot.objects.iter().find(|o| o.name == "jobs").unwrap();
    assert_eq!((jobs.kind.as_str(), jobs.depth), ("queue", Some(0)));
    let lock = snapshot.objects.iter().find(|o| o.name == "file").unwrap();
    assert_eq!((lock.kind.as_str(), lock.holder), ("lock", None));
    // The producer waits for the gate: it has not started.
    assert!(snapshot.workers.iter().all(|w| w.name != "producer"));

    // The list of hosts, as a table and as JSON.
    let out = world.corral(&["ps"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let table = text(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.contains(" watch "))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(row.trim_start().starts_with(&pid), "{table}");
    assert!(row.contains(" up "), "{table}");
    let out = world.corral(&["ps", "--json"]);
    let hosts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hosts[0]["pid"].to_string(), pid);
    assert_eq!(hosts[0]["workers_alive"], 3);

    // One host's table, by pid.
    let out = world.corral(&["ps", &pid]);
    let table = text(&out.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("consumer-2") && l.contains("queue.get jobs")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("lock") && l.contains("free")),
        "{table}"
    );

    // Killing the gate lets the producer run: 50 messages on the backlog.
    let out = world.corral(&["kill", "watch", "gate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "terminated: gate\n");
    let snapshot = world.snapshot_when("watch", "the producer's 50 messages", |s| {
        s.objects
            .iter()
            .any(|o| o.name == "backlog" && o.depth == Some(50))
    });
    assert_eq!(
        worker(&snapshot, "gate").status.as_deref(),
        Some("killed: terminated")
    );
    let backlog = snapshot
        .objects
        .iter()
        .find(|o| o.name == "backlog")
        .unwrap();
    assert_eq!((backlog.puts, backlog.gets), (Some(50), Some(0)));

    // A worker that is not there, or no worker at all, is refused.
    let out = world.corral(&["kill", "watch", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no live worker or pool named `nobody`"),
        "{}",
        text(&out.stderr)
    );
    let out = world.corral(&["kill", "watch"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));

    // --all ends the run; the host says who asked.
    let out = world.corral(&["kill", &pid, "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "terminated: consumer-1 consumer-2\n");
    let out = host.finish();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(137), "{stderr}");
    assert!(
        stderr.contains("corral: terminating gate (corral kill, from pid"),
        "{stderr}"
    );
    assert!(
        stderr.contains("corral: terminating consumer-1, consumer-2 (corral kill"),
        "{stderr}"
    );
    assert!(
        stderr.contains("consumer-1  killed: terminated"),
        "{stderr}"
    );

    // Its socket went with it: the host is no longer there to ask.
    assert_eq!(world.sockets(), Vec::<PathBuf>::new());
    let out = world.corral(&["kill", "watch", "--all"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "corral: no running host `watch` (`corral ps` lists them)\n"
    );
    let out = world.corral(&["ps"]);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), String::new())
    );
}

#[test]
fn sockets_of_dead_hosts_are_reported_stale_and_removed() {
    let world = World::new(false);
    let host = world.up(&[]);
    let pid = host.id().to_string();
    world.snapshot_when(&pid, "the host's socket", |_| true);
    let sockets = world.sockets();
    assert_eq!(sockets.len(), 1, "{sockets:?}");
    let meta = std::fs::metadata(&sockets[0]).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir = std::fs::metadata(world.xdg().join("corral")).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);

    // SIGKILL: the host cannot remove its socket.
    host.kill();
    assert_eq!(world.sockets(), sockets);
    let out = world.corral(&["kill", &pid, "--all"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!("corral: host {pid} (watch) has exited; removed its stale socket\n")
    );
    assert_eq!(world.sockets(), Vec::<PathBuf>::new());

    // A leftover socket file nobody listens on.
    let leftover = world.xdg().join("corral/4000000-ghost.sock");
    drop(std::os::unix::net::UnixListener::bind(&leftover).unwrap());
    let out = world.corral(&["ps"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "");
    assert_eq!(
        text(&out.stderr),
        "corral: removed the stale socket of host 4000000 (ghost): its process is gone\n"
    );
    assert!(!leftover.exists());
}

#[test]
fn malformed_requests_get_an_error_and_the_host_goes_on() {
    let world = World::new(false);
    let host = world.up(&[]);
    world.snapshot_when("watch", "both consumers blocked on jobs", consumers_waiting);
    let socket = world.sockets().pop().unwrap();
    let stream = UnixStream::connect(&socket).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut lines = BufReader::new(stream.try_clone().unwrap());
    let mut exchange = |request: &[u8]| {
        (&stream).write_all(request).unwrap();
        let mut reply = String::new();
        lines.read_line(&mut reply).unwrap();
        serde_json::from_str::<serde_json::Value>(&reply).unwrap()
    };
    for bad in [
        &b"not json\n"[..],
        b"{\"op\":\"format-disk\"}\n",
        b"\xff\xfe\n",
        b"{\"op\":\"kill\",\"workers\":7}\n",
    ] {
        let reply = exchange(bad);
        assert_eq!(reply["ok"], false, "{reply}");
        assert!(
            reply["error"].as_str().unwrap().starts_with("bad request"),
            "{reply}"
        );
    }
    let reply = exchange(b"{\"op\":\"hello\"}\n");
    assert_eq!(reply["host"]["name"], "watch", "{reply}");
    // A line past the bound is refused and the connection closed.
    let huge = vec![b'x'; 200_000];
    let _ = (&stream).write_all(&huge);
    let mut rest = String::new();
    let _ = lines.read_to_string(&mut rest);
    assert!(rest.contains("request longer than 65536 bytes"), "{rest}");
    // The host still answers, and its workers still wait.
    let snapshot = world.snapshot("watch");
    assert!(consumers_waiting(&snapshot), "{snapshot:#?}");
    let out = world.corral(&["kill", "watch", "--all"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(host.finish().status.code(), Some(137));
}

/// `GET /metrics` from `addr`: the body.
fn scrape(addr: &str) -> String {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    body.to_string()
}

/// Every sample of a scrape, `name{labels}` to value, checking each line
/// parses: a comment, or a series and a number.
fn samples(text: &str) -> Vec<(String, f64)> {
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
            let value = value
                .parse()
                .unwrap_or_else(|_| panic!("not a number: {line}"));
            (series.to_string(), value)
        })
        .collect()
}

fn sample(text: &str, series: &str) -> f64 {
    samples(text)
        .into_iter()
        .find(|(s, _)| s == series)
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
        .1
}

/// The metrics address a host reports in `corral ps --json`.
fn metrics_addr(world: &World) -> String {
    poll("the host's metrics address", || {
        let out = world.corral(&["ps", "--json"]);
        let hosts: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(hosts[0]["metrics"].as_str()?.to_string())
    })
}

#[test]
fn metrics_show_queue_depth_and_cpu_moving() {
    let world = World::new(true);
    let host = world.up(&["--metrics", "127.0.0.1:0"]);
    let addr = metrics_addr(&world);
    world.snapshot_when("watch", "both consumers blocked on jobs", consumers_waiting);
    let first = scrape(&addr);
    let depth = "corral_ipc_depth{kind=\"queue\",name=\"backlog\"}";
    let cpu = "corral_worker_cpu_seconds_total{group=\"spin\"}";
    assert_eq!(sample(&first, depth), 0.0);
    assert_eq!(
        sample(
            &first,
            "corral_workers{group=\"consumer\",state=\"waiting\"}"
        ),
        2.0
    );
    assert_eq!(
        sample(&first, "corral_ipc_waiters{kind=\"queue\",name=\"jobs\"}"),
        2.0
    );
    assert_eq!(sample(&first, "corral_host_workers_alive"), 4.0);
    let cpu_before = sample(&first, cpu);

    let out = world.corral(&["kill", "watch", "gate"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let second = poll("the backlog's depth at 50", || {
        let text = scrape(&addr);
        (sample(&text, depth) == 50.0).then_some(text)
    });
    assert!(
        sample(&second, cpu) > cpu_before,
        "{cpu_before} then\n{second}"
    );
    assert_eq!(
        sample(
            &second,
            "corral_worker_exits_total{group=\"gate\",status=\"killed-terminated\"}"
        ),
        1.0
    );
    assert_eq!(
        sample(
            &second,
            "corral_ipc_operations_total{kind=\"queue\",name=\"backlog\",op=\"put\"}"
        ),
        50.0
    );
    assert!(
        !second.contains("worker=\""),
        "per-worker series only when asked"
    );
    promtool_accepts(&second);

    let out = world.corral(&["kill", "watch", "--all"]);
    assert_eq!(out.status.code(), Some(0));
    let out = host.finish();
    assert!(text(&out.stderr).starts_with(&format!("corral: metrics at http://{addr}/metrics\n")));
}

#[test]
fn metrics_per_worker_only_when_asked_and_a_taken_port_is_an_error() {
    let world = World::new(false);
    let host = world.up(&["--metrics", "127.0.0.1:0", "--metrics-per-worker"]);
    let addr = metrics_addr(&world);
    world.snapshot_when("watch", "both consumers blocked on jobs", consumers_waiting);
    let text_of = scrape(&addr);
    sample(
        &text_of,
        "corral_worker_instance_memory_bytes{group=\"consumer\",worker=\"consumer-2\"}",
    );

    // The same address again: the run is refused before any worker starts.
    let out = output_within(
        &mut world.command(&["run", "--metrics", &addr, &g("hello")]),
        b"",
        PATIENCE,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).starts_with(&format!("corral: --metrics {addr}: cannot listen there")),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(text(&out.stdout), "", "no worker ran");
    let out = world.corral(&["kill", "watch", "--all"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(host.finish().status.code(), Some(137));
}

/// `promtool check metrics`, if Prometheus is installed. Its linter reads
/// the classic text format, where a counter's help names its `_total`
/// series; OpenMetrics names the family instead, so those two notes are
/// expected. Anything else (a parse error above all) fails.
fn promtool_accepts(metrics: &str) {
    let Some(promtool) = which("promtool") else {
        eprintln!(
            "skipping promtool check: promtool is not installed (apt-get install prometheus)"
        );
        return;
    };
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = text(&out.stdout) + &text(&out.stderr);
    let unexpected: Vec<&str> = report
        .lines()
        .filter(|l| !(l.starts_with("corral_") && l.ends_with("_total no help text")))
        .collect();
    assert!(unexpected.is_empty(), "promtool:\n{report}");
    assert!(
        matches!(out.status.code(), Some(0 | 3)),
        "promtool:\n{report}"
    );
}

fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(tool))
        .find(|path| path.is_file())
}

/// A real Prometheus server scrapes a running `corral up` every second;
/// its query API then shows the backlog's depth and the spinner's CPU.
#[test]
fn prometheus_scrapes_a_running_host() {
    let Some(prometheus) = which("prometheus") else {
        eprintln!("skipping: prometheus is not installed (apt-get install prometheus)");
        return;
    };
    let world = World::new(true);
    let host = world.up(&["--metrics", "127.0.0.1:0"]);
    let target = metrics_addr(&world);
    let config = world.dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: corral\n    \
             static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let mut server = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            world.dir.path().join("tsdb").display()
        ))
        .arg("--web.listen-address=127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let server_guard = KillOnDrop(server.id());
    // Prometheus logs the port it got: `msg="Listening on" address=...`.
    let (send, found) = std::sync::mpsc::channel();
    let log = server.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(log).lines().map_while(Result::ok) {
            if line.contains("msg=\"Listening on\"")
                && let Some(addr) = line.split("address=").nth(1)
            {
                let _ = send.send(addr.trim().to_string());
            }
        }
    });
    let api = found
        .recv_timeout(PATIENCE)
        .expect("prometheus said where it listens");
    let query = |promql: &str| -> Option<f64> {
        let mut stream = std::net::TcpStream::connect(&api).ok()?;
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        write!(
            stream,
            "GET /api/v1/query?query={encoded} HTTP/1.1\r\nHost: {api}\r\nConnection: close\r\n\r\n"
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let body: serde_json::Value =
            serde_json::from_str(response.split_once("\r\n\r\n")?.1).ok()?;
        body["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    };
    let depth = "corral_ipc_depth{name=\"backlog\"}";
    assert_eq!(poll("Prometheus's first scrape", || query(depth)), 0.0);
    let out = world.corral(&["kill", "watch", "gate"]);
    assert_eq!(out.status.code(), Some(0));
    poll("the backlog's depth in Prometheus", || {
        (query(depth)? == 50.0).then_some(())
    });
    let cpu = "corral_worker_cpu_seconds_total{group=\"spin\"}";
    let first = poll("the spinner's CPU time in Prometheus", || {
        query(cpu).filter(|&s| s > 0.0)
    });
    poll("the spinner's CPU time growing", || {
        query(cpu).filter(|&s| s > first)
    });
    poll("the scrape target up", || {
        (query("up{job=\"corral\"}")? == 1.0).then_some(())
    });
    drop(server_guard);
    let _ = server.wait();
    let out = world.corral(&["kill", "watch", "--all"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(host.finish().status.code(), Some(137));
}

/// Kills a process (SIGKILL) when dropped, so a failed test leaves no
/// Prometheus behind.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: the pid is our child's, not reaped before this runs.
        unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
    }
}

#[test]
fn kill_terminates_a_pool_and_what_is_left_of_its_input_is_not_run() {
    let world = World::new(false);
    let input = "7\n".repeat(3_000_000);
    let args = ["pool", &g("square"), "--workers", "2"];
    let pool = Bounded::spawn(&mut world.command(&args), input.as_bytes(), PATIENCE);
    let snapshot = world.snapshot_when("square", "the pool's first tasks and CPU", |s| {
        s.pools.iter().any(|p| p.succeeded > 0 && p.cpu_ns > 0)
    });
    assert_eq!(
        (snapshot.pools[0].name.as_str(), snapshot.pools[0].size),
        ("square", 2)
    );
    let out = world.corral(&["kill", "square", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "terminated: square\n");
    let out = pool.finish();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("corral: terminating pool square (corral kill, from pid"),
        "{stderr}"
    );
    assert!(
        stderr.contains("corral: the pool was terminated at line "),
        "{stderr}"
    );
    let stdout = text(&out.stdout);
    let results = stdout.lines().count();
    assert!(results > 0 && results < 3_000_000, "{results} results");
    assert!(stdout.lines().all(|l| l == "49"));
}

/// `corral pool` reading a terminal-like stdin that stays open: each
/// result reaches stdout while the pool waits for the next line.
fn waiting_pool(world: &World) -> Bounded {
    let args = ["pool", &g("square"), "--workers", "1"];
    let mut pool = Bounded::spawn_stdin_open(&mut world.command(&args), PATIENCE);
    pool.write_stdin(b"3\n");
    pool.wait_for_line(|l| l == "9\n");
    pool.write_stdin(b"4\n");
    pool.wait_for_line(|l| l == "16\n");
    pool
}

#[test]
fn kill_ends_a_pool_that_waits_for_input() {
    let world = World::new(false);
    let pool = waiting_pool(&world);
    // Its one instance counts among the host's workers.
    let out = world.corral(&["ps", "--json"]);
    let hosts: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(hosts[0]["workers_alive"], 1, "{hosts}");
    let out = world.corral(&["kill", "square", "--all"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = pool.finish();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("corral: the pool was terminated\n"),
        "{stderr}"
    );
    assert_eq!(text(&out.stdout), "9\n16\n");
    assert!(world.sockets().is_empty(), "{:?}", world.sockets());
}

#[test]
fn sigint_and_sigterm_stop_a_pool_like_a_program() {
    for (signal, code, said) in [
        (libc::SIGINT, 130, "interrupted"),
        (libc::SIGTERM, 143, "terminated (SIGTERM)"),
    ] {
        let world = World::new(false);
        let mut pool = waiting_pool(&world);
        pool.signal(signal);
        let out = pool.finish();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{stderr}");
        assert!(
            stderr.contains(&format!("corral: {said}: the pool stops; ")),
            "{stderr}"
        );
        assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
        assert_eq!(text(&out.stdout), "9\n16\n");
        assert!(world.sockets().is_empty(), "{:?}", world.sockets());
    }
}

/// A private tmux server for one test, killed when dropped.
struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = output_within(
            Command::new("tmux").arg("-L").arg(&self.0).args(args),
            b"",
            PATIENCE,
        );
        assert!(out.status.success(), "tmux {args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "top"])
    }

    /// Waits for a screen that `ready` accepts; fails showing the last one.
    fn screen_when(&self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let screen = self.screen();
            if ready(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.0, "kill-server"])
            .stderr(Stdio::null())
            .status();
    }
}

#[test]
fn top_shows_the_workers_live_sorts_survives_a_tiny_terminal_and_quits_on_q() {
    if which("tmux").is_none() {
        eprintln!("skipping: tmux is not installed (apt-get install tmux)");
        return;
    }
    let world = World::new(true);
    let host = world.up(&[]);
    world.snapshot_when("watch", "both consumers blocked on jobs", consumers_waiting);
    let tmux = Tmux(format!("corral-top-{}", std::process::id()));
    // The shell says how top ended, on the screen it left behind.
    // The shell writes how top ended to a file.
    let status = world.dir.path().join("top.status");
    let top = format!(
        "{} top watch --interval 200ms; echo $? > {}",
        env!("CARGO_BIN_EXE_corral"),
        status.display()
    );
    let xdg = format!("XDG_RUNTIME_DIR={}", world.xdg().display());
    tmux.run(&[
        "new-session",
        "-d",
        "-x",
        "120",
        "-y",
        "40",
        "-s",
        "top",
        "-e",
        &xdg,
        &top,
    ]);
    // When top ends, its pane stays, to show what it left on the screen.
    tmux.run(&["set-option", "-t", "top", "remain-on-exit", "on"]);
    let screen = tmux.screen_when("top's tables", |s| {
        s.contains("workers, by CPU") && s.contains("queue.get jobs") && s.contains("backlog")
    });
    // Sorted by CPU: the spinner is the first worker.
    let first = screen
        .lines()
        .skip_while(|l| !l.contains("NAME"))
        .nth(1)
        .unwrap_or_default();
    assert!(first.contains("spin"), "{screen}");
    // The objects pane: rates, and who waits on `jobs` (both consumers).
    let screen = tmux.screen_when("the waiters on jobs", |s| {
        s.lines()
            .any(|l| l.contains(" jobs ") && l.contains("2 waiting (longest "))
    });
    assert!(screen.contains("PUT/S"), "{screen}");
    assert!(screen.contains("no denials in the last minute"), "{screen}");
    tmux.run(&["send-keys", "-t", "top", "m"]);
    tmux.screen_when("the memory order", |s| s.contains("workers, by memory"));

    // A terminal too small for anything: top goes on, and comes back.
    tmux.run(&["resize-window", "-t", "top", "-x", "12", "-y", "3"]);
    std::thread::sleep(Duration::from_millis(500));
    tmux.run(&["resize-window", "-t", "top", "-x", "120", "-y", "40"]);
    tmux.screen_when("top redrawn after the resize", |s| s.contains("consumer-2"));
    assert!(!status.exists(), "top ended in a tiny terminal");

    tmux.run(&["send-keys", "-t", "top", "q"]);
    let ended = poll("top to quit", || {
        std::fs::read_to_string(&status)
            .ok()
            .filter(|s| s.ends_with('\n'))
    });
    assert_eq!(ended, "0\n");
    let screen = tmux.screen();
    assert!(
        !screen.contains("workers, by"),
        "the terminal was not restored:\n{screen}"
    );

    let out = world.corral(&["kill", "watch", "--all"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(host.finish().status.code(), Some(137));
}
