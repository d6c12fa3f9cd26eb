//! Prices files (`--prices FILE`): parsed, checked, and every row priced.

use byok_flow::cost::prices::PriceTable;
use byok_flow::usage::Usage;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Value as Json, json};

use super::config;

fn price_number() -> BoxedStrategy<Json> {
    prop_oneof![
        (0.0f64..1_000.0).prop_map(Json::from),
        any::<f64>().prop_map(Json::from),
        Just(json!(1e308)),
        Just(json!(u64::MAX)),
        Just(json!(-1)),
        Just(json!("3")),
        Just(Json::Null),
    ]
    .boxed()
}

fn price_entry() -> BoxedStrategy<Json> {
    let fields = prop::collection::vec(
        (
            select(
                &[
                    "input",
                    "output",
                    "cache_read",
                    "cache_write",
                    "cache_write_1h",
                    "context_window",
                    "max_output",
                    "deprecated",
                    "note",
                    "bogus",
                ][..],
            ),
            price_number(),
        ),
        0..8,
    );
    let tier = prop::collection::vec(
        (
            select(&["above", "input", "output", "cache_read", "cache_write"][..]),
            price_number(),
        ),
        0..5,
    );
    (fields, prop::option::of(tier))
        .prop_map(|(fields, tier)| {
            let mut entry: serde_json::Map<String, Json> = fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            if let Some(tier) = tier {
                entry.insert(
                    "long_context".into(),
                    Json::Object(tier.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
                );
            }
            Json::Object(entry)
        })
        .boxed()
}

fn prices_text() -> BoxedStrategy<String> {
    let model = prop_oneof![
        Just("openai/gpt-4o".to_string()),
        Just("x/y".to_string()),
        "[a-z]{1,4}(/[a-z]{1,4})?",
    ];
    (
        prop::collection::vec((model.clone(), price_entry()), 0..5),
        prop::collection::vec((model.clone(), model), 0..3),
        prop::option::of(select(&["USD per million tokens", "EUR"][..])),
        any::<Index>(),
    )
        .prop_map(|(models, aliases, units, cut)| {
            let mut table = json!({
                "models": models.into_iter().collect::<serde_json::Map<_, _>>(),
                "aliases": aliases.into_iter().map(|(a, b)| (a, Json::from(b))).collect::<serde_json::Map<_, _>>(),
            });
            if let Some(units) = units {
                table["units"] = json!(units);
            }
            let text = table.to_string();
            // Now and then, a file cut short.
            if cut.index(8) == 0 {
                let boundaries: Vec<usize> = text.char_indices().map(|(b, _)| b).collect();
                return text[..boundaries[cut.index(boundaries.len())]].to_string();
            }
            text
        })
    .boxed()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn prices_files_are_read_or_refused(text in prices_text()) {
        let Ok(table) = PriceTable::parse(&text) else {
            return Ok(());
        };
        let _ = table.describe();
        let usages = [
            Usage::default(),
            Usage { input: 1_000, output: 500, cache_read: 2_000, cache_write: 3_000, ..Usage::default() },
            Usage { input: u64::MAX / 4, output: u64::MAX / 4, cache_read: u64::MAX / 4, cache_write: u64::MAX / 4, ..Usage::default() },
        ];
        for key in table.models.keys().chain(table.aliases.keys()) {
            let Some((_, entry)) = table.get(key) else { continue };
            let price = entry.price();
            for usage in &usages {
                let _ = price.cost(usage);
                let _ = price.expected(usage.input, usage.output);
                let _ = price.worst_case(usage.input, usage.output);
            }
        }
    }
}
