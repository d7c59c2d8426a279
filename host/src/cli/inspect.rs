//! `corral inspect`: what a file is and whether it can run here.

use std::path::Path;

use crate::runtime::{Runtime, RuntimeConfig};

pub(super) fn inspect(mut config: RuntimeConfig, file: &Path, json: bool) -> anyhow::Result<u8> {
    // It compiles and links, and runs nothing: one slot, not thousands of
    // reserved address space (a slot count changes no compiled code).
    config.engine.max_workers = 1;
    let runtime = Runtime::new(config)?;
    let found = runtime.inspect(file)?;
    if json {
        let mut value = serde_json::to_value(&found)?;
        value["fits_worker"] = found.fits_worker().into();
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(0);
    }
    println!("{}: {}", file.display(), found.kind);
    let verdict = if found.fits_worker() {
        "yes".to_string()
    } else if found.run_export.is_none() {
        "no: it does not export wasi:cli/run".to_string()
    } else if let Some(problem) = &found.link_problem {
        format!("no: {problem}")
    } else {
        "no: it imports interfaces this host does not provide (marked ✗)".to_string()
    };
    println!("fits corral:worker/worker: {verdict}");
    let width = found
        .imports
        .iter()
        .chain(&found.exports)
        .map(|i| i.name.len())
        .max()
        .unwrap_or(0);
    println!("imports ({}):", found.imports.len());
    for item in &found.imports {
        let mark = if item.provided { "✓" } else { "✗" };
        let note = if item.provided {
            ""
        } else {
            "  not provided by this host"
        };
        println!("  {mark} {:width$}  {}{note}", item.name, item.kind);
    }
    println!("exports ({}):", found.exports.len());
    for item in &found.exports {
        println!("    {:width$}  {}", item.name, item.kind);
    }
    Ok(0)
}
