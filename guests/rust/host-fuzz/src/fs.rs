//! The filesystem half of the fuzzer: `wasi:filesystem` called directly
//! (not through wasi-libc, which would refuse the extreme values before the
//! host sees them): opens with random flags, reads and writes at offsets
//! near `u64::MAX`, sizes from the edges, random paths, listings, links,
//! renames, symlinks, times and streams.

use corral_guest::wasi::io::streams::{InputStream, OutputStream};

use crate::Tally;
use crate::rng::Rng;

wit_bindgen::generate!({
    path: "../../../wit",
    world: "wasi:filesystem/imports@0.2.12",
    with: {
        "wasi:io/error@0.2.12": corral_guest::wasi::io::error,
        "wasi:io/poll@0.2.12": corral_guest::wasi::io::poll,
        "wasi:io/streams@0.2.12": corral_guest::wasi::io::streams,
        "wasi:clocks/wall-clock@0.2.12": generate,
    },
});

use wasi::filesystem::preopens::get_directories;
use wasi::filesystem::types::{
    Advice, Descriptor, DescriptorFlags, DirectoryEntryStream, ErrorCode, NewTimestamp, OpenFlags,
    PathFlags,
};

/// Most handles of one kind kept open at once: past it, one is dropped.
const MAX_HELD: usize = 24;

/// The descriptors, listings and streams the fuzzer holds.
pub struct Files {
    /// The preopens (the test gives a scratch tree, a shared subtree and a
    /// read-only one).
    roots: Vec<Descriptor>,
    descriptors: Vec<Descriptor>,
    listings: Vec<DirectoryEntryStream>,
    readers: Vec<InputStream>,
    writers: Vec<OutputStream>,
}

/// Keeps `held` under [`MAX_HELD`] and adds `item`.
fn keep<T>(rng: &mut Rng, held: &mut Vec<T>, item: T) {
    if held.len() >= MAX_HELD {
        held.swap_remove(rng.below(held.len() as u64) as usize);
    }
    held.push(item);
}

/// Counts a filesystem call's result by its error code.
fn count<T>(tally: &mut Tally, what: &str, result: &Result<T, ErrorCode>) {
    match result {
        Ok(_) => tally.count("ok"),
        Err(e) => tally.count(format!("{what}:{}", e.name())),
    }
}

fn timestamp(rng: &mut Rng) -> NewTimestamp {
    match rng.below(4) {
        0 => NewTimestamp::NoChange,
        1 => NewTimestamp::Now,
        _ => NewTimestamp::Timestamp(wasi::clocks::wall_clock::Datetime {
            seconds: rng.size(),
            nanoseconds: rng.count(),
        }),
    }
}

fn advice(rng: &mut Rng) -> Advice {
    *rng.pick(&[
        Advice::Normal,
        Advice::Sequential,
        Advice::Random,
        Advice::WillNeed,
        Advice::DontNeed,
        Advice::NoReuse,
    ])
}

impl Files {
    /// The worker's preopens, and nothing open yet.
    pub fn open() -> Files {
        Files {
            roots: get_directories().into_iter().map(|(d, _)| d).collect(),
            descriptors: Vec::new(),
            listings: Vec::new(),
            readers: Vec::new(),
            writers: Vec::new(),
        }
    }

    /// A directory to resolve paths from: mostly a preopen, sometimes any
    /// open descriptor (a file there must be `not-directory`).
    fn base(&self, rng: &mut Rng) -> Option<&Descriptor> {
        if !self.descriptors.is_empty() && rng.one_in(3) {
            return Some(&self.descriptors[rng.below(self.descriptors.len() as u64) as usize]);
        }
        (!self.roots.is_empty()).then(|| &self.roots[rng.below(self.roots.len() as u64) as usize])
    }

    /// Any open descriptor, a preopen included.
    fn any(&self, rng: &mut Rng) -> Option<&Descriptor> {
        if self.descriptors.is_empty() || rng.one_in(5) {
            return self.base(rng);
        }
        Some(&self.descriptors[rng.below(self.descriptors.len() as u64) as usize])
    }

