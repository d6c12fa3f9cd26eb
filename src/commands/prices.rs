//! `byok-flow prices [MODEL]`: the pricing table in use, with its source and date,
//! or one model's prices, limits and aliases.

use std::path::PathBuf;

use serde_json::json;

use crate::cost::lifecycle;
use crate::cost::prices::{Entry, PriceTable};
use crate::error::{Error, Exit, Result};
use crate::report::{Align, grid, per_million};
use crate::suggest;
use crate::workflow::diagnostic::counted;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// A model (`anthropic/claude-sonnet-4-6`, or just `gpt-4o`), or a provider
    /// (`groq`) to list its models. Without it, every model.
    #[arg(value_name = "MODEL")]
    pub model: Option<String>,

    /// Read prices from this file instead of the built-in table (format: data/prices.json).
    #[arg(long, value_name = "FILE", env = "BYOK_FLOW_PRICES")]
    pub prices: Option<PathBuf>,

    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &Args) -> Result<Exit> {
    let table = super::load_prices(args.prices.as_deref())?;
    let text = match args.model.as_deref() {
        None => listing(&table, None, args.json),
        Some(query) => match find(&table, query)? {
            Found::One(key) => detail(&table, &key, args.json),
            Found::Provider(prefix) => listing(&table, Some(&prefix), args.json),
        },
    };
    print!("{text}");
    Ok(Exit::Success)
}

/// What a query names.
enum Found {
    One(String),
    Provider(String),
}

/// The key, alias or provider a query names, or an error that says what is near.
fn find(table: &PriceTable, query: &str) -> Result<Found> {
    if table.get(query).is_some() {
        return Ok(Found::One(query.to_string()));
    }
    let keys = || table.models.keys().chain(table.aliases.keys());
    let bare: Vec<&String> = keys()
        .filter(|k| k.split_once('/').is_some_and(|(_, id)| id == query))
        .collect();
    match bare.as_slice() {
        [one] => return Ok(Found::One((*one).clone())),
        [] => {}
        many => {
            let list: Vec<&str> = many.iter().map(|k| k.as_str()).collect();
            return Err(Error::usage(format!(
                "`{query}` is priced under more than one provider: {}",
                list.join(", ")
            ))
            .hint(format!("name one, like `byok-flow prices {}`", list[0])));
        }
    }
    let prefix = format!("{query}/");
    if keys().any(|k| k.starts_with(&prefix)) {
        return Ok(Found::Provider(prefix));
    }
    let near = suggest::did_you_mean(query, keys().map(String::as_str)).or_else(|| {
        suggest::did_you_mean(
            query,
            keys().filter_map(|k| k.split_once('/').map(|(_, id)| id)),
        )
    });
    Err(Error::usage(format!(
        "no price for `{query}` in the {}",
        table.describe()
    ))
    .hint(near.unwrap_or_else(|| {
        "run `byok-flow prices` to list every model, or `byok-flow prices PROVIDER` for one provider's".into()
    })))
}

