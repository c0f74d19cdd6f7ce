//! The `tally` binary: everything lives in the library's [`tally::cli`].

fn main() -> std::process::ExitCode {
    tally::cli::main()
}
