//! Sizes (`64MiB`) and durations (`500ms`, `2s`) as users write them on the
//! command line and in TOML files.

use std::time::Duration;

/// Parses a byte size: a plain number of bytes, or a number with a unit such
/// as `64KiB`, `64MiB`, `1GiB`, `500kB` or `2GB`.
/// Sizes of [`MAX_SIZE`] and more are refused: no host has that much, and
/// the parser would otherwise clamp what overflows to the largest `u64`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let size = text
        .parse::<bytesize::ByteSize>()
        .map(|size| size.as_u64())
        .map_err(|_| {
            format!(
                "`{text}` is not a size: write bytes or a number with a unit, like 64MiB or 1GiB"
            )
        })?;
    if size >= MAX_SIZE {
        return Err(format!(
            "`{text}` is larger than any host (sizes must be under {})",
            bytesize::ByteSize(MAX_SIZE).display().iec()
        ));
    }
    Ok(size)
}

/// Sizes must be under this: 8 EiB, half of what a `u64` holds.
pub const MAX_SIZE: u64 = 1 << 63;

/// Parses a duration: a number with a unit such as `250ms`, `2s`, `1m30s`.
/// Durations past [`MAX_DURATION`] are refused: limits are kept in
/// nanoseconds, and a longer one would wrap around to a short one.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = humantime::parse_duration(text).map_err(|_| {
        format!("`{text}` is not a duration: write a number with a unit, like 500ms, 2s or 1m")
    })?;
    if duration > MAX_DURATION {
        return Err(format!(
            "`{text}` is longer than the host can time ({})",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(duration)
}

/// The longest duration a limit may be: about 584 years, what a `u64` of
/// nanoseconds holds.
pub const MAX_DURATION: Duration = Duration::from_nanos(u64::MAX);

/// Serde adapters for optional sizes and durations written as strings (or, for
/// sizes, plain integers of bytes) in TOML files.
pub mod serde_opt {
    use serde::{Deserialize, Deserializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SizeRepr {
        Bytes(u64),
        Text(String),
    }

    /// An optional size: `memory = "64MiB"` or `memory = 67108864`.
    pub fn size<'de, D: Deserializer<'de>>(de: D) -> Result<Option<u64>, D::Error> {
        match SizeRepr::deserialize(de)? {
            SizeRepr::Bytes(n) if n >= super::MAX_SIZE => Err(serde::de::Error::custom(format!(
                "{n} bytes is larger than any host (sizes must be under 8 EiB)"
            ))),
            SizeRepr::Bytes(n) => Ok(Some(n)),
            SizeRepr::Text(text) => super::parse_size(&text)
                .map(Some)
                .map_err(serde::de::Error::custom),
        }
    }

    /// An optional duration: `timeout = "10s"`.
    pub fn duration<'de, D: Deserializer<'de>>(
        de: D,
    ) -> Result<Option<std::time::Duration>, D::Error> {
        let text = String::deserialize(de)?;
        super::parse_duration(&text)
            .map(Some)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("2kB"), Ok(2000));
        assert!(
            parse_size("lots")
                .unwrap_err()
                .contains("`lots` is not a size")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("2").unwrap_err().contains("not a duration"));
    }
}
