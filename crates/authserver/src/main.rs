//! The `authserver` binary: parses the command line and hands over to [`authserver::cli`].

fn main() -> std::process::ExitCode {
    authserver::cli::main()
}
