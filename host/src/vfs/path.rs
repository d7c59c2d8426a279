//! The path rules both backends share: what a path argument or a symlink
//! target may contain, and how it splits into components.

use super::error::FsError;

/// Longest name of one directory entry, in bytes (POSIX `NAME_MAX`).
pub(super) const MAX_NAME_LEN: usize = 255;

/// Longest path argument or symlink target, in bytes (POSIX `PATH_MAX`).
pub(super) const MAX_PATH_LEN: usize = 4096;

/// Most symlinks one resolution may follow before failing with `Loop` (Linux's limit).
pub(super) const MAX_SYMLINK_HOPS: u32 = 40;

/// One step of a relative path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Component {
    /// `.`: stay.
    Current,
    /// `..`: go up, never above the directory the resolution started from.
    Parent,
    /// An entry name: never empty, `.`, `..`, and without `/` or NUL.
    Name(String),
}

/// A relative path split into components.
#[derive(Debug)]
pub(super) struct RelativePath {
    /// The components in order; never empty, since the text is neither empty nor absolute.
    pub(super) components: Vec<Component>,
    /// Whether the text ended in `/`: the last component must then be a directory.
    pub(super) trailing_slash: bool,
}

/// Checks a path argument of a `*_at` operation, or a symlink target,
/// without splitting it: what every operation does first, on both backends.
///
/// Empty is `NoEntry` (as POSIX). Absolute is `NotPermitted`, since a handle
/// reaches only what lies below it: cap-std reports the same escape, refuses
/// to create symlinks with absolute targets and to follow them, and so does
/// the in-memory tree.
pub(super) fn check(path: &str) -> Result<(), FsError> {
    if path.is_empty() {
        return Err(FsError::NoEntry);
    }
    if path.starts_with('/') {
        return Err(FsError::NotPermitted);
    }
    if path.as_bytes().contains(&0) {
        return Err(FsError::Invalid);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(FsError::NameTooLong);
    }
    // A byte loop rather than `split`: every path argument passes here.
    let mut name_len = 0;
    for &byte in path.as_bytes() {
        name_len = if byte == b'/' { 0 } else { name_len + 1 };
        if name_len > MAX_NAME_LEN {
            return Err(FsError::NameTooLong);
        }
    }
    Ok(())
}

/// Checks a path as [`check`] does and splits it into components.
pub(super) fn parse(path: &str) -> Result<RelativePath, FsError> {
    check(path)?;
    let mut components = Vec::new();
    for part in path.split('/') {
        match part {
            "" => {}
            "." => components.push(Component::Current),
            ".." => components.push(Component::Parent),
            name => components.push(Component::Name(name.to_owned())),
        }
    }
    Ok(RelativePath {
        components,
        trailing_slash: path.ends_with('/'),
    })
}
