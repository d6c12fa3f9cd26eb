//! How the process hands memory back to the system between its phases.
//!
//! A run's phases each peak and then let go: loading a 100,000-agent workflow
//! builds whole trees of the file that are dropped once the model is made, and
//! the run's frontier is dropped before its records are read back. With glibc's
//! defaults, freed memory in the middle of the heap stays counted against the
//! process, and after the first large buffer is freed glibc moves the threshold
//! for giving large blocks their own mapping up to 32 MB, so later large buffers
//! come from the heap too and are never returned. Measured on the 100,000-agent
//! mock run (README, "Performance"): a fixed threshold and a trim after each
//! phase lower the peak and the CPU spent on page faults and copies.
//!
//! The only `unsafe` in byok-flow: two calls into the C library, each with what
//! makes it sound beside it.
#![allow(unsafe_code)]

/// Large blocks (over 128 KiB) get their own mapping, returned when freed: the
/// threshold is fixed at glibc's own starting value, so it does not climb.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` changes a setting of the C allocator; it is called once,
    // from `main`, before any thread is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Returns the free memory of every allocator arena to the system; called when a
/// phase that held much has let go of it.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases pages no allocation uses; it is safe to
    // call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
