//! The one integration-test binary: every test runs the real `byok-flow` binary.

mod support;

mod cache;
mod cli;
mod cost;
mod examples;
mod github;
mod keys;
mod no_panic;
mod providers;
mod rows;
mod rows_lifecycle;
mod run;
mod runs;
mod scheduler_props;
mod scheduling;
mod validate;
mod wire_specs;
