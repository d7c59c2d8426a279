//! The library's error types: each says what failed, on what, and why.

use std::path::PathBuf;

/// Why a file could not be turned into a runnable worker program.
///
/// Every message is a complete paragraph meant to be shown to the user as is.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file is not WebAssembly at all.
    #[error(
        "{} is not a WebAssembly file: it looks like {looks_like}. Corral runs \
         components (.wasm), WASI preview1 core modules (.wasm) and WebAssembly text (.wat).",
        path.display()
    )]
    NotWasm {
        /// The file.
        path: PathBuf,
        /// What the first bytes suggest it is.
        looks_like: String,
    },
    /// WebAssembly text that does not parse.
    #[error("{} is WebAssembly text that does not parse:\n{reason}", path.display())]
    BadText {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        reason: String,
    },
    /// Binary WebAssembly that is malformed or fails validation.
    #[error("{} is not a valid WebAssembly module or component: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What the validator or compiler said.
        reason: String,
    },
    /// A preview1 core module that cannot be adapted into a component.
    #[error(
        "{} is a core module that cannot be adapted into a component with the WASI preview1 \
         adapter: {reason}",
        path.display()
    )]
    Adapt {
        /// The file.
        path: PathBuf,
        /// What the component encoder said.
        reason: String,
    },
    /// The component imports interfaces this host does not provide.
    #[error(
        "{} imports {} that this host does not provide:\n{}\nCorral provides WASI 0.2 \
         (cli, clocks, filesystem, io, random, sockets) and corral:worker@0.1 (process, queue, \
         pipe, lock, sync).",
        path.display(),
        if imports.len() == 1 { "an interface" } else { "interfaces" },
        imports.iter().map(|i| format!("  - {i}")).collect::<Vec<_>>().join("\n")
    )]
    MissingImports {
        /// The file.
        path: PathBuf,
        /// Each import the host cannot satisfy, by its full name.
        imports: Vec<String>,
    },
    /// The component's imports are known but do not type-check against the host.
    #[error("{} cannot be linked against this host: {reason}", path.display())]
    Link {
        /// The file.
        path: PathBuf,
        /// The linker's message.
        reason: String,
    },
    /// The component has nothing the host can call.
    #[error(
        "{} exports neither `wasi:cli/run` (a worker with a `main`) nor \
         `corral:worker/task` (a pool task), so there is nothing to run. Its exports: {}",
        path.display(),
        if exports.is_empty() { "none".to_string() } else { exports.join(", ") }
    )]
    NoEntryPoint {
        /// The file.
        path: PathBuf,
        /// What it does export.
        exports: Vec<String>,
    },
}

/// Why the host runtime could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The engine rejected its configuration (for example a pool larger than
    /// the address space allows).
    #[error("cannot configure the WebAssembly engine: {0}")]
    Engine(String),
    /// The compile cache directory cannot be created.
    #[error("cannot use compile cache directory {}", dir.display())]
    Cache {
        /// The directory.
        dir: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
}
