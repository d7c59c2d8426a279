//! Checks a file written by `appender`: how many lines, how many intact
//! (their check matches), how many torn or lost. Prints one verdict line and
//! exits 1 unless exactly EXPECTED intact lines are there.
//!
//! Args: PATH EXPECTED

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/log.txt".into());
    let expected: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let text = match std::fs::read(&path) {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(e) => {
            eprintln!("cannot read {path}: {e}");
            std::process::exit(2);
        }
    };
    let lines: Vec<&str> = text.lines().collect();
    let intact = lines
        .iter()
        .filter(|line| {
            line.rsplit_once(':').is_some_and(|(body, check)| {
                u64::from_str_radix(check, 16).is_ok_and(|c| c == fnv1a(body.as_bytes()))
            })
        })
        .count();
    let torn = lines.len() - intact;
    let ok = intact == expected && torn == 0;
    println!(
        "{}: {} lines in {path}, {intact} intact, {torn} torn, {} missing (expected {expected})",
        if ok { "OK" } else { "DAMAGED" },
        lines.len(),
        expected.saturating_sub(intact)
    );
    if !ok {
        std::process::exit(1);
    }
}
