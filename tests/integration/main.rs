//! The one integration-test binary: every test runs the real `byok-flow` binary.

mod support;

mod bad_input;
mod batch;
mod browser;
mod cache;
mod cli;
mod cost;
mod estimate_diff;
mod examples;
mod github;
mod init;
mod issue14;
mod keys;
mod logs;
mod map_estimate;
mod money;
mod no_panic;
mod prompt_cache;
mod providers;
mod report;
mod rows;
mod rows_lifecycle;
mod rows_report;
mod run;
mod runs;
mod scheduler_props;
mod scheduling;
mod tools;
mod validate;
mod wire_specs;
