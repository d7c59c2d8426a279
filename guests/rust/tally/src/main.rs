//! Checks a producer/consumer run: reads `produced N SUM` and `consumed N SUM`
//! reports from the `results` queue (P producers + C consumers of them) and
//! prints one verdict line. Exits 1 if anything was lost or duplicated.
//!
//! Args: P C

use corral_guest::{Queue, arg, exit, ms, or_die};

fn main() {
    let producers: u32 = arg(1, 1);
    let consumers: u32 = arg(2, 1);
    let results = or_die("open results", Queue::open("results"));
    let (mut produced, mut produced_sum, mut consumed, mut consumed_sum) = (0u64, 0u64, 0u64, 0u64);
    for _ in 0..producers + consumers {
        let report = or_die("get report", results.get(ms(60_000)));
        let text = String::from_utf8_lossy(&report).into_owned();
        let parts: Vec<&str> = text.split(' ').collect();
        let (n, sum): (u64, u64) = (parts[1].parse().unwrap(), parts[2].parse().unwrap());
        match parts[0] {
            "produced" => (produced, produced_sum) = (produced + n, produced_sum.wrapping_add(sum)),
            _ => (consumed, consumed_sum) = (consumed + n, consumed_sum.wrapping_add(sum)),
        }
    }
    let ok = produced == consumed && produced_sum == consumed_sum;
    println!(
        "{}: {producers} producers put {produced}, {consumers} consumers got {consumed}; checksums {}",
        if ok { "OK" } else { "MISMATCH" },
        if produced_sum == consumed_sum {
            "match"
        } else {
            "differ"
        }
    );
    if !ok {
        exit(1);
    }
}