/// Every model (or every model of one provider) as a table.
fn listing(table: &PriceTable, prefix: Option<&str>, as_json: bool) -> String {
    let selected: Vec<(&String, &Entry)> = table
        .models
        .iter()
        .filter(|(k, _)| prefix.is_none_or(|p| k.starts_with(p)))
        .collect();
    if as_json {
        let models: serde_json::Map<String, serde_json::Value> = selected
            .iter()
            .map(|(k, e)| ((*k).clone(), json!(e)))
            .collect();
        let aliases: serde_json::Map<String, serde_json::Value> = table
            .aliases
            .iter()
            .filter(|(k, _)| prefix.is_none_or(|p| k.starts_with(p)))
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let value = json!({
            "source": table.source,
            "date": table.date,
            "upstream": table.upstream,
            "file": table.file,
            "units": "USD per million tokens",
            "models": models,
            "aliases": aliases,
        });
        return format!(
            "{}\n",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    }
    let header = [
        "model",
        "input",
        "output",
        "cache read",
        "cache write",
        "context",
        "max out",
        "retired",
    ];
    let mut align = [Align::Right; 8];
    align[0] = Align::Left;
    let optional = |v: Option<f64>| v.map_or_else(|| "-".to_string(), per_million);
    let count = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |n| n.to_string());
    let rows: Vec<Vec<String>> = selected
        .iter()
        .map(|(key, e)| {
            vec![
                (*key).clone(),
                per_million(e.input),
                per_million(e.output),
                optional(e.cache_read),
                optional(e.cache_write),
                count(e.context_window),
                count(e.max_output),
                e.retired.clone().unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    let aliases = table
        .aliases
        .keys()
        .filter(|k| prefix.is_none_or(|p| k.starts_with(p)))
        .count();
    format!(
        "Prices: {}.\nUSD per million tokens; context and max out in tokens; retired: the day the provider stops (or stopped) serving it.\n\n{}\n{} and {}. `byok-flow prices MODEL` shows one, with its aliases and successor.\n",
        table.describe(),
        grid(&header, &align, &rows, None),
        counted(rows.len(), "model"),
        if aliases == 1 {
            "1 alias".to_string()
        } else {
            format!("{aliases} aliases")
        },
    )
}

/// One model: prices, long-context rates, limits, aliases.
fn detail(table: &PriceTable, query: &str, as_json: bool) -> String {
    let Some((key, e)) = table.get(query) else {
        return String::new();
    };
    let aliases: Vec<&str> = table
        .aliases
        .iter()
        .filter(|(_, target)| target.as_str() == key)
        .map(|(alias, _)| alias.as_str())
        .collect();
    if as_json {
        let value = json!({
            "model": key,
            "query": query,
            "source": table.source,
            "date": table.date,
            "units": "USD per million tokens",
            "prices": e,
            "aliases": aliases,
        });
        return format!(
            "{}\n",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    }
    let mut out = String::new();
    if query == key {
        out.push_str(&format!("{key}\n"));
    } else {
        out.push_str(&format!("{query} is an alias of {key}\n"));
    }
    out.push_str(&format!("Prices: {}.\n\n", table.describe()));
    let mut rows: Vec<(String, String)> = vec![
        (
            "input".into(),
            format!("{} per million tokens", per_million(e.input)),
        ),
        (
            "output".into(),
            format!("{} per million tokens", per_million(e.output)),
        ),
    ];
    let mut add = |name: &str, value: Option<String>| {
        if let Some(v) = value {
            rows.push((name.to_string(), v));
        }
    };
    let price = |v: Option<f64>| v.map(|v| format!("{} per million tokens", per_million(v)));
    add("cache read", price(e.cache_read));
    add("cache write", price(e.cache_write));
    add("cache write, 1 hour", price(e.cache_write_1h));
    add(
        "long context",
        e.long_context.as_ref().map(|t| {
            let mut line = format!(
                "over {} input tokens: input {}, output {}",
                t.above,
                per_million(t.input),
                per_million(t.output)
            );
            for (what, rate) in [
                ("cache read", t.cache_read),
                ("cache write", t.cache_write),
                ("cache write, 1 hour", t.cache_write_1h),
            ] {
                if let Some(rate) = rate {
                    line.push_str(&format!(", {what} {}", per_million(rate)));
                }
            }
            line
        }),
    );
    let fee = |t: Option<crate::cost::prices::ToolPrice>, unit: &str| {
        t.map(|t| {
            let per = if t.per_request {
                "grounded request"
            } else {
                unit
            };
            format!("{} per 1,000 (per {per})", per_million(t.per_1k))
        })
    };
    add("web search", fee(e.web_search, "search"));
    add("web fetch", fee(e.web_fetch, "fetch"));
    add(
        "cached from",
        e.cache_min_tokens.map(|n| format!("{n} prompt tokens")),
    );
    add(
        "context window",
        e.context_window.map(|n| format!("{n} tokens")),
    );
    add("max output", e.max_output.map(|n| format!("{n} tokens")));
    add("deprecated", e.deprecated.clone());
    add(
        "retired",
        e.retired.as_ref().map(|date| {
            if *date <= lifecycle::today() {
                date.clone()
            } else {
                format!("{date} (to come)")
            }
        }),
    );
    add("successor", e.successor.clone());
    add("note", e.note.clone());
    add("aliases", (!aliases.is_empty()).then(|| aliases.join(", ")));
    let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, value) in rows {
        out.push_str(&format!("{name:width$}  {value}\n"));
    }
    out
}
