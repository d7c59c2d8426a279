//! A hostile family for the spawn tests: workers that spawn copies of
//! themselves (the run registers this component as `hostile-family`) to
//! multiply what one worker may hold, use or reach.
//!
//! - `bomb WIDTH`: spawn WIDTH copies of `bomb WIDTH`, keep them alive until
//!   they end, report how many were spawned and the first refusal.
//! - `fan N MODE ARGS...`: spawn N children `c0..` running `MODE ARGS...`,
//!   join them, report how each ended.
//! - `hog MIB SECS`: hold MIB MiB of linear memory for SECS seconds.
//! - `spin`: burn CPU forever.
//! - `take-pipe PIPE NAME`: spawn a child named NAME that opens PIPE;
//!   report what the child got, then try NAME with a `/` in it.
//! - `open-pipe PIPE`: open PIPE; exit 0 if it opened, 3 if denied.
//! - `denied-opens N`: open queue `forbidden` N times, report the denials.
//! - `fail-if-set NAME`: exit 5 if environment variable NAME is set, else 0.

use corral_guest::process::{Child, ExitStatus};
use corral_guest::{Endpoint, Error, Queue, arg, or_die};

const SELF: &str = "hostile-family";

fn main() {
    let mode: String = arg(1, String::new());
    let rest: Vec<String> = std::env::args().skip(2).collect();
    match mode.as_str() {
        "bomb" => {
            let width: usize = arg(2, 2);
            let mut children = Vec::new();
            let mut first_refusal = None;
            for i in 0..width {
                match Child::spawn(SELF, &format!("b{i}"), &["bomb".into(), width.to_string()]) {
                    Ok(child) => children.push(child),
                    Err(e) => {
                        first_refusal.get_or_insert(e);
                    }
                }
            }
            for child in &children {
                or_die("join", child.join(None));
            }
            match first_refusal {
                Some(e) => println!("spawned {}, then {e:?}", children.len()),
                None => println!("spawned {}", children.len()),
            }
        }
        "fan" => {
            let n: usize = arg(2, 1);
            let child_args = &rest[1..];
            let mut children = Vec::new();
            for i in 0..n {
                match Child::spawn(SELF, &format!("c{i}"), child_args) {
                    Ok(child) => children.push((i, child)),
                    Err(e) => println!("c{i}: not spawned: {e:?}"),
                }
            }
            for (i, child) in children {
                match or_die("join", child.join(None)) {
                    ExitStatus::Exited(code) => println!("c{i}: exited {code}"),
                    ExitStatus::Killed(why) => println!("c{i}: killed: {why}"),
                    other => println!("c{i}: {other:?}"),
                }
            }
        }
        "hog" => {
            let mib: usize = arg(2, 1);
            let secs: u64 = arg(3, 1);
            let mut held = Vec::new();
            if held.try_reserve_exact(mib << 20).is_err() {
                println!("refused {mib} MiB");
                corral_guest::exit(4);
            }
            held.resize(mib << 20, 1u8);
            println!("holding {mib} MiB");
            std::thread::sleep(std::time::Duration::from_secs(secs));
            std::hint::black_box(&held);
        }
        "spin" => {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "take-pipe" => {
            let (pipe, name) = (&rest[0], &rest[1]);
            let child = or_die(
                "spawn",
                Child::spawn(SELF, name, &["open-pipe".into(), pipe.clone()]),
            );
            println!("child {name}: {:?}", or_die("join", child.join(None)));
            let nested = format!("x/{name}");
            match Child::spawn(SELF, &nested, &["open-pipe".into(), pipe.clone()]) {
                Ok(_) => println!("child {nested}: spawned"),
                Err(e) => println!("child {nested}: {e:?}"),
            }
        }
        "open-pipe" => match Endpoint::open(&arg(2, String::new())) {
            Ok(_) => println!("opened"),
            Err(Error::Denied(_)) => corral_guest::exit(3),
            Err(e) => or_die("open", Err(e)),
        },
        "denied-opens" => {
            let n: u64 = arg(2, 1);
            let denied = (0..n)
                .filter(|_| matches!(Queue::open("forbidden"), Err(Error::Denied(_))))
                .count();
            println!("{denied} of {n} opens denied");
        }
        "fail-if-set" => {
            if std::env::var_os(arg::<String>(2, String::new())).is_some() {
                corral_guest::exit(5);
            }
        }
        other => {
            eprintln!("unknown mode {other:?}");
            corral_guest::exit(64);
        }
    }
}
