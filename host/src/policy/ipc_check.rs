//! A policy's IPC rules as a worker's host calls apply them: what opening a
//! named object grants, and whether a handle allows one operation. Each
//! refusal is reported as a denial event and returned as `denied`.
//! Depends on the policy types, `ipc`'s error and the reporter; nothing of
//! wasmtime, the bindings or the runtime.

use crate::ipc::IpcError;
use crate::reporter::Reporter;

use super::{ObjectKind, Op, OpSet, Policy};

/// The operations `policy` grants on the object `name`: `denied` (and a
/// denial event) if none.
pub(crate) fn grant(
    policy: &Policy,
    reporter: &Reporter,
    kind: ObjectKind,
    name: &str,
) -> Result<OpSet, IpcError> {
    let Some(grants) = &policy.ipc else {
        return Ok(OpSet::ALL);
    };
    let ops = grants.ops_for(kind, name);
    if ops.is_empty() {
        let rule = format!("ipc.{}", kind.table_key());
        reporter.deny(&rule, format!("open {} `{name}`", kind.name()));
        return Err(IpcError::Denied(format!(
            "policy `{}` grants no access to {} `{name}` ({rule})",
            policy.name,
            kind.name()
        )));
    }
    Ok(ops)
}

/// Checks one operation against what was `granted` at open. Every IPC call
/// passes here: the check itself is one AND, inlined into the caller.
#[inline]
pub(crate) fn check(
    policy: &Policy,
    reporter: &Reporter,
    granted: OpSet,
    op: Op,
    kind: ObjectKind,
    name: &str,
) -> Result<(), IpcError> {
    if granted.contains(op) {
        return Ok(());
    }
    refuse(policy, reporter, op, kind, name)
}

/// Reports and returns the refusal of `op`.
#[cold]
fn refuse(
    policy: &Policy,
    reporter: &Reporter,
    op: Op,
    kind: ObjectKind,
    name: &str,
) -> Result<(), IpcError> {
    let rule = format!("ipc.{}", kind.table_key());
    reporter.deny(&rule, format!("{} {} `{name}`", op.name(), kind.name()));
    Err(IpcError::Denied(format!(
        "policy `{}` does not grant `{}` on {} `{name}` ({rule})",
        policy.name,
        op.name(),
        kind.name()
    )))
}
