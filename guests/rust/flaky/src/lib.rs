//! Echoes its input, except: `trap` traps (wasm `unreachable`), `fail`
//! returns an error, `spin` loops forever. For testing failure isolation.

fn flaky(input: &[u8]) -> Result<Vec<u8>, String> {
    match input {
        b"trap" => core::arch::wasm32::unreachable(),
        b"fail" => Err("asked to fail".into()),
        b"spin" => loop {
            std::hint::black_box(0u64);
        },
        other => Ok(other.to_vec()),
    }
}

corral_guest::task!(flaky);
