//! The `corral` binary: see `corral --help`.

fn main() -> std::process::ExitCode {
    corral::cli::main()
}
