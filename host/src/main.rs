//! The `mailhost` binary: a thin layer over the library.

fn main() -> std::process::ExitCode {
    mailhost::memory::limit_arenas();
    mailhost::cli::run()
}
