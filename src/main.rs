//! The `alchemiser` binary: the command line over the library.

/// mimalloc instead of the system allocator: the broker and the journal writer allocate
/// on one thread and free on the other, which glibc's arenas handle slowly (a quarter of
/// the broker thread's time went to malloc/free). The v2 line: v3 returned freed pages
/// to the system so eagerly that plain actix messaging ran at 40% speed. The choice is
/// the binary's: the library leaves it to whoever links it (the benchmarks make the same
/// one, so that they measure what the binary runs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    alchemiser::drivers::cli::main()
}
