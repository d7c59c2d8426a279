//! Answers every `ping X` on a pipe with `pong X` until the other end closes.
//! Args: PIPE

use corral_guest::{Endpoint, Error, arg, or_die};

fn main() {
    let pipe: String = arg(1, "chat".to_string());
    let end = or_die("open pipe", Endpoint::open(&pipe));
    let mut answered = 0u32;
    loop {
        match end.recv(None) {
            Ok(message) => {
                let reply = String::from_utf8_lossy(&message).replacen("ping", "pong", 1);
                or_die("send", end.send(reply.as_bytes(), None));
                answered += 1;
            }
            Err(Error::Closed) => break,
            Err(e) => or_die("recv", Err(e)),
        }
    }
    println!("answered {answered} pings; the other end closed");
}
