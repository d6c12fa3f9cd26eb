#!/usr/bin/env python3
"""Build data/prices.json, the pricing table byok-flow ships in its binary.

Usage:
    python3 scripts/build-prices.py [UPSTREAM.json [LEGACY.json [LIFECYCLE.json]]] > data/prices.json

Inputs (defaults are the copies kept in data/upstream/, see its README.md, and
data/lifecycle.json, see data/README.md):
  - UPSTREAM.json: the LiteLLM model cost map (BerriAI/litellm
    model_prices_and_context_window.json), prices in USD per token.
  - LEGACY.json: an extract holding models retired upstream (Claude 3.5
    Sonnet/Haiku, Gemini 1.5), taken from an older snapshot of the same map.
  - LIFECYCLE.json: deprecation and retirement dates and successors from the
    providers' own deprecation pages, for what the map lacks or gets wrong.

To refresh: download a newer model_prices_and_context_window.json into
data/upstream/, update SOURCE_DATE and UPSTREAM below and in
data/upstream/README.md, re-run this script, review `git diff data/prices.json`
and the corrections it prints on stderr, and update the snapshots
(`cargo insta test --review`).

What it does, so the output can be checked by reading this file:
  - keeps entries whose `mode` is "chat" (a key was once reused upstream for an
    embedding model) and whose `litellm_provider` is one byok-flow has built in,
    and keys them the way a workflow names them: `PROVIDER/MODEL`;
  - converts USD per token to USD per million tokens, rounded to 6 decimals
    (a millionth of a dollar per million tokens);
  - for Anthropic models, sets the 1-hour cache-write price to 2x input, in the
    long-context tier too, from the tier's input (the documented rule; upstream lists a wrong one for some Claude 3 models) and
    fills missing cache prices from the multipliers (write 1.25x, read 0.1x);
  - drops a cache-write price below the input price (upstream writes 0 for
    DeepSeek, which has no separate charge; the input price then applies);
  - keeps one long-context tier (`*_above_NNNk_tokens`) when upstream has one;
  - adds aliases: the ones in ALIASES (documented by the providers), and an
    undated OpenAI/Anthropic id whose single dated twin has the same prices;
  - reads upstream's `deprecation_date` as the day the model is retired (the
    day requests start to fail: that is how the map uses it, e.g. Claude 3.7
    Sonnet's 2026-02-19), then merges LIFECYCLE.json over it, model by model
    (`deprecated`, `retired`, `successor`; an alias stands for its model), and
    prints each date it changes on stderr. Every successor must be a model (or
    alias) of the table or a model the provider names that the map does not
    price yet; a lifecycle entry for a model the table lacks is an error.
  - prices the tools the providers run (`web_search`, `web_fetch`, dollars per
    1,000 uses): LiteLLM's `search_context_cost_per_query` (the medium search
    context, the default) where present, billed per query for Gemini 3
    (`web_search_billing_unit: per_query`) and per grounded prompt for older
    Gemini models; else data/tool-prices.json (a documented list: per model, then
    per provider family); and the fewest tokens Anthropic caches
    (`prompt_cache_min_tokens`, else the same list).
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "LiteLLM model cost map (BerriAI/litellm model_prices_and_context_window.json)"
SOURCE_DATE = "2026-07-24"
UPSTREAM = (
    "mirror RoCry/llm-api-price commit 8442b939a6ead479f7995b5d74d8dce488bd0966 "
    "(upstream fetched 2026-07-24T18:23:43Z); retired models from commit "
    "37a047754773fe5d9fffb000f79c1757ecf2d83d (2026-03-12)"
)

# LiteLLM provider -> (byok-flow provider, key prefix to strip, or None for bare keys).
PROVIDERS = {
    "anthropic": ("anthropic", None),
    "openai": ("openai", None),
    "gemini": ("gemini", "gemini/"),
    "mistral": ("mistral", "mistral/"),
    "groq": ("groq", "groq/"),
    "deepseek": ("deepseek", "deepseek/"),
    "together_ai": ("together", "together_ai/"),
    "xai": ("xai", "xai/"),
    "openrouter": ("openrouter", "openrouter/"),
}

# Aliases the providers document, alias -> model (both as a workflow names them).
ALIASES = {
    # docs.anthropic.com "Models overview": model aliases.
    "anthropic/claude-3-5-sonnet-latest": "anthropic/claude-3-5-sonnet-20241022",
    "anthropic/claude-3-5-haiku-latest": "anthropic/claude-3-5-haiku-20241022",
    "anthropic/claude-3-7-sonnet-latest": "anthropic/claude-3-7-sonnet-20250219",
    "anthropic/claude-3-opus-latest": "anthropic/claude-3-opus-20240229",
    "anthropic/claude-sonnet-4-0": "anthropic/claude-sonnet-4-20250514",
    "anthropic/claude-opus-4-0": "anthropic/claude-opus-4-20250514",
    # platform.openai.com model pages: `gpt-4o` points to gpt-4o-2024-08-06.
    "openai/gpt-4o": "openai/gpt-4o-2024-08-06",
    # ai.google.dev model versions: `-latest` and `-002` of Gemini 1.5.
    "gemini/gemini-1.5-pro-latest": "gemini/gemini-1.5-pro",
    "gemini/gemini-1.5-pro-002": "gemini/gemini-1.5-pro",
    "gemini/gemini-1.5-flash-latest": "gemini/gemini-1.5-flash",
    "gemini/gemini-1.5-flash-002": "gemini/gemini-1.5-flash",
}

TIER_THRESHOLDS = [128_000, 200_000, 256_000, 272_000]
PRICE_FIELDS = ["input", "output", "cache_read", "cache_write", "cache_write_1h", "web_search", "web_fetch"]


def gemini_generation(model):
    """The major version of a Gemini model id (`gemini-2.5-flash`: 2), 0 when unknown."""
    m = re.match(r"gemini-(\d+)", model)
    return int(m.group(1)) if m else 0


def search_model(model):
    """OpenAI's models that search the web in Chat Completions."""
    return "-search-preview" in model or "-search-api" in model


