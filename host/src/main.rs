//! The `mailhost` binary: a thin layer over the library.

fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    mailhost::cli::run()
}

/// glibc gives every thread that allocates under contention an arena of its
/// own (up to 8 per core), each keeping freed memory for reuse. The service
/// runs a blocking thread per outbox lane plus the database and runtime
/// threads, so the arenas, not the data, set its resident size; two arenas
/// keep it flat (each thread still has its own small-object cache).
/// `MALLOC_ARENA_MAX` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes an allocator tunable; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
