//! Waits on two queues, a pipe and a timer in one `wasi:io/poll` call (the
//! select() pattern), printing each message with where it came from, until
//! both queues are closed and the pipe's peer is gone. The timer ticks every
//! TICK_MS and is counted. Args: QUEUE_A QUEUE_B PIPE TICK_MS

use corral_guest::wasi::clocks::monotonic_clock;
use corral_guest::wasi::io::poll;
use corral_guest::{Endpoint, Error, Queue, arg, or_die};

fn main() {
    let a_name: String = arg(1, "a".to_string());
    let b_name: String = arg(2, "b".to_string());
    let pipe_name: String = arg(3, "side".to_string());
    let tick_ms: u64 = arg(4, 50);
    let a = or_die("open a", Queue::open(&a_name));
    let b = or_die("open b", Queue::open(&b_name));
    let pipe = or_die("open pipe", Endpoint::open(&pipe_name));
    let (mut a_open, mut b_open, mut pipe_open) = (true, true, true);
    let (mut received, mut ticks) = (0u32, 0u32);
    while a_open || b_open || pipe_open {
        let a_ready = a.subscribe_get();
        let b_ready = b.subscribe_get();
        let pipe_ready = pipe.subscribe();
        let timer = monotonic_clock::subscribe_duration(tick_ms * 1_000_000);
        let mut sources: Vec<(&str, &poll::Pollable)> = Vec::new();
        if a_open {
            sources.push(("a", &a_ready));
        }
        if b_open {
            sources.push(("b", &b_ready));
        }
        if pipe_open {
            sources.push(("pipe", &pipe_ready));
        }
        sources.push(("timer", &timer));
        let list: Vec<&poll::Pollable> = sources.iter().map(|(_, p)| *p).collect();
        for index in poll::poll(&list) {
            let source = sources[index as usize].0;
            let message = match source {
                "a" => a.try_get(),
                "b" => b.try_get(),
                "pipe" => pipe.try_recv(),
                _ => {
                    ticks += 1;
                    continue;
                }
            };
            match message {
                Ok(Some(m)) => {
                    received += 1;
                    println!("{source}: {}", String::from_utf8_lossy(&m));
                }
                Ok(None) => {}
                Err(Error::Closed) => match source {
                    "a" => a_open = false,
                    "b" => b_open = false,
                    _ => pipe_open = false,
                },
                Err(e) => or_die(source, Err(e)),
            }
        }
    }
    println!("all sources closed: {received} messages, {ticks} timer ticks");
}
