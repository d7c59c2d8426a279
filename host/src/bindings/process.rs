//! `corral:worker/process`: who this worker is, and the children it spawns.

use std::sync::atomic::Ordering;

use wasmtime::component::Resource;

use super::corral_worker::process::{ExitStatus as WitStatus, Host, HostChild};
use super::{Call, reply, timeout};
use crate::ipc::IpcError;
use crate::runtime::WorkerState;
use crate::status::ExitStatus;
use crate::worker::{Worker, WorkerSpec};

/// A child worker, killed when its handle goes (so when its parent ends).
pub struct ChildRes(Worker);

impl Drop for ChildRes {
    fn drop(&mut self) {
        self.0.terminate();
    }
}

impl Host for WorkerState {
    fn id(&mut self) -> wasmtime::Result<u64> {
        Ok(self.id)
    }

    fn name(&mut self) -> wasmtime::Result<String> {
        Ok(self.name.to_string())
    }
}

impl WorkerState {
    /// Starts a child if the policy allows it; every refusal is a denial.
    fn spawn_child(
        &mut self,
        component: &str,
        name: String,
        args: Vec<String>,
    ) -> Result<Worker, IpcError> {
        let spawn = &self.policy.spawn;
        let deny = |state: &Self, rule: &str, why: String| {
            state.reporter.deny(rule, format!("spawn `{component}`"));
            Err(IpcError::Denied(format!(
                "policy `{}` {why} ({rule})",
                state.policy.name
            )))
        };
        let Some(family) = self.family.as_mut() else {
            return deny(self, "spawn.components", "does not allow spawning".into());
        };
        if !spawn.components.iter().any(|c| c == component || c == "*") {
            return deny(
                self,
                "spawn.components",
                format!("does not allow spawning `{component}`"),
            );
        }
        let Some(program) = family.spec.run.component(component) else {
            return Err(IpcError::NotFound(format!("component `{component}`")));
        };
        family.children.retain(Worker::is_alive);
        if spawn
            .max_children
            .is_some_and(|max| family.children.len() as u32 >= max)
        {
            let max = spawn.max_children.unwrap_or_default();
            return deny(
                self,
                "spawn.max-children",
                format!("allows {max} live children"),
            );
        }
        let descendants = family.lineage.descendants.fetch_add(1, Ordering::Relaxed) + 1;
        if spawn.max_descendants.is_some_and(|max| descendants > max) {
            family.lineage.descendants.fetch_sub(1, Ordering::Relaxed);
            let max = spawn.max_descendants.unwrap_or_default();
            return deny(
                self,
                "spawn.max-descendants",
                format!("allows {max} descendants"),
            );
        }
        let spec = WorkerSpec {
            name,
            args,
            ..(*family.spec).clone()
        };
        let child = family
            .runtime
            .spawn_in(&program, spec, family.lineage.clone());
        family.children.push(child.clone());
        Ok(child)
    }
}

fn wit_status(status: ExitStatus) -> WitStatus {
    match status {
        ExitStatus::Exited { code } => WitStatus::Exited(code),
        ExitStatus::Trapped { message, .. } => WitStatus::Trapped(message),
        ExitStatus::Killed { reason } => WitStatus::Killed(reason.to_string()),
        ExitStatus::FailedToStart { reason } => WitStatus::FailedToStart(reason),
    }
}

impl HostChild for WorkerState {
    fn spawn(
        &mut self,
        component: String,
        name: String,
        args: Vec<String>,
    ) -> Call<Resource<ChildRes>> {
        match self.spawn_child(&component, name, args) {
            Ok(child) => Ok(Ok(self.table.push(ChildRes(child))?)),
            Err(e) => reply(Err(e)),
        }
    }

    fn id(&mut self, child: Resource<ChildRes>) -> wasmtime::Result<u64> {
        Ok(self.table.get(&child)?.0.id())
    }

    fn is_alive(&mut self, child: Resource<ChildRes>) -> wasmtime::Result<bool> {
        Ok(self.table.get(&child)?.0.is_alive())
    }

    async fn join(&mut self, child: Resource<ChildRes>, wait: Option<u64>) -> Call<WitStatus> {
        let worker = self.table.get(&child)?.0.clone();
        let status = match timeout(wait) {
            Some(limit) => worker.join_timeout(limit).await.ok_or(IpcError::Timeout),
            None => Ok(worker.join().await),
        };
        reply(status.map(wit_status))
    }

    fn kill(&mut self, child: Resource<ChildRes>) -> wasmtime::Result<()> {
        self.table.get(&child)?.0.terminate();
        Ok(())
    }

    fn drop(&mut self, child: Resource<ChildRes>) -> wasmtime::Result<()> {
        self.table.delete(child)?;
        Ok(())
    }
}
