//! The `tally` binary: everything lives in the library's [`tally::cli`].

/// mimalloc instead of the C library's allocator: a server's requests allocate and free many
/// small, short-lived buffers across threads, where glibc's malloc spent about a tenth of the
/// CPU of a pipelined RESP load (see docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tally::cli::main()
}
