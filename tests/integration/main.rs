//! The one integration-test binary: every test runs the real `byok-flow` binary.

mod support;

mod cache;
mod cli;
mod cost;
mod examples;
mod github;
mod keys;
<<<<<<< HEAD
mod money;
=======
mod logs;
>>>>>>> 55b20a1 (Logs at -v, -vv, -vvv (issue 11, item 7))
mod no_panic;
mod providers;
mod run;
mod runs;
mod scheduler_props;
mod scheduling;
mod validate;
mod wire_specs;
