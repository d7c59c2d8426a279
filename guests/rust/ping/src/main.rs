//! Sends N numbered pings over a pipe and checks each pong, then closes.
//! Args: PIPE N

use std::time::Instant;

use corral_guest::{Endpoint, arg, exit, or_die};

fn main() {
    let pipe: String = arg(1, "chat".to_string());
    let n: u32 = arg(2, 1000);
    let end = or_die("open pipe", Endpoint::open(&pipe));
    let start = Instant::now();
    for i in 0..n {
        or_die("send", end.send(format!("ping {i}").as_bytes(), None));
        let reply = or_die("recv", end.recv(None));
        if reply != format!("pong {i}").as_bytes() {
            eprintln!("round trip {i}: got {:?}", String::from_utf8_lossy(&reply));
            exit(1);
        }
    }
    let each = start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
    end.close();
    println!("{n} round trips, every pong matched ({each:.1} µs each)");
}
