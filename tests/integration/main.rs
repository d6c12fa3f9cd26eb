//! The one integration-test binary: every test runs the real `byok-flow` binary.

mod support;

mod cli;
mod examples;
mod keys;
mod run;
mod scheduler_props;
mod scheduling;
mod validate;
