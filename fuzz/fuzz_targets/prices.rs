//! A `--prices FILE`: parsed and checked (`PriceTable::parse`, what `load` runs on
//! the file's text), then every model and alias priced and costed at extreme
//! usages, as `estimate`, the budget and a run's tally do.

#![no_main]

use byok_flow::cost::prices::PriceTable;
use byok_flow::usage::Usage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(table) = PriceTable::parse(text) else {
        return;
    };
    let _ = table.describe();
    let usages = [
        Usage::default(),
        Usage {
            input: 1_000,
            output: 500,
            cache_read: 2_000,
            cache_write: 3_000,
        },
        Usage {
            input: u64::MAX / 4,
            output: u64::MAX / 4,
            cache_read: u64::MAX / 4,
            cache_write: u64::MAX / 4,
        },
    ];
    for key in table.models.keys().chain(table.aliases.keys()) {
        let Some((_, entry)) = table.get(key) else {
            continue;
        };
        let price = entry.price();
        for usage in &usages {
            let _ = price.cost(usage);
            let _ = price.expected(usage.input, usage.output);
            let _ = price.worst_case(usage.input, usage.output);
        }
    }
});
