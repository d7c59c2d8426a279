//! Preview1 modules under `corral run` and under wasmtime's own preview1
//! implementation (`wasmtime_wasi::p1`, what `wasmtime run` uses for a core
//! module): the same program, arguments, environment, directory and stdin
//! must give the same stdout, stderr and exit code, byte for byte. Corral
//! adapts the module into a component and serves its files from its own
//! filesystem, so this is where the two could drift apart.
//!
//! Where the `wasmtime` CLI is on PATH, each case is compared against it
//! too; without it, that part is skipped with a note.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::guest;
use wasmtime::{Engine, Linker, Module, Store};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

/// What a run of a program shows the outside world.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    code: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// One run: arguments after the file, `K=V` variables, a host directory
/// mounted at a guest path, stdin.
#[derive(Clone, Copy)]
struct Case<'a> {
    args: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
    dir: Option<(&'a Path, &'a str)>,
    stdin: &'a [u8],
}

impl Case<'_> {
    fn new<'a>(args: &'a [&'a str]) -> Case<'a> {
        Case {
            args,
            env: &[],
            dir: None,
            stdin: b"",
        }
    }
}

const LIMIT: Duration = Duration::from_secs(60);

/// Runs `command` with `stdin` as input and collects its output as bytes
/// (the output of a program may be anything but text), killing it and
/// failing the test if it runs past [`LIMIT`].
fn run_bytes(command: &mut Command, stdin: &[u8]) -> Seen {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    // The program may exit without reading it all: a broken pipe is fine.
    std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let collect = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut all = Vec::new();
            pipe.read_to_end(&mut all).unwrap();
            all
        })
    };
    let stdout = collect(Box::new(child.stdout.take().unwrap()));
    let stderr = collect(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("{command:?} did not exit within {LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Seen {
        code: status
            .code()
            .unwrap_or_else(|| panic!("{command:?} was killed by a signal: {status}")),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// `argv[0]` as `wasmtime run` passes it: the file name without its
/// directories.
fn argv0(module: &Path) -> String {
    module.file_name().unwrap().to_string_lossy().into_owned()
}

fn under_corral(module: &Path, case: &Case) -> Seen {
    let mut command = Command::new(env!("CARGO_BIN_EXE_corral"));
    command
        .arg("--cache-dir")
        .arg(common::shared_cache_dir())
        .arg("run");
    for (k, v) in case.env {
        command.arg("--env").arg(format!("{k}={v}"));
    }
    if let Some((host, guest)) = case.dir {
        command
            .arg("--dir")
            .arg(format!("{}::{guest}", host.display()));
    }
    command.arg(module).args(case.args);
    run_bytes(&mut command, case.stdin)
}

fn under_wasmtime_cli(wasmtime: &Path, module: &Path, case: &Case) -> Seen {
    let mut command = Command::new(wasmtime);
    command.arg("run");
    for (k, v) in case.env {
        command.arg("--env").arg(format!("{k}={v}"));
    }
    if let Some((host, guest)) = case.dir {
        command
            .arg("--dir")
            .arg(format!("{}::{guest}", host.display()));
    }
    command.arg(module).args(case.args);
    run_bytes(&mut command, case.stdin)
}

/// The module run as `wasmtime run` runs a core module: wasmtime-wasi's
/// preview1 implementation linked straight into the module, read-write
/// directories, `proc_exit` as the exit code. `Err`: the run failed with
/// this error, not an exit.
async fn under_native_preview1(
    engine: &Engine,
    module: &Module,
    path: &Path,
    case: &Case<'_>,
) -> Result<Seen, String> {
    let mut linker: Linker<WasiP1Ctx> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut linker, |ctx| ctx).unwrap();
    let stdout = MemoryOutputPipe::new(64 << 20);
    let stderr = MemoryOutputPipe::new(64 << 20);
    let mut wasi = WasiCtxBuilder::new();
    wasi.arg(argv0(path))
        .args(case.args)
        .stdin(MemoryInputPipe::new(case.stdin.to_vec()))
        .stdout(stdout.clone())
        .stderr(stderr.clone());
    for (k, v) in case.env {
        wasi.env(k, v);
    }
    if let Some((host, guest)) = case.dir {
        wasi.preopened_dir(host, guest, FsPerms::ReadWrite).unwrap();
    }
    let mut store = Store::new(engine, wasi.build_p1());
    let instance = linker.instantiate_async(&mut store, module).await.unwrap();
    let start = instance
        .get_typed_func::<(), ()>(&mut store, "_start")
        .unwrap();
    let code = match start.call_async(&mut store, ()).await {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => exit.0,
            None => return Err(format!("{e:#}")),
        },
    };
    drop(store);
    Ok(Seen {
        code,
        stdout: stdout.contents().to_vec(),
        stderr: stderr.contents().to_vec(),
    })
}

