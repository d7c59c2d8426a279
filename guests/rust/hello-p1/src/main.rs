//! A plain WASI preview1 core module (wasm32-wasip1): no component model, no
//! Corral interfaces. The host wraps it into a component with the preview1
//! adapter before running it.

fn main() {
    let args: Vec<String> = std::env::args().collect();
    println!("hello from a preview1 module, args: {:?}", &args[1..]);
    if let Ok(v) = std::env::var("GREETING") {
        println!("GREETING={v}");
    }
}
