//! Counts the words (whitespace-separated) of its input text.

fn count(input: &[u8]) -> Result<Vec<u8>, String> {
    let text = String::from_utf8_lossy(input);
    Ok(text.split_whitespace().count().to_string().into_bytes())
}

corral_guest::task!(count);
