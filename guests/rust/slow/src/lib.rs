//! Sleeps for the number of milliseconds given as input, then echoes it.

fn slow(input: &[u8]) -> Result<Vec<u8>, String> {
    let text = String::from_utf8_lossy(input);
    let ms: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("not a number of ms: {text:?}"))?;
    std::thread::sleep(std::time::Duration::from_millis(ms));
    Ok(input.to_vec())
}

corral_guest::task!(slow);
