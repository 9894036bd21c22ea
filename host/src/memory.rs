//! The process's heap, where the C allocator needs telling (glibc only;
//! elsewhere these do nothing).

/// glibc gives every thread that allocates under contention an arena of its
/// own (up to 8 per core), each keeping freed memory for reuse. The service
/// runs a blocking thread per outbox lane plus the database and runtime
/// threads, so arenas rather than data would set its resident size; two keep
/// it down (each thread still has its own small-object cache).
/// `MALLOC_ARENA_MAX` in the environment still wins. Call before any thread starts.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes an allocator tunable.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// Hands freed heap pages back to the system (a compiled JSON Schema, a
/// config check): the allocator otherwise keeps them for reuse, and a
/// long-running process would carry a one-off peak as its resident size.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}
