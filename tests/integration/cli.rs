//! The command line's basics: version, schema, graph.

use crate::support::{byok_flow, example, repo};

#[test]
fn version_prints_the_package_version() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path()).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("byok-flow {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn committed_schema_is_current() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path()).arg("schema").output().unwrap();
    assert!(out.status.success());
    let committed = std::fs::read_to_string(repo().join("schemas/workflow.schema.json")).unwrap();
    assert!(
        committed == String::from_utf8_lossy(&out.stdout),
        "schemas/workflow.schema.json is stale: run `cargo run -- schema > schemas/workflow.schema.json`"
    );
}

#[test]
fn graph_draws_mermaid_and_dot() {
    let home = tempfile::tempdir().unwrap();
    let out = byok_flow(home.path())
        .args(["graph"])
        .arg(example("research.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!(
        "graph_research_mermaid",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = byok_flow(home.path())
        .args(["graph", "--format", "dot"])
        .arg(example("research.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!("graph_research_dot", String::from_utf8_lossy(&out.stdout));
}
