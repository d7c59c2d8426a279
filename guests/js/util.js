// Helpers every JavaScript guest in this repository shares, mirroring the
// Rust SDK's (guests/rust/sdk): arguments, exit codes, FNV-1a.
import { getArguments } from 'wasi:cli/environment@0.2.12';
import { exit } from 'wasi:cli/exit@0.2.12';

/** The `n`th argument after argv[0], or `fallback` (numbers parsed). */
export function arg(n, fallback) {
  const value = getArguments()[n];
  if (value === undefined) return fallback;
  if (typeof fallback === 'number') {
    const parsed = Number.parseInt(value, 10);
    return Number.isNaN(parsed) ? fallback : parsed;
  }
  return value;
}

const MASK = (1n << 64n) - 1n;

/** FNV-1a of a message: summed over messages, an order-independent checksum. */
export function fnv1a(bytes) {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & MASK;
  return h;
}

/** Adds two checksums, wrapping at 64 bits like the Rust guests. */
export function wrappingAdd(a, b) {
  return (a + b) & MASK;
}

/** A 64-bit value as 16 hex digits. */
export function hex16(value) {
  return value.toString(16).padStart(16, '0');
}

/** The Corral error a failed call threw, e.g. `{ tag: 'closed' }`. */
export function corralError(e) {
  return e?.payload ?? e;
}

/** Reports `what` failed and why, then ends the worker unsuccessfully. */
export function die(what, e) {
  console.error(`${what}: ${JSON.stringify(corralError(e)) ?? e}`);
  exit({ tag: 'err', val: undefined });
}
