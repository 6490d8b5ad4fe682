//! The `agent-vault` binary: everything lives in the library; see `cli::main`.

fn main() -> std::process::ExitCode {
    agent_vault::cli::main()
}
