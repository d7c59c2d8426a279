//! Variant engines: fuel metering and the wasm stack size are properties of
//! compiled code, so a policy that asks for either runs on an engine (and a
//! linker) of its own, made on first use, with its programs compiled again.

use std::sync::Arc;

use wasmtime::Engine;
use wasmtime::component::Linker;
use wasmtime_wasi::p2::bindings::CommandPre;

use super::program::Program;
use super::{Runtime, WorkerState, engine, state};

impl Runtime {
    /// The engine (and linker) for workers whose policy asks for fuel or a
    /// stack size of their own, made on first use.
    pub(super) fn variant(&self, key: VariantKey) -> Result<Arc<Variant>, String> {
        let mut variants = self
            .inner
            .variants
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(variant) = variants.get(&key) {
            return Ok(variant.clone());
        }
        let engine = engine::build_variant_engine(&self.inner.options, key.fuel, key.stack)
            .map_err(|e| format!("cannot configure an engine for this policy: {e:#}"))?;
        let linker = state::linker(&engine).map_err(|e| format!("{e:#}"))?;
        self.inner
            .ticked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(engine.clone());
        let variant = Arc::new(Variant { engine, linker });
        variants.insert(key, variant.clone());
        Ok(variant)
    }

    /// `program` compiled and linked for a variant engine, made on first use.
    pub(super) fn program_for(
        &self,
        program: &Program,
        key: VariantKey,
    ) -> Result<(Arc<Variant>, Arc<VariantProgram>), String> {
        let variant = self.variant(key)?;
        let mut compiled = program.0.variants.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(linked) = compiled.get(&key) {
            return Ok((variant, linked.clone()));
        }
        let (component, _) = self
            .compile_for(&variant.engine, &program.0.path, &program.0.input)
            .map_err(|e| e.to_string())?;
        let pre = variant
            .linker
            .instantiate_pre(&component)
            .map_err(|e| format!("{e:#}"))?;
        let command = match program.0.command {
            Some(_) => Some(CommandPre::new(pre).map_err(|e| format!("{e:#}"))?),
            None => None,
        };
        let linked = Arc::new(VariantProgram { command });
        compiled.insert(key, linked.clone());
        Ok((variant, linked))
    }
}

/// What a variant engine is for: fuel metering, and the wasm stack size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct VariantKey {
    fuel: bool,
    stack: usize,
}

impl VariantKey {
    /// The variant a policy needs, if the shared engine will not do.
    pub(super) fn for_policy(
        policy: &crate::policy::Policy,
        default_stack: usize,
    ) -> Option<VariantKey> {
        let stack = policy.stack.map_or(default_stack, |s| s as usize);
        (policy.fuel.is_some() || stack != default_stack).then_some(VariantKey {
            fuel: policy.fuel.is_some(),
            stack,
        })
    }
}

/// An engine of its own, with a linker, for one `VariantKey`.
pub(super) struct Variant {
    pub engine: Engine,
    linker: Linker<WorkerState>,
}

/// A program compiled and linked for a variant engine.
pub(super) struct VariantProgram {
    pub command: Option<CommandPre<WorkerState>>,
}