    /// One random filesystem call.
    pub fn step(&mut self, rng: &mut Rng, tally: &mut Tally) {
        let Some(base) = self.base(rng) else {
            return tally.count("fs:no-preopen");
        };
        match rng.below(24) {
            0..=3 => {
                // Mostly what programs ask for, so later calls have files to
                // work on; else any combination.
                let (open, flags) = if rng.one_in(3) {
                    (
                        OpenFlags::from_bits_truncate(rng.next() as u8),
                        DescriptorFlags::from_bits_truncate(rng.next() as u8),
                    )
                } else {
                    (
                        *rng.pick(&[OpenFlags::CREATE, OpenFlags::empty(), OpenFlags::DIRECTORY]),
                        DescriptorFlags::READ | DescriptorFlags::WRITE,
                    )
                };
                let follow = PathFlags::from_bits_truncate(rng.next() as u8);
                let r = base.open_at(follow, &rng.path(), open, flags);
                count(tally, "open-at", &r);
                if let Ok(fd) = r {
                    keep(rng, &mut self.descriptors, fd);
                }
            }
            4 => count(
                tally,
                "create-directory-at",
                &base.create_directory_at(&rng.path()),
            ),
            5 => {
                let follow = PathFlags::from_bits_truncate(rng.next() as u8);
                count(tally, "stat-at", &base.stat_at(follow, &rng.path()));
            }
            6 => count(tally, "unlink-file-at", &base.unlink_file_at(&rng.path())),
            7 => count(
                tally,
                "remove-directory-at",
                &base.remove_directory_at(&rng.path()),
            ),
            8 => {
                let to = self.base(rng).expect("a base exists");
                count(
                    tally,
                    "rename-at",
                    &base.rename_at(&rng.path(), to, &rng.path()),
                );
            }
            9 => {
                let to = self.base(rng).expect("a base exists");
                let follow = PathFlags::from_bits_truncate(rng.next() as u8);
                count(
                    tally,
                    "link-at",
                    &base.link_at(follow, &rng.path(), to, &rng.path()),
                );
            }
            10 => count(
                tally,
                "symlink-at",
                &base.symlink_at(&rng.path(), &rng.path()),
            ),
            11 => count(tally, "readlink-at", &base.readlink_at(&rng.path())),
            12 => {
                let (atime, mtime) = (timestamp(rng), timestamp(rng));
                let follow = PathFlags::from_bits_truncate(rng.next() as u8);
                count(
                    tally,
                    "set-times-at",
                    &base.set_times_at(follow, &rng.path(), atime, mtime),
                );
            }
            13 => {
                let follow = PathFlags::from_bits_truncate(rng.next() as u8);
                count(
                    tally,
                    "metadata-hash-at",
                    &base.metadata_hash_at(follow, &rng.path()),
                );
            }
            _ => self.descriptor_step(rng, tally),
        }
    }

