//! Path resolution in a `MemFs`: one walk from a directory, component by
//! component, that never leaves the directory it started from. Locks one
//! directory at a time, to look up one name (see the tree's locking rules).

use std::sync::Arc;

use super::inode::{Body, Inode, lookup};
use crate::vfs::error::FsError;
use crate::vfs::path::{self, Component, MAX_SYMLINK_HOPS};

/// One path resolution in progress.
///
/// `..` pops the stack of directories entered so far and may never pop the
/// directory the walk started from: a handle reaches only what lies below
/// it, like a cap-std `Dir`. Symlink targets are pushed in front of the
/// components still to walk, so they resolve from the link's directory and
/// obey the same limit.
pub(super) struct Walker {
    stack: Vec<Arc<Inode>>,
    /// Components still to walk, the next one last.
    pending: Vec<Component>,
    hops: u32,
    /// The last component must turn out to be a directory (a trailing slash).
    pub(super) must_be_dir: bool,
}

impl Walker {
    pub(super) fn new(start: &Arc<Inode>, path: &str) -> Result<Walker, FsError> {
        let parsed = path::parse(path)?;
        let mut pending = parsed.components;
        pending.reverse();
        Ok(Walker {
            stack: vec![Arc::clone(start)],
            pending,
            hops: 0,
            must_be_dir: parsed.trailing_slash,
        })
    }

    /// The directory reached so far.
    pub(super) fn top(&self) -> &Arc<Inode> {
        self.stack
            .last()
            .expect("the walk stack always holds its start")
    }

    pub(super) fn climb(&mut self) -> Result<(), FsError> {
        if self.stack.len() == 1 {
            return Err(FsError::NotPermitted);
        }
        self.stack.pop();
        Ok(())
    }

    /// Queues a symlink's target in place of the link.
    pub(super) fn expand(&mut self, target: &str, is_last: bool) -> Result<(), FsError> {
        self.hops += 1;
        if self.hops > MAX_SYMLINK_HOPS {
            return Err(FsError::Loop);
        }
        let parsed = path::parse(target)?;
        if is_last && parsed.trailing_slash {
            self.must_be_dir = true;
        }
        self.pending.extend(parsed.components.into_iter().rev());
        Ok(())
    }

    /// Walks every component but the last and returns the last, leaving its
    /// directory at `top()`.
    pub(super) fn next_last(&mut self) -> Result<Component, FsError> {
        loop {
            let component = self
                .pending
                .pop()
                .expect("paths and link targets have at least one component");
            if self.pending.is_empty() {
                return Ok(component);
            }
            match component {
                Component::Current => {}
                Component::Parent => self.climb()?,
                Component::Name(name) => {
                    let child = lookup(self.top(), &name)?;
                    match &child.body {
                        Body::Dir(_) => self.stack.push(child),
                        Body::Symlink { target, .. } => self.expand(target, false)?,
                        Body::File(_) => return Err(FsError::NotDirectory),
                    }
                }
            }
        }
    }

    /// Walks the whole path; `follow` says whether a symlink in the last
    /// component is followed (a trailing slash always follows).
    pub(super) fn resolve(mut self, follow: bool) -> Result<Arc<Inode>, FsError> {
        loop {
            let node = match self.next_last()? {
                Component::Current => Arc::clone(self.top()),
                Component::Parent => {
                    self.climb()?;
                    Arc::clone(self.top())
                }
                Component::Name(name) => {
                    let child = lookup(self.top(), &name)?;
                    if let Some(target) = child.symlink_target()
                        && (follow || self.must_be_dir)
                    {
                        self.expand(target, true)?;
                        continue;
                    }
                    child
                }
            };
            if self.must_be_dir && !node.is_dir() {
                return Err(FsError::NotDirectory);
            }
            return Ok(node);
        }
    }

    /// Walks to the last component, which must be a name: `.` and `..` cannot
    /// be created, removed or renamed, and fail with `if_dot`.
    pub(super) fn last_name(&mut self, if_dot: FsError) -> Result<String, FsError> {
        let last = self.next_last()?;
        self.name_of(last, if_dot)
    }

    /// The name in `last` (the component `next_last` returned), or `if_dot`.
    pub(super) fn name_of(&mut self, last: Component, if_dot: FsError) -> Result<String, FsError> {
        match last {
            Component::Name(name) => Ok(name),
            Component::Current => Err(if_dot),
            Component::Parent => {
                self.climb()?;
                Err(if_dot)
            }
        }
    }
}
