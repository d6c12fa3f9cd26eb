//! byok-flow: run declarative LLM workflows ("squads") with your own API keys.
//!
//! The binary's `main.rs` only parses the command line and maps the result to an
//! exit code; everything else lives in these modules, one concern each.

pub mod batch;
pub mod cache;
pub mod catalog;
pub mod cli;
pub mod commands;
pub mod cost;
pub mod dag;
pub mod dataset;
pub mod error;
pub mod events;
pub mod history;
pub mod init;
pub mod keys;
pub mod logging;
pub mod memory;
pub mod printable;
pub mod prompt_cache;
pub mod providers;
pub mod read;
pub mod record;
pub mod report;
pub mod runner;
pub mod scheduler;
pub mod session;
pub mod settings;
pub mod suggest;
pub mod template;
pub mod tools;
pub mod usage;
pub mod workflow;
