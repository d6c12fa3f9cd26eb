//! The one integration-test binary: every test runs the real `byok-flow` binary.

mod support;

mod cli;
mod cost;
mod examples;
mod keys;
mod no_panic;
mod providers;
mod run;
mod scheduler_props;
mod scheduling;
mod validate;
mod wire_specs;
