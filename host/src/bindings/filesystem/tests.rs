//! The binding's answers that no guest libc asks for (`is-same-object`,
//! `filesystem-error-code` on a foreign error, forged handles, the flags
//! libc never sets); the end-to-end tests in `tests/vfs.rs` cover the rest.

use super::types::{Host as _, HostDescriptor as _};
use super::*;
use crate::runtime::WorkerState;
use crate::vfs::{Limits, MemFs, Mount, MountTable};

/// A worker's state with the tree at `/` and a read-only copy at `/ro`.
fn worker() -> WorkerState {
    let fs = MemFs::new(Limits::UNLIMITED);
    let mut mounts = MountTable::new();
    mounts
        .add("/", Mount::mem(&fs, "/", false).unwrap())
        .unwrap();
    mounts
        .add("/ro", Mount::mem(&fs, "/", true).unwrap())
        .unwrap();
    WorkerState::for_tests(mounts)
}

/// A second handle on the same resource, for calls that consume one.
fn again<T: 'static>(resource: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(resource.rep())
}

fn preopens(fs: &mut VfsCtxView<'_>) -> (Resource<Descriptor>, Resource<Descriptor>) {
    let mut dirs = preopens::Host::get_directories(fs).unwrap().into_iter();
    let (root, root_path) = dirs.next().unwrap();
    let (ro, ro_path) = dirs.next().unwrap();
    assert_eq!((root_path.as_str(), ro_path.as_str()), ("/", "/ro"));
    (root, ro)
}

fn open(
    fs: &mut VfsCtxView<'_>,
    dir: &Resource<Descriptor>,
    path: &str,
    create: bool,
) -> Resource<Descriptor> {
    let open_flags = if create {
        OpenFlags::CREATE
    } else {
        OpenFlags::empty()
    };
    let flags = DescriptorFlags::READ | DescriptorFlags::WRITE;
    fs.open_at(
        again(dir),
        PathFlags::empty(),
        path.into(),
        open_flags,
        flags,
    )
    .unwrap()
    .unwrap()
}

#[test]
fn is_same_object_follows_identity_not_names() {
    let mut worker = worker();
    let mut fs = worker.vfs();
    let (root, _) = preopens(&mut fs);
    let a = open(&mut fs, &root, "a", true);
    let b = open(&mut fs, &root, "b", true);
    fs.link_at(
        again(&root),
        PathFlags::empty(),
        "a".into(),
        again(&root),
        "a2".into(),
    )
    .unwrap()
    .unwrap();
    let a2 = open(&mut fs, &root, "a2", false);
    assert!(fs.is_same_object(again(&a), again(&a2)).unwrap());
    assert!(!fs.is_same_object(again(&a), again(&b)).unwrap());
    assert!(!fs.is_same_object(again(&a), again(&root)).unwrap());
    let root2 = open_dir(&mut fs, &root, ".");
    assert!(fs.is_same_object(again(&root), root2).unwrap());
}

fn open_dir(
    fs: &mut VfsCtxView<'_>,
    dir: &Resource<Descriptor>,
    path: &str,
) -> Resource<Descriptor> {
    fs.open_at(
        again(dir),
        PathFlags::empty(),
        path.into(),
        OpenFlags::DIRECTORY,
        DescriptorFlags::READ,
    )
    .unwrap()
    .unwrap()
}

#[test]
fn metadata_hash_agrees_by_handle_and_by_path_and_tracks_changes() {
    let mut worker = worker();
    let mut fs = worker.vfs();
    let (root, _) = preopens(&mut fs);
    let a = open(&mut fs, &root, "a", true);
    let by_handle = fs.metadata_hash(again(&a)).unwrap().unwrap();
    let by_path = fs
        .metadata_hash_at(again(&root), PathFlags::empty(), "a".into())
        .unwrap()
        .unwrap();
    let pair = |hash: MetadataHashValue| (hash.lower, hash.upper);
    assert_eq!(pair(by_handle), pair(by_path));
    assert_eq!(fs.write(again(&a), b"x".to_vec(), 0).unwrap(), Ok(1));
    let changed = fs.metadata_hash(again(&a)).unwrap().unwrap();
    assert_ne!(pair(changed), pair(by_handle));
}

