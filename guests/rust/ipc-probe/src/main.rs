//! Probes the IPC interfaces one call at a time, for the end-to-end and
//! fault tests. The first argument picks the probe; each prints what it saw.
//!
//! - `hold-lock L`: acquire L, print `holding`, sleep forever.
//! - `check-lock L`: acquire L, print `previous owner died: BOOL`, release.
//! - `rlock L`: acquire re-entrant L twice, print `reentered`.
//! - `relock L`: acquire plain L twice, print the error of the second.
//! - `grab Q`: take one message, print it, sleep forever without task-done.
//! - `drain Q`: take every message until closed, task-done each, print them.
//! - `fill Q`: put until `put` blocks, print `blocked after N`, stay blocked.
//! - `put-big Q SIZE`: put SIZE bytes, print the result.
//! - `open-queue Q`: print the result of opening Q.
//! - `get-timeout Q MS`: get with a timeout, print the error and elapsed ms.
//! - `cond-wait L C MS`: hold L, wait on C up to MS, print `notified: BOOL`.
//! - `send-forever P`: send on pipe P until it fails, print the error.
//! - `bad-handle`: call `queue.len` on a handle that does not exist.
//! - `wrong-type Q`: call `lock.subscribe` with a queue handle.

use std::time::{Duration, Instant};

use corral_guest::{Condition, Endpoint, Error, Lock, Queue, arg, ms, or_die};

fn main() {
    let probe: String = arg(1, String::new());
    let name: String = arg(2, String::new());
    match probe.as_str() {
        "hold-lock" => {
            let lock = or_die("open", Lock::open(&name));
            let _guard = or_die("acquire", lock.acquire(None));
            println!("holding");
            sleep_forever();
        }
        "check-lock" => {
            let lock = or_die("open", Lock::open(&name));
            let guard = or_die("acquire", lock.acquire(ms(10_000)));
            println!("previous owner died: {}", guard.previous_owner_died());
        }
        "rlock" => {
            let lock = or_die("open", Lock::open(&name));
            let _a = or_die("acquire", lock.acquire(None));
            let _b = or_die("acquire again", lock.acquire(ms(100)));
            println!("reentered");
        }
        "relock" => {
            let lock = or_die("open", Lock::open(&name));
            let _a = or_die("acquire", lock.acquire(None));
            println!("{:?}", lock.acquire(ms(100)).err());
        }
        "grab" => {
            let queue = or_die("open", Queue::open(&name));
            let message = or_die("get", queue.get(None));
            println!("grabbed {}", String::from_utf8_lossy(&message));
            sleep_forever();
        }
        "drain" => {
            let queue = or_die("open", Queue::open(&name));
            loop {
                match queue.get(None) {
                    Ok(m) => {
                        println!("got {}", String::from_utf8_lossy(&m));
                        or_die("task-done", queue.task_done());
                    }
                    Err(Error::Closed) => break,
                    Err(e) => or_die("get", Err(e)),
                }
            }
            println!("drained");
        }
        "fill" => {
            let queue = or_die("open", Queue::open(&name));
            let mut n = 0;
            while or_die("try-put", queue.try_put(format!("fill {n}").as_bytes())) {
                n += 1;
            }
            println!("blocked after {n}");
            or_die("put", queue.put(b"never", None));
            println!("unblocked");
        }
        "put-big" => {
            let queue = or_die("open", Queue::open(&name));
            let size: usize = arg(3, 0);
            println!(
                "{:?} len={}",
                queue.put(&vec![7u8; size], None),
                queue.len()
            );
        }
        "open-queue" => println!("{:?}", Queue::open(&name).err()),
        "get-timeout" => {
            let queue = or_die("open", Queue::open(&name));
            let wait: u64 = arg(3, 50);
            let start = Instant::now();
            let result = queue.get(ms(wait));
            println!(
                "{:?} after {} ms",
                result.err(),
                start.elapsed().as_millis()
            );
        }
        "cond-wait" => {
            let lock = or_die("open lock", Lock::open(&name));
            let cond = or_die(
                "open condition",
                Condition::open(&arg::<String>(3, String::new())),
            );
            let guard = or_die("acquire", lock.acquire(None));
            println!("waiting");
            let notified = or_die("wait", cond.wait(&guard, ms(arg(4, 5_000))));
            println!("notified: {notified}");
        }
        "send-forever" => {
            let end = or_die("open", Endpoint::open(&name));
            let mut n = 0u64;
            loop {
                if let Err(e) = end.send(b"x", None) {
                    println!("send failed after {n}: {e:?}");
                    break;
                }
                n += 1;
            }
        }
        "bad-handle" => {
            // SAFETY: deliberately passes a handle index the host never gave
            // out, to check that the host traps this worker and nothing else.
            unsafe { raw::queue_len(0x7fff_0000) };
            println!("the host accepted a forged handle");
        }
        "wrong-type" => {
            let queue = or_die("open", Queue::open(&name));
            let handle = queue.take_handle();
            // SAFETY: deliberately passes a queue handle where a lock handle
            // is expected; the host must trap this worker.
            unsafe { raw::lock_subscribe(handle as i32) };
            println!("the host accepted a queue handle as a lock");
        }
        other => {
            eprintln!("unknown probe {other:?}");
            corral_guest::exit(64);
        }
    }
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// The same imports the bindings use, callable with arbitrary handles.
mod raw {
    #[link(wasm_import_module = "corral:worker/queue@0.1.0")]
    unsafe extern "C" {
        #[link_name = "[method]queue.len"]
        pub fn queue_len(handle: i32) -> i32;
    }

    #[link(wasm_import_module = "corral:worker/lock@0.1.0")]
    unsafe extern "C" {
        #[link_name = "[method]lock.subscribe"]
        pub fn lock_subscribe(handle: i32) -> i32;
    }
}
