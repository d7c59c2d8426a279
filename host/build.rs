//! Builds the policy probe guest (guests/rust/policy-probe) for
//! wasm32-wasip2 so that `corral policy test` ships with it inside the
//! binary. It gets its own target directory: the outer build holds the
//! lock on the shared one.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let guests = manifest.join("../guests/rust");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    for watched in ["policy-probe", "sdk", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", guests.join(watched).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("../wit").display()
    );

    let target_dir = out.join("guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build
        .current_dir(&guests)
        .args(["build", "--release", "--quiet", "-p", "policy-probe"])
        .args(["--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir);
    // The outer build's settings are for the host, not for wasm.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WRAPPER",
    ] {
        build.env_remove(var);
    }
    let status = build
        .status()
        .expect("running cargo to build the policy probe guest");
    if !status.success() {
        panic!(
            "building the policy probe guest (guests/rust/policy-probe) for wasm32-wasip2 failed; \
             if the target is missing: rustup target add wasm32-wasip2"
        );
    }
    let built = target_dir.join("wasm32-wasip2/release/policy-probe.wasm");
    std::fs::copy(&built, out.join("policy-probe.wasm")).expect("copying the built policy probe");
}
