//! On-disk cache of compiled components, so a second run of the same
//! component skips Cranelift (~100 ms) and maps the compiled code (~0.3 ms).

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where compiled components are kept, keyed by the content hash of the input
/// and the engine's compilation settings.
///
/// Entries are native code that the host maps and runs without validation:
/// the directory must be writable only by the user running the host.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

impl CompileCache {
    /// Opens (creating if needed) a cache in `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<CompileCache> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)?;
        Ok(CompileCache { dir })
    }

    /// The cache directory the user gets when they pass no `--cache-dir`:
    /// `$XDG_CACHE_HOME/corral` or the platform's equivalent.
    pub fn default_dir() -> Option<PathBuf> {
        dirs::cache_dir().map(|d| d.join("corral"))
    }

    /// The directory this cache lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file that holds (or would hold) the compiled form of `input` for
    /// `engine`. `flavor` separates inputs that compile differently from the
    /// same bytes (a core module adapted as a command or as a reactor).
    pub fn entry_path(&self, engine: &Engine, input: &[u8], flavor: &str) -> PathBuf {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        env!("CARGO_PKG_VERSION").hash(&mut hasher);
        let engine_key = format!("{:016x}", hasher.finish());
        let digest = Sha256::new()
            .chain_update(flavor.as_bytes())
            .chain_update([0])
            .chain_update(input)
            .finalize();
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{hex}-{engine_key}.cwasm"))
    }

    /// Loads a compiled component from `path` if present and usable.
    /// A stale or corrupt entry is treated as a miss, never as an error.
    pub fn load(&self, engine: &Engine, path: &Path) -> Option<Component> {
        if !path.exists() {
            return None;
        }
        // SAFETY: the entry was written by `store` from `Component::serialize`
        // of this engine configuration (the key covers it), in a directory
        // only this user writes. `deserialize_file` checks the header and
        // engine compatibility before mapping the code.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(component) => Some(component),
            Err(err) => {
                tracing::debug!(path = %path.display(), "ignoring unusable cache entry: {err}");
                None
            }
        }
    }

    /// Stores `component` at `path`, atomically: readers see the whole entry
    /// or none. A failure to write only costs the next run a compilation.
    pub fn store(&self, component: &Component, path: &Path) {
        let result = (|| -> anyhow::Result<()> {
            let bytes = component.serialize()?;
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_data()?;
            std::fs::rename(&tmp, path)?;
            Ok(())
        })();
        if let Err(err) = result {
            tracing::warn!(path = %path.display(), "could not write compile cache entry: {err:#}");
        }
    }
}
