// Appends N lines to a shared file, the classic way: find the end, write
// the line in two writes (as buffered I/O may). Under the lock that is safe;
// without it (LOCK = `-`) workers overwrite each other's lines. Each line is
// `<name>:<seq>:<check>`, check a hash of the rest, so guests/rust/linecheck
// can tell intact lines from torn ones. Args: PATH LOCK N.
//
// JavaScript has no file API of its own here: it uses wasi:filesystem
// directly, through the run's preopened directories.
import { Lock } from 'corral:worker/lock@0.1.0';
import { name } from 'corral:worker/process@0.1.0';
import { getDirectories } from 'wasi:filesystem/preopens@0.2.12';
import { arg, die, fnv1a, hex16 } from './util.js';

/** Opens `path` for writing, creating it, in the preopen that holds it. */
function openForWrite(path) {
  const [dir, mount] = getDirectories()
    .filter(([, guest]) => path.startsWith(guest.endsWith('/') ? guest : `${guest}/`))
    .sort(([, a], [, b]) => b.length - a.length)[0] ?? [];
  if (!dir) die(`cannot open ${path}`, 'no mount holds it');
  const relative = path.slice(mount.length).replace(/^\/+/, '');
  return dir.openAt({ symlinkFollow: false }, relative, { create: true }, { write: true });
}

function append(file, line) {
  const head = line.subarray(0, line.length >> 1);
  const tail = line.subarray(line.length >> 1);
  const end = file.stat().size;
  file.write(head, end);
  file.write(tail, end + BigInt(head.length));
}

function appendLines() {
  const path = arg(1, '/log.txt');
  const lockName = arg(2, 'file');
  const n = arg(3, 100);
  const me = name();
  let lock = null;
  let file;
  try {
    if (lockName !== '-') lock = Lock.open(lockName);
  } catch (e) {
    die('open lock', e);
  }
  try {
    file = openForWrite(path);
  } catch (e) {
    die(`cannot open ${path}`, e);
  }
  const encoder = new TextEncoder();
  for (let i = 0; i < n; i++) {
    const body = `${me}:${String(i).padStart(6, '0')}`;
    const line = encoder.encode(`${body}:${hex16(fnv1a(encoder.encode(body)))}\n`);
    let guard = null;
    try {
      if (lock) guard = lock.acquire(undefined);
      append(file, line);
    } catch (e) {
      die(`append to ${path} failed`, e);
    } finally {
      // Dropping the guard releases the lock: now, not when collected.
      guard?.[Symbol.dispose]();
    }
  }
  console.log(`appended ${n} lines to ${path}`);
}

export const run = { run: appendLines };
