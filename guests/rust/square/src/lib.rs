//! The classic pool task: a decimal integer in, its square out.

fn square(input: &[u8]) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(input).map_err(|_| "input is not UTF-8".to_string())?;
    let x: i64 = text
        .trim()
        .parse()
        .map_err(|_| format!("not an integer: {text:?}"))?;
    let squared = x
        .checked_mul(x)
        .ok_or_else(|| format!("{x} squared overflows i64"))?;
    Ok(squared.to_string().into_bytes())
}

corral_guest::task!(square);
