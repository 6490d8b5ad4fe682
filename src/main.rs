//! The `agent-vault` binary: everything lives in the library; see `cli::main`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    agent_vault::cli::main()
}
