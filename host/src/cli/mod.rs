//! The `corral` command line: a thin client of the library.
//!
//! Exit codes (also in `corral --help`):
//! 0 every worker exited 0 · 1-255 the first failing worker's own exit code ·
//! 2 bad input or usage · 3 a worker failed to start · 130 interrupted ·
//! 134 a worker trapped · 137 a worker was killed by a limit · 141 a worker
//! wrote to a stdout or stderr nobody reads (as SIGPIPE) · 143 terminated.

mod compile;
mod control;
mod feeds;
mod hosts;
mod inspect;
mod launch;
mod new;
mod observers;
mod policy;
mod pool;
mod probe;
mod restart;
mod signals;
mod summary;
mod top;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::output::ConsoleStyle;
use crate::runtime::{CompileCache, EngineOptions, RuntimeConfig};
use crate::units::{parse_duration, parse_size};
use crate::vfs::{MountSource, MountSpec};
use observers::ObserveArgs;
use pool::PoolArgs;

const EXIT_CODES: &str = "\
Exit status:
  0        every worker exited 0
  1-255    the exit code of the first worker (in start order) that failed
  2        bad input: unreadable or invalid file, bad manifest, bad option
  3        a worker failed to start (e.g. the host is at capacity)
  130      interrupted (Ctrl-C, SIGINT): workers were terminated
  134      a worker trapped
  137      a worker was killed by a limit (memory, CPU time, timeout)
  141      a worker wrote to a stdout or stderr nobody reads any more, as a
           program killed by SIGPIPE (`corral run tool.wasm | head -n 1`)
  143      terminated (SIGTERM): workers were terminated";

/// Run WebAssembly components as sandboxed workers.
#[derive(Debug, Parser)]
#[command(name = "corral", version, about, after_help = EXIT_CODES)]
pub struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct GlobalArgs {
    /// Where compiled components are cached [default: the user's cache dir]
    #[arg(long, global = true, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile every component afresh and keep nothing on disk
    #[arg(long, global = true)]
    no_cache: bool,
    /// Print lifecycle events (started, exited, loaded) as JSON lines on stderr
    #[arg(long, global = true, value_name = "FORMAT")]
    events: Option<EventFormat>,
    /// Print only worker output and failures, no summary
    #[arg(short, long, global = true)]
    quiet: bool,
    /// When to color worker name prefixes
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    color: ColorChoice,
    /// How many workers may be alive at once in this host [default: what the
    /// run needs: its workers, pool instances and the descendants their
    /// spawn grants allow, or 12000]. Each is a slot reserved at start
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_workers: Option<u32>,
    /// OS threads that run workers [default: $TOKIO_WORKER_THREADS, else one per
    /// core]. One thread gives the lowest latency between two workers that
    /// talk to each other (a pipe round trip); more give throughput
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// After SIGINT or SIGTERM, how long workers have to finish up before
    /// they are terminated (a second signal ends the wait); 0: at once
    #[arg(long, global = true, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    shutdown_grace: Duration,
}

