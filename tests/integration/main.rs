//! The one integration-test binary: every test runs the real `byok-flow` binary.

mod support;

mod cli;
mod cost;
mod examples;
mod github;
mod keys;
mod providers;
mod run;
mod scheduler_props;
mod scheduling;
mod validate;
mod wire_specs;