/// A run's result for a failure message: the first 2,000 bytes of each
/// stream, and their lengths.
fn shown(seen: &Seen) -> String {
    let head = |bytes: &[u8]| {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(2000)]).into_owned();
        format!("{} bytes: {text:?}", bytes.len())
    };
    format!(
        "exit {}\nstdout {}\nstderr {}",
        seen.code,
        head(&seen.stdout),
        head(&seen.stderr)
    )
}

fn wasmtime_cli() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("wasmtime"))
            .find(|path| path.is_file())
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn preview1_programs_behave_as_under_wasmtime() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("data.txt"), "line one\nlïne twö\n").unwrap();
    std::fs::write(dir.path().join("b.bin"), [0u8, 255, 1, 254, 10, 13]).unwrap();
    let random: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases = [
        Case::new(&["args"]),
        Case::new(&[
            "args",
            "with space",
            "\"double\" and 'single' quotes",
            "new\nline",
            "ünïcødé ✓ 中文",
            "",
            "tab\there",
            "--flag=value",
            "$HOME `cmd`",
        ]),
        Case {
            env: &[
                ("PLAIN", "value"),
                ("SPACES", "a value with spaces"),
                ("NEWLINE", "two\nlines"),
                ("EQUALS", "k=v=w"),
                ("UNICODE", "ünïcødé ✓"),
                ("EMPTY", ""),
            ],
            ..Case::new(&["env"])
        },
        Case::new(&["exit", "0"]),
        Case::new(&["exit", "1"]),
        Case::new(&["exit", "33"]),
        Case::new(&["exit", "255"]),
        Case {
            stdin: &random,
            ..Case::new(&["cat"])
        },
        Case::new(&["stderr", "to stderr: ünï\nand a second line\n"]),
        Case {
            dir: Some((dir.path(), "/work")),
            ..Case::new(&["read", "/work/data.txt"])
        },
        Case {
            dir: Some((dir.path(), "/work")),
            ..Case::new(&["read", "/work/b.bin"])
        },
        Case {
            dir: Some((dir.path(), "/work")),
            ..Case::new(&["ls", "/work"])
        },
        Case {
            dir: Some((dir.path(), "/work")),
            ..Case::new(&["read", "/work/missing.txt"])
        },
        Case::new(&["no-such-command"]),
    ];
    let modules = [guest("tool-p1"), guest("exit-p1"), guest("hello-p1")];
    let engine = Engine::default();
    let cli = wasmtime_cli();
    if cli.is_none() {
        eprintln!(
            "note: no `wasmtime` on PATH, so the comparison with the wasmtime CLI is skipped \
             (cargo install wasmtime-cli --version 48.0.8 --locked)"
        );
    }
    let mut compared = 0;
    for path in &modules {
        let module = Module::from_file(&engine, path).unwrap();
        let own_cases: Vec<Case> = if path.ends_with("tool-p1.wasm") {
            cases.to_vec()
        } else {
            // exit-p1 takes its exit code, hello-p1 its arguments.
            [&["33"][..], &["0"], &["with space", "ünï"]]
                .into_iter()
                .map(Case::new)
                .collect()
        };
        for case in &own_cases {
            let native = under_native_preview1(&engine, &module, path, case).await;
            let corral = under_corral(path, case);
            let native = match native {
                Ok(native) => native,
                // The one intended difference: wasmtime's preview1 refuses
                // `proc_exit` codes from 126 up (its error, exit 1), where
                // Corral passes on every code 0-255 as a native program's.
                Err(error) if error.contains("outside of [0..126)") => {
                    let code: i32 = case.args[1].parse().unwrap();
                    assert!(code >= 126, "{error}");
                    assert_eq!(corral.code, code, "{}", shown(&corral));
                    assert_eq!(corral.stdout, format!("exiting with {code}\n").into_bytes());
                    compared += 1;
                    continue;
                }
                Err(error) => panic!(
                    "{} {:?} under wasmtime's preview1: {error}",
                    argv0(path),
                    case.args
                ),
            };
            assert!(
                corral == native,
                "{} {:?}: corral run gave\n{}\nwasmtime's preview1 gave\n{}",
                argv0(path),
                case.args,
                shown(&corral),
                shown(&native)
            );
            if let Some(cli) = &cli {
                let wasmtime = under_wasmtime_cli(cli, path, case);
                assert!(
                    corral == wasmtime,
                    "{} {:?}: corral run gave\n{}\nwasmtime run gave\n{}",
                    argv0(path),
                    case.args,
                    shown(&corral),
                    shown(&wasmtime)
                );
            }
            compared += 1;
        }
    }
    assert_eq!(compared, cases.len() + 6);
}