def upstream_tools(key, raw, row):
    """Tool fees and the cache minimum from an upstream entry, where it has them."""
    per_query = (raw.get("search_context_cost_per_query") or {}).get("search_context_size_medium")
    provider, model = key.split("/", 1)
    if per_query is not None and (provider != "openai" or search_model(model)):
        fee = {"per_1k": round(float(per_query) * 1000, 6)}
        if provider == "gemini" and raw.get("web_search_billing_unit") != "per_query":
            fee["per_request"] = True
        row["web_search"] = fee
    if raw.get("prompt_cache_min_tokens") is not None:
        row["cache_min_tokens"] = int(raw["prompt_cache_min_tokens"])


def listed_tools(key, row, listed):
    """Fees and minimums the documented list gives, for what upstream lacks."""
    provider, model = key.split("/", 1)
    for field, value in listed["models"].get(key, {}).items():
        row.setdefault(field, value)
    family = None
    if provider == "anthropic":
        family = "anthropic"
    elif provider == "openai" and search_model(model):
        family = "openai-search"
    elif provider == "gemini" and model.startswith("gemini-") and gemini_generation(model) >= 2:
        family = "gemini-3" if gemini_generation(model) >= 3 else "gemini"
    for field, value in listed["defaults"].get(family, {}).items():
        row.setdefault(field, value)
    if provider == "anthropic" and "cache_min_tokens" not in row:
        # The longest prefix of the model's key the list names.
        matches = [p for p in listed["cache_min_tokens"] if key.startswith(p)]
        if matches:
            row["cache_min_tokens"] = listed["cache_min_tokens"][max(matches, key=len)]


def per_million(value):
    """USD per token -> USD per million tokens, rounded to 6 decimals."""
    if value is None:
        return None
    return round(float(value) * 1_000_000, 6)


def tokens(value):
    """A token limit as an integer (upstream writes a few as `2000000.0`)."""
    return None if value is None else int(value)