#[test]
fn stream_errors_map_back_to_their_code() {
    let mut worker = worker();
    let mut fs = worker.vfs();
    let ours = fs
        .table
        .push(wasmtime::Error::new(FsError::InsufficientSpace))
        .unwrap();
    let foreign = fs
        .table
        .push(wasmtime::Error::msg("not a filesystem error"))
        .unwrap();
    assert_eq!(
        fs.filesystem_error_code(ours).unwrap(),
        Some(ErrorCode::InsufficientSpace)
    );
    assert_eq!(fs.filesystem_error_code(foreign).unwrap(), None);
}

#[test]
fn forged_and_mistyped_handles_trap_instead_of_panicking() {
    let mut worker = worker();
    let mut fs = worker.vfs();
    let (root, _) = preopens(&mut fs);
    let forged: Resource<Descriptor> = Resource::new_borrow(root.rep() + 1000);
    assert!(fs.stat(forged).is_err());
    let stream = fs.read_directory(again(&root)).unwrap().unwrap();
    let mistyped: Resource<Descriptor> = Resource::new_borrow(stream.rep());
    assert!(fs.get_type(mistyped).is_err());
    let dropped = again(&root);
    types::HostDescriptor::drop(&mut fs, root).unwrap();
    assert!(fs.get_flags(dropped).is_err(), "a dropped handle is gone");
}

#[test]
fn flags_that_cannot_be_honoured_are_refused() {
    let mut worker = worker();
    let mut fs = worker.vfs();
    let (root, ro) = preopens(&mut fs);
    let rw_flags = fs.get_flags(again(&root)).unwrap().unwrap();
    assert_eq!(
        rw_flags,
        DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY
    );
    assert_eq!(fs.get_flags(again(&ro)).unwrap(), Ok(DescriptorFlags::READ));
    let mutate = DescriptorFlags::READ | DescriptorFlags::MUTATE_DIRECTORY;
    let opened = fs.open_at(
        again(&ro),
        PathFlags::empty(),
        ".".into(),
        OpenFlags::empty(),
        mutate,
    );
    assert_eq!(opened.unwrap().err(), Some(ErrorCode::ReadOnly));
    let sync = DescriptorFlags::READ | DescriptorFlags::DATA_INTEGRITY_SYNC;
    let opened = fs.open_at(
        again(&root),
        PathFlags::empty(),
        ".".into(),
        OpenFlags::empty(),
        sync,
    );
    assert_eq!(opened.unwrap().err(), Some(ErrorCode::Unsupported));
    open(&mut fs, &root, "a", true);
    let linked = fs.link_at(
        again(&root),
        PathFlags::SYMLINK_FOLLOW,
        "a".into(),
        again(&root),
        "b".into(),
    );
    assert_eq!(linked.unwrap(), Err(ErrorCode::Invalid));
}

#[test]
fn past_max_handles_every_opening_call_is_insufficient_memory_until_one_is_dropped() {
    let mut worker = worker();
    let limits = crate::ledger::LedgerLimits {
        handles: 5,
        ..Default::default()
    };
    worker.vfs.ledger = Arc::new(Ledger::new(limits, |_| {}));
    let mut fs = worker.vfs();
    let (root, _ro) = preopens(&mut fs);
    let a = open(&mut fs, &root, "a", true);
    let reader = fs.read_via_stream(again(&a), 0).unwrap().unwrap();
    let _writer = fs.append_via_stream(again(&a)).unwrap().unwrap();
    let full = Some(ErrorCode::InsufficientMemory);
    assert_eq!(fs.read_directory(again(&root)).unwrap().err(), full);
    assert_eq!(fs.read_via_stream(again(&a), 0).unwrap().err(), full);
    assert_eq!(fs.write_via_stream(again(&a), 0).unwrap().err(), full);
    let opened = fs.open_at(
        again(&root),
        PathFlags::empty(),
        "b".into(),
        OpenFlags::CREATE,
        DescriptorFlags::READ,
    );
    assert_eq!(opened.unwrap().err(), full);
    assert_eq!(fs.ctx.ledger.held(Kind::Handle), 5);
    fs.table.delete(reader).unwrap();
    assert_eq!(fs.ctx.ledger.held(Kind::Handle), 4);
    let stream = fs.read_directory(again(&root)).unwrap().unwrap();
    types::HostDirectoryEntryStream::drop(&mut fs, stream).unwrap();
    types::HostDescriptor::drop(&mut fs, a).unwrap();
    assert_eq!(fs.ctx.ledger.held(Kind::Handle), 3);
}
