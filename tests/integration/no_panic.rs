//! Bad input never panics and never hangs: the entry points that read untrusted
//! text (workflow files, templates, provider replies and errors, key files,
//! recipients, prices files) fed near-valid input. These run on stable in CI; the
//! same entry points have libFuzzer targets under `fuzz/` for longer runs.
//!
//! A hang is a failure too, but there is no timer here: every strategy bounds the
//! size of what it makes, so a case that does not finish promptly is a real
//! super-linear blow-up, and the test run shows it by not finishing.

mod keys;
mod prices;
mod replies;
mod templates;
mod workflows;

use proptest::prelude::ProptestConfig;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        // Shrinking a mutated 5 KB file can take long; a failure prints the input anyway.
        max_shrink_iters: 256,
        ..ProptestConfig::default()
    }
}