def entry(raw):
    """One model's row from an upstream entry (prices per token)."""
    cache_read = raw.get("cache_read_input_token_cost", raw.get("input_cost_per_token_cache_hit"))
    row = {
        "input": per_million(raw.get("input_cost_per_token")),
        "output": per_million(raw.get("output_cost_per_token")),
        "cache_read": per_million(cache_read),
        "cache_write": per_million(raw.get("cache_creation_input_token_cost")),
        "cache_write_1h": per_million(raw.get("cache_creation_input_token_cost_above_1hr")),
        "context_window": tokens(raw.get("max_input_tokens") or raw.get("max_tokens")),
        "max_output": tokens(raw.get("max_output_tokens") or raw.get("max_tokens")),
    }
    for threshold in TIER_THRESHOLDS:
        suffix = f"_above_{threshold // 1000}k_tokens"
        tier_in = raw.get(f"input_cost_per_token{suffix}")
        tier_out = raw.get(f"output_cost_per_token{suffix}")
        if tier_in is None and tier_out is None:
            continue
        row["long_context"] = {
            "above": threshold,
            "input": per_million(tier_in if tier_in is not None else raw.get("input_cost_per_token")),
            "output": per_million(tier_out if tier_out is not None else raw.get("output_cost_per_token")),
            "cache_read": per_million(raw.get(f"cache_read_input_token_cost{suffix}")),
            "cache_write": per_million(raw.get(f"cache_creation_input_token_cost{suffix}")),
            "cache_write_1h": per_million(raw.get(f"cache_creation_input_token_cost_above_1hr{suffix}")),
        }
        break
    if raw.get("deprecation_date"):
        row["retired"] = raw["deprecation_date"]
    return row


def fix_anthropic(key, row, corrections):
    """Cache prices from Anthropic's multipliers where upstream lacks them or is wrong.

    Only the 1-hour write price is overruled: upstream lists $6/MTok for Claude 3
    Haiku, Claude 3 Opus and Claude 3.5 Haiku, against the documented 2x input.
    The 5-minute write and read prices are kept as published (Anthropic rounds
    Claude 3 Haiku's to $0.30 and $0.03, not exactly 1.25x and 0.1x) and only
    filled in when missing.
    """
    base = row["input"]
    if base is None:
        return
    want = round(base * 2.0, 6)
    if row["cache_write_1h"] is not None and row["cache_write_1h"] != want:
        corrections.append(f"{key}: cache_write_1h {row['cache_write_1h']} -> {want} (2x input, Anthropic pricing docs)")
    row["cache_write_1h"] = want
    for field, factor in (("cache_write", 1.25), ("cache_read", 0.1)):
        if row[field] is None:
            row[field] = round(base * factor, 6)
    tier = row.get("long_context")
    if tier:
        tier["cache_write_1h"] = round(tier["input"] * 2.0, 6)
        for field, factor in (("cache_write", 1.25), ("cache_read", 0.1)):
            if tier[field] is None:
                tier[field] = round(tier["input"] * factor, 6)


def selected(upstream):
    """(workflow key, upstream entry) for every chat model of a built-in provider."""
    for key, raw in upstream.items():
        if not isinstance(raw, dict) or key == "sample_spec" or raw.get("mode") != "chat":
            continue
        provider = PROVIDERS.get(raw.get("litellm_provider"))
        if provider is None:
            continue
        name, prefix = provider
        if prefix is None:
            if "/" in key or key.startswith("ft:"):
                continue  # another route's key, or a fine-tune (its id is per account)
            model = key
        elif key.startswith(prefix):
            model = key[len(prefix):]
        else:
            continue  # a duplicate under a bare key, or a size class like together-ai-4.1b-8b
        if raw.get("input_cost_per_token") is None or raw.get("output_cost_per_token") is None:
            continue
        yield f"{name}/{model}", raw


def prices_equal(a, b):
    return all(a.get(f) == b.get(f) for f in PRICE_FIELDS)


DATED = re.compile(r"^(?P<base>.+?)-(?:\d{8}|\d{4}-\d{2}-\d{2})$")


DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
LIFECYCLE_FIELDS = ("deprecated", "retired", "successor")


def merge_lifecycle(models, aliases, path, corrections):
    """Dates and successors from the providers' deprecation pages, over upstream's."""
    lifecycle = json.loads(Path(path).read_text())
    for name, facts in lifecycle["models"].items():
        key = aliases.get(name, name)
        if key not in models:
            sys.exit(f"{path}: {name} is not a model of the table")
        if facts.get("source") not in lifecycle["sources"]:
            sys.exit(f"{path}: {name} names no source listed under `sources`")
        row = models[key]
        for field in LIFECYCLE_FIELDS:
            value = facts.get(field)
            if value is None:
                continue
            if field != "successor" and not DATE.match(value):
                sys.exit(f"{path}: {name}: {field} `{value}` is not YYYY-MM-DD")
            if row.get(field) not in (None, value):
                corrections.append(f"{key}: {field} {row[field]} -> {value} ({lifecycle['sources'][facts['source']].split(' ')[0]})")
            row[field] = value
        if row.get("deprecated") and row.get("retired") and row["deprecated"] > row["retired"]:
            sys.exit(f"{path}: {name} is deprecated after it is retired")
    known = set(models) | set(aliases)
    for key, row in models.items():
        successor = row.get("successor")
        if successor and successor not in known:
            print(f"lifecycle {key}: successor {successor} is not priced yet", file=sys.stderr)


