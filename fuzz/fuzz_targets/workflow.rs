//! A workflow file, as `byok-flow validate` and `estimate` read it: load (YAML,
//! schema, stand-in), check (names, providers, templates, cycles), render the
//! report, and, for a workflow that passes, draw its graph and estimate its cost.
//! Bytes that are not UTF-8 are skipped: `load_file` refuses them before
//! `load_source` is reached.

#![no_main]

use std::path::Path;
use std::sync::Arc;

use byok_flow::cost::estimate::estimate;
use byok_flow::cost::prices::{PriceTable, Pricing};
use byok_flow::workflow::{FileReport, load, validate};
use indexmap::IndexMap;
use libfuzzer_sys::fuzz_target;

fn assert_explained(report: &FileReport) {
    assert!(report.has_errors(), "a refused workflow has no error");
    for d in &report.diagnostics {
        assert!(!d.code.is_empty(), "a diagnostic without a code: {d:?}");
        assert!(
            !d.message.is_empty(),
            "a diagnostic without a message: {d:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.yaml");
    let checked = match load::load_source(path, Arc::from(text)) {
        Ok((loaded, report)) => validate::check(loaded, report),
        Err(report) => Err(report),
    };
    let report = match checked {
        Ok((checked, report)) => {
            let _ = checked.dag.to_mermaid(|i| checked.dag.name(i).to_string());
            let _ = checked.dag.to_dot(|i| checked.dag.name(i).to_string());
            let table = PriceTable::builtin();
            let _ = byok_flow::cost::check::unpriced(&checked, &table);
            let inputs: IndexMap<String, String> = checked
                .workflow
                .inputs
                .iter()
                .map(|(name, input)| {
                    (
                        name.clone(),
                        input.default.clone().unwrap_or_else(|| "x".into()),
                    )
                })
                .collect();
            let pricing = Pricing {
                table: &table,
                workflow: &checked.workflow,
                mock: false,
            };
            let _ = estimate(&checked, &inputs, &pricing, Some(1.0));
            report
        }
        Err(report) => {
            assert_explained(&report);
            report
        }
    };
    let _ = report.render(false);
});
