//! The `agent-vault` binary: everything lives in the library; see `cli::main`.

/// jemalloc instead of glibc malloc: less CPU per proxied request (the data path allocates
/// per request), and allocations as large as the master key's Argon2 block go to an arena
/// that returns them to the system at once, so the idle server stays small.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    agent_vault::cli::main()
}
