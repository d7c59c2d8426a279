//! `corral compile`: warm the compile cache.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::bail;

use crate::runtime::{Runtime, RuntimeConfig};
use crate::status::CacheOutcome;

pub(super) fn compile(
    mut config: RuntimeConfig,
    files: &[PathBuf],
    quiet: bool,
) -> anyhow::Result<u8> {
    if config.cache_dir.is_none() {
        bail!("`compile` fills the compile cache, which --no-cache turns off");
    }
    // It runs nothing: one slot. The slot count changes no compiled code,
    // so what it caches is what a run of any size loads.
    config.engine.max_workers = 1;
    let runtime = Runtime::new(config)?;
    let dir = runtime
        .cache()
        .map(|c| c.dir().display().to_string())
        .unwrap_or_default();
    for file in files {
        let started = Instant::now();
        let outcome = runtime.precompile(file)?;
        if !quiet {
            let ms = started.elapsed().as_secs_f64() * 1e3;
            match outcome {
                CacheOutcome::Hit => {
                    eprintln!("{}: already in the cache ({ms:.1} ms)", file.display())
                }
                _ => eprintln!(
                    "{}: compiled in {ms:.0} ms, cached in {dir}",
                    file.display()
                ),
            }
        }
    }
    Ok(0)
}
