//! State and resume: detach, rerun, kill -9 at every phase, cancel, the mock.