/// The worker thread count: `--threads`, else `TOKIO_WORKER_THREADS` (which
/// Tokio would read itself, but would reject a bad value with a panic), else
/// Tokio's default of one per core (`None`).
fn worker_threads(flag: Option<u16>) -> Result<Option<usize>, String> {
    if let Some(n) = flag {
        return Ok(Some(n.into()));
    }
    match std::env::var("TOKIO_WORKER_THREADS") {
        Ok(value) => match value.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(format!(
                "TOKIO_WORKER_THREADS must be a number of threads above 0, not `{value}`"
            )),
        },
        Err(_) => Ok(None),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EventFormat {
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a component (or preview1 module, or .wat) as one or more workers
    #[command(after_help = "Examples:
  corral run hello.wasm
  corral run hello.wasm -n 10 --name hello          # hello-1 .. hello-10
  corral run app.wasm --env LANG=C --env HOME -- --verbose input.txt
  corral run untrusted.wasm --memory 64MiB --cpu 2s --timeout 10s
  corral run tool.wasm --mount ./data:/data:ro --mount @scratch:/tmp
  corral run tool.wasm --dir .::/work < in.bin > out.bin   # as `wasmtime run`
  corral run writer.wasm -n 4 --mount @shared:/ --vfs-save ./out")]
    Run(RunArgs),
    /// Start every worker of a manifest (corral.toml) and wait for them all
    #[command(after_help = "Example:
  corral up examples/hello.toml

Manifest:
  [defaults]              # optional, for every worker
  memory = \"64MiB\"
  timeout = \"10s\"

  [[worker]]
  name = \"hello\"
  component = \"hello.wasm\"  # relative to the manifest
  count = 10                # hello-1 .. hello-10
  args = [\"a\"]
  env = { K = \"V\" }
  cpu = \"2s\"
  prefix = false            # output as it is, not prefixed [hello-3]

  [[pool]]                # a task component as a pipeline stage
  name = \"square\"
  component = \"square.wasm\"
  workers = 4
  input = \"numbers\"       # each message is one task (declared in [queues])
  output = \"squares\"      # each result is put here, in input order
  stops = 1               # empty messages put on output when the input ends
  producers = [\"gen\"]     # workers that feed input [default: every worker]

  [backend]               # share queues, locks... with other hosts (Redis)
  url = \"redis://127.0.0.1:6379/0\"
  namespace = \"shop\"

A pool's input ends at an empty message, when the queue is closed and
drained, or when its producers have ended and the queue is empty.")]
    Up {
        /// The manifest file
        #[arg(value_name = "MANIFEST", default_value = "corral.toml")]
        manifest: PathBuf,
        #[command(flatten)]
        fs: FsArgs,
        #[command(flatten)]
        backend: BackendArgs,
        #[command(flatten)]
        observe: ObserveArgs,
    },
    /// Run a task component over every input line with a pool of instances
    #[command(after_help = "Examples:
  seq 1 100 | corral pool square.wasm                 # 100 squares, in order
  corral pool wordcount.wasm --input docs.txt --output counts.txt --workers 4
  corral pool task.wasm --input jobs.jsonl --json --unordered --chunk 16

Each input line is one task (its raw bytes, or with --json a JSON value).
Output: one line per successful task, in input order unless --unordered;
with --json, one object per task: {\"line\": N, \"ok\": ...} or {\"line\": N, \"error\": ...}.
Exit status: 0 all tasks succeeded, 1 some task failed, 2 bad input lines.")]
    Pool(PoolArgs),
    /// List the running hosts (run, up, pool) of this user, or one host's
    /// workers and named objects
    #[command(after_help = "Examples:
  corral ps                    # PID NAME CMD WORKERS UPTIME METRICS
  corral ps shop               # the workers of the host running shop.toml
  corral ps 4242 --json        # its whole snapshot

Hosts are found by their control sockets in $XDG_RUNTIME_DIR/corral/ (else
/tmp/corral-$UID/); the socket of a host that is gone is removed.")]
    Ps(hosts::PsArgs),
    /// Stop workers of a running host
    #[command(after_help = "Examples:
  corral kill shop consumer-2           # terminate one worker
  corral kill 4242 --all --grace 5s     # ask every worker to stop, then terminate

Exit status: 0 done, 1 no such host, host gone, or no such live worker.")]
    Kill(hosts::KillArgs),
    /// Watch a running host live: workers by CPU or memory, named objects
    #[command(after_help = "Keys: c sort by CPU, m sort by memory, q quit.")]
    Top(top::TopArgs),
    /// Check and test isolation policies
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Scaffold a worker project in Rust, C, C++, Zig, Python or JavaScript
    #[command(after_help = "Examples:
  corral new --lang python my-worker     # then: cd my-worker && make
  corral new --lang rust my-worker       # then: cd my-worker && cargo build --release

The project holds Corral's WIT package (wit/), the bindings or how they are
made, a build file and a README with the one build command. See
docs/guests.md for each language's toolchain and limits.")]
    New {
        /// The guest language
        #[arg(long, value_enum)]
        lang: new::Lang,
        /// The project's name (crate, component file)
        name: String,
        /// Where to create it [default: ./NAME]
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Show what a file is: kind, imports, exports, and whether it can run here
    #[command(after_help = "Examples:
  corral inspect hello.wasm
  corral inspect --json legacy-p1.wasm")]
    Inspect {
        /// The component, core module or .wat file
        file: PathBuf,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Compile components into the cache so later runs start at once
    #[command(after_help = "Example:
  corral compile guests/*.wasm")]
    Compile {
        /// The components, core modules or .wat files
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The component, preview1 core module or .wat file
    file: PathBuf,
    /// Worker name [default: the file's stem]; with -n, copies are NAME-1..NAME-COUNT
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// How many copies to run
    #[arg(short = 'n', long = "count", value_name = "COUNT", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..))]
    count: u32,
    /// Set K=V in the worker's environment, or pass the host's K through; nothing else is visible
    #[arg(long = "env", value_name = "K=V|K")]
    env: Vec<String>,
    /// Cap on the worker's total linear memory
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// CPU-time budget for the worker's code
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    cpu: Option<Duration>,
    /// Wall-clock timeout for the worker
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Run under a policy profile: FILE (its `default` or only profile) or
    /// FILE#PROFILE. Limits, env and mounts given here take precedence.
    #[arg(long, value_name = "FILE[#PROFILE]")]
    policy: Option<String>,
    /// Give the worker a directory: @shared (the run's in-memory tree),
    /// @shared/SUBDIR, @scratch (private, empty) or a host directory; host
    /// directories are read-only unless :rw. Without --mount it sees no files.
    #[arg(long = "mount", value_name = "SOURCE:GUEST[:ro|rw]", value_parser = str::parse::<MountSpec>)]
    mounts: Vec<MountSpec>,
    /// Give the worker host directory HOST, read-write, at GUEST [default:
    /// HOST as written], as `wasmtime run --dir` does: --mount HOST:GUEST:rw
    #[arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)]
    dirs: Vec<MountSpec>,
    /// Prefix each output line with `[name]` [default: with -n above 1]
    #[arg(long, overrides_with = "no_prefix")]
    prefix: bool,
    /// Pass the workers' stdout and stderr through byte for byte [default:
    /// for a single worker, which also reads corral's stdin]
    #[arg(long, overrides_with = "prefix")]
    no_prefix: bool,
    #[command(flatten)]
    fs: FsArgs,
    #[command(flatten)]
    restart: restart::RestartArgs,
    #[command(flatten)]
    observe: ObserveArgs,
    /// Arguments passed to the worker: after FILE as `wasmtime run` takes
    /// them (from the first that is not an option of corral's), or after `--`
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    args: Vec<String>,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Parse a policy file, resolve every profile and show what each grants
    #[command(after_help = "Example:
  corral policy check policies.toml")]
    Check {
        /// The policy file
        file: PathBuf,
    },
    /// Run a probe under a profile and show what it could and could not
    /// reach; exit 1 if anything differs from what was expected
    #[command(after_help = "Examples:
  corral policy test policies.toml#strict
  corral policy test policies.toml#strict --expect strict-expect.toml --format json

Without --expect, the expectation is what the profile says; an expectations
file adds checks or overrides them, one per line under [expect]:
  [expect]
  \"connect:127.0.0.1:5432\" = \"denied\"
  \"fs-write:/data\" = \"allowed\"
Outcomes: allowed, denied, killed. The check column of the table gives the keys.")]
    Test {
        /// FILE (its default or only profile) or FILE#PROFILE
        policy: String,
        /// Expected outcomes by check (TOML, [expect] table)
        #[arg(long, value_name = "EXPECT.toml")]
        expect: Option<PathBuf>,
        /// Probe with this component instead of the bundled probe (it must
        /// take the same check arguments and print the same JSON lines)
        #[arg(long, value_name = "W.wasm")]
        worker: Option<PathBuf>,
        /// How to print the results
        #[arg(long, value_name = "FORMAT", default_value = "table")]
        format: TestFormat,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum TestFormat {
    Table,
    Json,
}

/// `--dir HOST[::GUEST]`, spelled as `wasmtime run` spells it: host
/// directory HOST, read-write, at GUEST (HOST itself when absent). Guest
/// paths here are absolute; a relative GUEST (`.`, `data`) is made so,
/// which guest libc treats alike: it resolves relative paths through a `/`
/// preopen as through `.`.
fn parse_dir(text: &str) -> Result<MountSpec, String> {
    let (host, guest) = text.split_once("::").unwrap_or((text, text));
    if host.is_empty() || guest.is_empty() {
        return Err(format!(
            "`{text}` is not a directory to give: write HOST or HOST::GUEST (e.g. .::/work)"
        ));
    }
    let mut relative = guest;
    while let Some(rest) = relative.strip_prefix("./") {
        relative = rest;
    }
    let relative = relative
        .strip_prefix('.')
        .filter(|r| r.is_empty())
        .unwrap_or(relative);
    let mut guest_path = if relative.starts_with('/') {
        relative.to_string()
    } else {
        format!("/{relative}")
    };
    while guest_path.len() > 1 && guest_path.ends_with('/') {
        guest_path.pop();
    }
    Ok(MountSpec {
        source: MountSource::Host { dir: host.into() },
        guest_path,
        read_only: false,
    })
}

/// The run's shared in-memory tree: where it starts, where it is saved, how
/// big it may grow.
#[derive(Debug, Clone, Default, Args)]
struct FsArgs {
    /// Seed the shared tree from this host directory before workers start
    #[arg(long, value_name = "DIR")]
    vfs_from: Option<PathBuf>,
    /// Save the shared tree to this host directory when the run ends (also
    /// after failures and Ctrl-C)
    #[arg(long, value_name = "DIR")]
    vfs_save: Option<PathBuf>,
    /// Most bytes the shared tree may hold (default 1 GiB)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    vfs_max_bytes: Option<u64>,
    /// Most files, directories and symlinks the shared tree may hold (default 1Mi)
    #[arg(long, value_name = "N")]
    vfs_max_files: Option<u64>,
}

/// Where a run's named objects live; overrides the manifest's `[backend]`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct BackendArgs {
    /// Keep queues, locks, semaphores, events and barriers in this Redis
    /// server, shared with every host using the same namespace
    #[arg(long = "backend", value_name = "redis://HOST:PORT/DB")]
    url: Option<String>,
    /// The deployment's namespace in that server [default: `default`]
    #[arg(long, value_name = "NAME")]
    namespace: Option<String>,
}

/// Exit code for bad input or usage.
const EXIT_BAD_INPUT: u8 = 2;

/// Entry point of the `corral` binary.
pub fn main() -> ExitCode {
    quiet_panics();
    // Workers' host descriptors come out of this limit minus the host's reserve.
    crate::ledger::raise_fd_limit();
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    match worker_threads(cli.global.threads) {
        Ok(Some(n)) => {
            builder.worker_threads(n);
        }
        Ok(None) => {}
        Err(e) => {
            eprintln!("corral: {e}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("corral: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Run on a worker thread rather than the `block_on` thread: workers are
    // spawned onto the caller's own run queue and joins need no cross-thread
    // wakeup.
    let outcome = runtime.block_on(async { tokio::spawn(dispatch(cli)).await });
    // Worker output still queued for the terminal or a pipe is written
    // before the process exits; after a signal, a reader that stopped
    // reading gets a few seconds, not forever.
    let interrupted = matches!(outcome, Ok(Ok(130 | 143)));
    let grace = if interrupted {
        Duration::from_secs(2)
    } else {
        Duration::MAX
    };
    crate::output::flush_console(grace);
    match outcome {
        Ok(Ok(code)) => ExitCode::from(code),
        Ok(Err(err)) => {
            eprintln!("corral: {err:#}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
        Err(panicked) => {
            // The panic hook has already said what happened. Whatever the
            // broken run left behind (workers, blocking calls) is not
            // waited for: dropping the runtime would wait on it.
            drop(panicked);
            runtime.shutdown_background();
            ExitCode::FAILURE
        }
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let config = runtime_config(&cli.global)?;
    let max_workers = cli.global.max_workers;
    let ui = launch::Ui {
        quiet: cli.global.quiet,
        json_events: cli.global.events.is_some(),
        shutdown_grace: cli.global.shutdown_grace,
    };
    match cli.command {
        Command::Run(args) => launch::run(config, ui, args, max_workers).await,
        Command::Up {
            manifest,
            fs,
            backend,
            observe,
        } => launch::up(config, ui, &manifest, (fs, backend, observe), max_workers).await,
        Command::Pool(args) => pool::pool(config, ui.quiet, args, max_workers).await,
        Command::Policy(PolicyCommand::Check { file }) => policy::check(&file),
        Command::Policy(PolicyCommand::Test {
            policy: reference,
            expect,
            worker,
            format,
        }) => {
            let json = matches!(format, TestFormat::Json);
            policy::test(
                config,
                &reference,
                expect.as_deref(),
                worker.as_deref(),
                json,
            )
            .await
        }
        Command::New { lang, name, dir } => new::new(lang, &name, dir, ui.quiet),
        Command::Inspect { file, json } => inspect::inspect(config, &file, json),
        Command::Compile { files } => compile::compile(config, &files, ui.quiet),
        Command::Ps(args) => hosts::ps(args),
        Command::Kill(args) => hosts::kill(args),
        Command::Top(args) => top::top(args),
    }
}

fn runtime_config(global: &GlobalArgs) -> anyhow::Result<RuntimeConfig> {
    let color = match global.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
        }
    };
    let cache_dir = if global.no_cache {
        None
    } else {
        match &global.cache_dir {
            Some(dir) => Some(dir.clone()),
            None => CompileCache::default_dir(),
        }
    };
    Ok(RuntimeConfig {
        engine: EngineOptions {
            max_workers: global
                .max_workers
                .unwrap_or(EngineOptions::default().max_workers),
            ..EngineOptions::default()
        },
        cache_dir,
        console: ConsoleStyle { color },
        events: Some(match global.events {
            Some(EventFormat::Json) => std::sync::Arc::new(crate::events::JsonLines) as _,
            None => std::sync::Arc::new(crate::events::Notices) as _,
        }),
    })
}

/// Users see worker backtraces, never the host's: a host panic is a bug, and
/// is reported as one line without a Rust backtrace even when
/// `RUST_BACKTRACE` is set. Errors carry no captured backtrace either.
fn quiet_panics() {
    // SAFETY: called first thing in `main`, before any other thread exists.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "corral: internal error: {message}{place}. This is a bug in corral; please report it."
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(text: &str) -> (String, String, bool) {
        let spec = parse_dir(text).unwrap();
        let MountSource::Host { dir } = spec.source else {
            panic!("{text}: not a host directory");
        };
        (dir.display().to_string(), spec.guest_path, spec.read_only)
    }

    #[test]
    fn dir_is_spelled_as_wasmtime_spells_it_and_read_write() {
        assert_eq!(
            dir("/srv/data"),
            ("/srv/data".into(), "/srv/data".into(), false)
        );
        assert_eq!(dir("./in::/data/"), ("./in".into(), "/data".into(), false));
        assert_eq!(dir("."), (".".into(), "/".into(), false));
        assert_eq!(dir("out::./sub"), ("out".into(), "/sub".into(), false));
        assert_eq!(dir("x::y"), ("x".into(), "/y".into(), false));
        assert!(parse_dir("::/data").is_err());
        assert!(parse_dir("x::").is_err());
    }
}