def build(upstream_path, legacy_path, lifecycle_path, tools_path):
    upstream = json.loads(Path(upstream_path).read_text())
    legacy = json.loads(Path(legacy_path).read_text())["models"]
    listed = json.loads(Path(tools_path).read_text())
    corrections = []
    models = {}
    for key, raw in selected(upstream):
        models[key] = entry(raw)
        upstream_tools(key, raw, models[key])
    for name, raw in legacy.items():
        if raw.get("snapshot") != "legacy" or raw.get("mode") != "chat":
            continue
        prefix = PROVIDERS[raw["litellm_provider"]][1] or ""
        key = f"{raw['provider']}/{name[len(prefix):]}"
        row = {
            "input": per_million(raw["input"]),
            "output": per_million(raw["output"]),
            "cache_read": per_million(raw["cache_read"]),
            "cache_write": per_million(raw["cache_write_5m"]),
            "cache_write_1h": per_million(raw["cache_write_1h"]),
            "context_window": raw["max_input_tokens"],
            "max_output": raw["max_output_tokens"],
            "note": "retired upstream; from the 2026-03-12 snapshot",
        }
        if raw.get("deprecation_date"):
            row["retired"] = raw["deprecation_date"]
        models.setdefault(key, row)
    for key, row in models.items():
        listed_tools(key, row, listed)
        if key.startswith("anthropic/"):
            fix_anthropic(key, row, corrections)
        # byok-flow bills a cache-write token at the cache-write price instead of the
        # input price; upstream writes 0 where a provider has no separate charge
        # (DeepSeek), which would make such tokens free. Without a price, the input
        # price applies.
        if row["cache_write"] is not None and row["input"] is not None and row["cache_write"] < row["input"]:
            corrections.append(f"{key}: cache_write {row['cache_write']} dropped (below the input price; the input price applies)")
            row["cache_write"] = None

    aliases = {}
    for alias, target in ALIASES.items():
        if target not in models:
            sys.exit(f"alias {alias} -> {target}: no such model")
        if alias in models and not prices_equal(models[alias], models[target]):
            sys.exit(f"alias {alias} -> {target}: upstream prices them differently")
        aliases[alias] = target
    dated = {}
    for key in models:
        m = DATED.match(key)
        if m and key.split("/")[0] in ("anthropic", "openai"):
            dated.setdefault(m.group("base"), []).append(key)
    for base, twins in dated.items():
        same = [t for t in twins if base in models and prices_equal(models[base], models[t])]
        if base not in aliases and len(twins) == 1 and len(same) == 1:
            aliases[base] = same[0]
    for alias in aliases:
        models.pop(alias, None)
    merge_lifecycle(models, aliases, lifecycle_path, corrections)

    for row in models.values():
        for field in list(row):
            if row[field] is None:
                del row[field]
        tier = row.get("long_context")
        if tier:
            for field in list(tier):
                if tier[field] is None:
                    del tier[field]
    for line in corrections:
        print(f"corrected {line}", file=sys.stderr)
    return {
        "source": SOURCE,
        "date": SOURCE_DATE,
        "upstream": UPSTREAM,
        "units": "USD per million tokens",
        "corrections": corrections,
        "models": dict(sorted(models.items())),
        "aliases": dict(sorted(aliases.items())),
    }


def main():
    args = sys.argv[1:]
    upstream = args[0] if args else ROOT / "data/upstream/model_prices_and_context_window.json"
    legacy = args[1] if len(args) > 1 else ROOT / "data/upstream/prices-core.json"
    lifecycle = args[2] if len(args) > 2 else ROOT / "data/lifecycle.json"
    table = build(upstream, legacy, lifecycle, ROOT / "data/tool-prices.json")
    json.dump(table, sys.stdout, indent=1)
    sys.stdout.write("\n")
    print(f"{len(table['models'])} models, {len(table['aliases'])} aliases", file=sys.stderr)


if __name__ == "__main__":
    main()