    /// A call on an open descriptor, listing or stream.
    fn descriptor_step(&mut self, rng: &mut Rng, tally: &mut Tally) {
        let fd = self.any(rng).expect("a descriptor exists");
        match rng.below(20) {
            0 | 1 => {
                let data = rng.bytes();
                count(tally, "write", &fd.write(&data, rng.size()));
            }
            2 | 3 => {
                let r = fd.read(rng.size(), rng.size());
                count(tally, "read", &r);
            }
            4 => count(tally, "set-size", &fd.set_size(rng.size())),
            5 => count(tally, "stat", &fd.stat()),
            6 => {
                let r = fd.read_directory();
                count(tally, "read-directory", &r);
                if let Ok(listing) = r {
                    keep(rng, &mut self.listings, listing);
                }
            }
            7 if !self.listings.is_empty() => {
                let i = rng.below(self.listings.len() as u64) as usize;
                let n = rng.below(50);
                for _ in 0..n {
                    let r = self.listings[i].read_directory_entry();
                    let done = !matches!(r, Ok(Some(_)));
                    count(tally, "read-directory-entry", &r);
                    if done {
                        break;
                    }
                }
            }
            8 => {
                let r = fd.read_via_stream(rng.size());
                count(tally, "read-via-stream", &r);
                if let Ok(stream) = r {
                    keep(rng, &mut self.readers, stream);
                }
            }
            9 => {
                let r = if rng.one_in(2) {
                    fd.write_via_stream(rng.size())
                } else {
                    fd.append_via_stream()
                };
                count(tally, "write-via-stream", &r);
                if let Ok(stream) = r {
                    keep(rng, &mut self.writers, stream);
                }
            }
            10 => {
                let (atime, mtime) = (timestamp(rng), timestamp(rng));
                count(tally, "set-times", &fd.set_times(atime, mtime));
            }
            11 => count(
                tally,
                "advise",
                &fd.advise(rng.size(), rng.size(), advice(rng)),
            ),
            12 => {
                count(tally, "get-flags", &fd.get_flags());
                count(tally, "get-type", &fd.get_type());
                count(tally, "metadata-hash", &fd.metadata_hash());
                let other = self.any(rng).expect("a descriptor exists");
                let _ = fd.is_same_object(other);
            }
            13 => {
                count(tally, "sync", &fd.sync());
                count(tally, "sync-data", &fd.sync_data());
            }
            14 | 15 => self.stream_step(rng, tally),
            _ => {
                if !self.descriptors.is_empty() {
                    let i = rng.below(self.descriptors.len() as u64) as usize;
                    drop(self.descriptors.swap_remove(i));
                }
                if !self.listings.is_empty() && rng.one_in(2) {
                    drop(self.listings.swap_remove(0));
                }
                tally.count("ok");
            }
        }
    }

    /// Reads, writes, zeroes and splices on open streams, within what
    /// `check-write` grants (past it the ABI contract says trap).
    fn stream_step(&mut self, rng: &mut Rng, tally: &mut Tally) {
        if !self.readers.is_empty() && rng.one_in(2) {
            let i = rng.below(self.readers.len() as u64) as usize;
            let len = rng.size();
            let r = match rng.below(3) {
                0 => self.readers[i].read(len).map(|d| d.len() as u64),
                1 => self.readers[i].skip(len),
                _ => self.readers[i].blocking_read(len).map(|d| d.len() as u64),
            };
            return tally.count(match r {
                Ok(_) => "ok".to_string(),
                Err(e) => format!("stream.read:{e:?}").chars().take(40).collect(),
            });
        }
        if self.writers.is_empty() {
            return tally.count("fs:no-stream");
        }
        let i = rng.below(self.writers.len() as u64) as usize;
        let writer = &self.writers[i];
        let permit = match writer.check_write() {
            Ok(permit) => permit,
            Err(e) => {
                return tally.count(
                    format!("stream.check-write:{e:?}")
                        .chars()
                        .take(40)
                        .collect::<String>(),
                );
            }
        };
        let want = rng.size().min(permit);
        let r = match rng.below(4) {
            0 => writer.write(
                &rng.bytes()[..]
                    .iter()
                    .copied()
                    .take(want as usize)
                    .collect::<Vec<u8>>(),
            ),
            1 => writer.write_zeroes(want),
            2 => writer.blocking_write_and_flush(&vec![3; want.min(4096) as usize]),
            _ => match self.readers.first() {
                Some(reader) => writer.splice(reader, rng.size()).map(drop),
                None => writer.flush(),
            },
        };
        tally.count(match r {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("stream.write:{e:?}").chars().take(40).collect(),
        });
    }

    /// A call on a descriptor handle that was never issued, or one of
    /// another kind (a listing or a stream).
    pub fn forged_call(&mut self, rng: &mut Rng) {
        let handle = match (rng.below(3), self.listings.first(), self.readers.first()) {
            (0, Some(listing), _) => listing.handle(),
            (1, _, Some(reader)) => reader.handle(),
            _ => 0x7ff0_0000 + rng.below(1000) as u32,
        };
        println!("probe forged descriptor handle {handle}");
        // SAFETY: deliberately not a live descriptor: the host (or the
        // canonical ABI) must refuse it. It is never dropped.
        let forged = unsafe { Descriptor::from_handle(handle) };
        let _ = forged.stat();
        std::mem::forget(forged);
    }
}
