//! Cost through a whole run: the real runner, scheduler and budget gate, with
//! providers that report chosen (or random) usage instead of calling anyone.

use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use proptest::prelude::*;

use super::prices::{PriceTable, Pricing};
use super::tokens::Tokenizer;
use super::{Usd, estimate};
use crate::events::Bus;
use crate::providers::{AttemptError, BoxFuture, Provider, Reply, Reported, Request};
use crate::record::{AgentStatus, RunRecord, RunStatus};
use crate::runner::{self, RunSettings};
use crate::usage::Usage;
use crate::workflow::{Checked, load, validate};

/// A workflow from YAML text, checked.
fn checked(yaml: &str) -> Checked {
    let (loaded, report) = load::load_source(Path::new("test.yaml"), Arc::from(yaml))
        .unwrap_or_else(|r| panic!("{}", r.render(false)));
    validate::check(loaded, report)
        .unwrap_or_else(|r| panic!("{}", r.render(false)))
        .0
}

/// A provider that answers "ok" and reports what `usage` says about each request.
struct Fake<F>(F);

impl<F: Fn(&Request) -> Usage + Send + Sync> Provider for Fake<F> {
    fn attempt<'a>(
        &'a self,
        request: &'a std::sync::Arc<Request>,
    ) -> BoxFuture<'a, Result<Reply, AttemptError>> {
        let usage = (self.0)(request);
        Box::pin(async move {
            tokio::task::yield_now().await;
            Ok(Reply {
                text: "ok".into(),
                json: None,
                usage,
                reported: Reported::ALL,
                stop_reason: Some("end_turn".into()),
                citations: Vec::new(),
            })
        })
    }
}

/// Runs `checked` with every non-mock provider answered by `provider`.
fn run_with(
    checked: Checked,
    provider: Arc<dyn Provider>,
    max_usd: Option<f64>,
    concurrency: usize,
) -> (RunRecord, Option<Usd>) {
    let settings = RunSettings {
        file: "test.yaml".into(),
        inputs: IndexMap::new(),
        mock: false,
        concurrency,
        keep_going: true,
        prices: Arc::new(PriceTable::builtin()),
        max_usd,
        cache: None,
        refresh: Vec::new(),
        estimate: None,
        run_id: None,
        busy: None,
    };
    let connect = move |_: &crate::workflow::providers::ProviderInfo| Ok(provider.clone());
    let (agent_runner, limits) =
        runner::prepare_with(Arc::new(checked), &settings, &connect, &Bus::default()).unwrap();
    let budget = agent_runner.budget().cloned();
    let mut gate = agent_runner.gate();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let record = rt.block_on(runner::execute(
        agent_runner,
        limits,
        &settings,
        gate.as_mut(),
        &Bus::default(),
        std::future::pending(),
    ));
    (record, budget.map(|b| b.spent()))
}

#[test]
fn actual_cost_is_tokens_times_prices_to_the_micro_dollar() {
    let w = checked(
        "version: 1\nagents:\n  a:\n    model: anthropic/claude-3-5-sonnet-latest\n    prompt: hi\n    max_tokens: 100\n  b:\n    model: openai/gpt-4o\n    prompt: \"{{agents.a.output}}\"\n    max_tokens: 100\n",
    );
    let usage = Usage {
        input: 1_234,
        output: 567,
        cache_read: 8_912,
        cache_write: 1_112,
        ..Default::default()
    };
    let (record, _) = run_with(w, Arc::new(Fake(move |_: &Request| usage)), None, 2);
    // Claude 3.5 Sonnet: $3 in, $0.30 cache read, $3.75 cache write, $15 out per million.
    let claude = (1_234.0 * 3.0 + 8_912.0 * 0.3 + 1_112.0 * 3.75 + 567.0 * 15.0) / 1e6;
    // GPT-4o: $2.50 in, $1.25 cached, no cache-write surcharge (input price), $10 out.
    let gpt = (1_234.0 * 2.5 + 8_912.0 * 1.25 + 1_112.0 * 2.5 + 567.0 * 10.0) / 1e6;
    // Equal to the micro-dollar: the record rounds to it, the sums here are exact enough.
    let micro = |usd: f64| format!("{usd:.6}");
    assert_eq!(record.agents[0].cost_usd.map(micro), Some(micro(claude)));
    assert_eq!(record.agents[1].cost_usd.map(micro), Some(micro(gpt)));
    assert_eq!(record.cost_usd.map(micro), Some(micro(claude + gpt)));
    assert_eq!(record.agents[0].usage, usage);
}

#[test]
fn unpriced_agents_cost_none_and_the_rest_still_count() {
    let w = checked(
        "version: 1\nproviders:\n  local: {type: openai-compatible, base_url: 'http://127.0.0.1:9/v1', key: none}\nagents:\n  a: {model: local/llama, prompt: hi}\n  b: {model: openai/gpt-4o-mini, prompt: hi}\n",
    );
    let usage = Usage {
        input: 1_000_000,
        output: 0,
        ..Usage::default()
    };
    let (record, _) = run_with(w, Arc::new(Fake(move |_: &Request| usage)), None, 2);
    assert_eq!(record.agents[0].cost_usd, None);
    assert_eq!(record.agents[1].cost_usd, Some(0.15));
    // Unpriced is not $0: the total is unknown, and says which agent makes it so.
    assert_eq!(record.cost_usd, None);
    assert_eq!(record.unpriced_agents, ["a"]);
    assert!((record.priced_usd() - 0.15).abs() < 1e-12);
}

#[test]
fn budget_skips_what_cannot_fit_and_its_dependents() {
    // Each agent may write 1,000 tokens at $100 per million: a worst case of over $0.10.
    let w = checked(
        "version: 1\nproviders:\n  sim:\n    type: openai-compatible\n    base_url: http://127.0.0.1:9/v1\n    key: none\n    pricing:\n      m: {input: 1, output: 100}\nagents:\n  a: {model: sim/m, prompt: one, max_tokens: 1000}\n  b: {model: sim/m, prompt: two, max_tokens: 1000}\n  c: {model: sim/m, prompt: \"{{agents.b.output}}\", max_tokens: 1000}\n",
    );
    let usage = Usage {
        input: 10,
        output: 1_000,
        ..Usage::default()
    };
    // Room for one agent's worst case, not two: one runs, the other is given up
    // after the first settles (and costs its full $0.10), and `c` with it.
    let (record, spent) = run_with(w, Arc::new(Fake(move |_: &Request| usage)), Some(0.15), 4);
    let statuses: Vec<AgentStatus> = record.agents.iter().map(|a| a.status).collect();
    assert_eq!(
        statuses,
        [
            AgentStatus::Succeeded,
            AgentStatus::Skipped,
            AgentStatus::Skipped
        ]
    );
    assert_eq!(record.status, RunStatus::BudgetReached);
    assert!(
        record.agents[1]
            .reason
            .as_deref()
            .unwrap()
            .contains("budget")
    );
    assert_eq!(
        record.agents[2].reason.as_deref(),
        Some("`b` was skipped for the budget of $0.1500")
    );
    assert_eq!(spent, Some(Usd::from_dollars(0.100_01)));
}

#[test]
fn budget_waits_for_running_agents_before_giving_up() {
    // Worst case $0.10 each; each really costs $0.01. With $0.15, the second waits
    // for the first to settle, then fits; so does the third.
    let w = checked(
        "version: 1\nproviders:\n  sim:\n    type: openai-compatible\n    base_url: http://127.0.0.1:9/v1\n    key: none\n    pricing:\n      m: {input: 0, output: 100}\nagents:\n  a: {model: sim/m, prompt: one, max_tokens: 1000}\n  b: {model: sim/m, prompt: two, max_tokens: 1000}\n  c: {model: sim/m, prompt: three, max_tokens: 1000}\n",
    );
    let usage = Usage {
        output: 100,
        ..Usage::default()
    };
    let (record, spent) = run_with(w, Arc::new(Fake(move |_: &Request| usage)), Some(0.15), 8);
    assert!(
        record
            .agents
            .iter()
            .all(|a| a.status == AgentStatus::Succeeded)
    );
    assert_eq!(record.status, RunStatus::Succeeded);
    assert_eq!(spent, Some(Usd::from_dollars(0.03)));
}

/// A provider whose first attempt breaks off after it was sent (its bill unknown),
/// then answers.
struct CutOnce(std::sync::atomic::AtomicBool);

impl Provider for CutOnce {
    fn attempt<'a>(
        &'a self,
        _: &'a std::sync::Arc<Request>,
    ) -> BoxFuture<'a, Result<Reply, AttemptError>> {
        let first = !self.0.swap(true, std::sync::atomic::Ordering::SeqCst);
        Box::pin(async move {
            if first {
                return Err(AttemptError::cut_off(
                    Some(200),
                    "the connection dropped mid-reply".into(),
                    Reply::default(),
                ));
            }
            Ok(Reply {
                text: "ok".into(),
                usage: Usage {
                    input: 1,
                    output: 1,
                    ..Usage::default()
                },
                reported: Reported::ALL,
                ..Reply::default()
            })
        })
    }
}

/// Issue 13, item 8 (a sibling): a retry reserves its own worst case. After a
/// first attempt whose bill is unknown, there is no room for another under this
/// ceiling, so the retry is not sent and the agent stops for the budget.
#[test]
fn a_retry_is_not_sent_without_room_for_it() {
    let w = checked(
        "version: 1\nproviders:\n  sim:\n    type: openai-compatible\n    base_url: http://127.0.0.1:9/v1\n    key: none\n    pricing:\n      m: {input: 0, output: 100}\nagents:\n  a: {model: sim/m, prompt: one, max_tokens: 1000, retries: 3}\n  b: {model: sim/m, prompt: \"{{agents.a.output}}\", max_tokens: 1000}\n",
    );
    let provider = Arc::new(CutOnce(std::sync::atomic::AtomicBool::new(false)));
    // Room for one worst case ($0.10), not two.
    let (record, spent) = run_with(w, provider, Some(0.15), 1);
    assert_eq!(record.agents[0].status, AgentStatus::Failed);
    assert_eq!(record.agents[0].attempts.len(), 1, "the retry was not sent");
    let reason = record.agents[0].reason.as_deref().unwrap();
    assert!(reason.contains("not sent to sim/m"), "{reason}");
    assert!(record.agents[0].bill_unknown);
    assert_eq!(record.agents[0].max_cost_usd, Some(0.1));
    assert_eq!(
        record.agents[1].reason.as_deref(),
        Some("`a` stopped for the budget of $0.1500")
    );
    assert_eq!(record.status, RunStatus::BudgetReached);
    assert_eq!(spent, Some(Usd::from_dollars(0.1)));
    assert_eq!(
        crate::report::table::outcome(&record).as_deref(),
        Some(
            "The run kept to its budget: 1 agent stopped before another call (`a`), 1 agent skipped (`b`); raise the budget or lower their `max_tokens` to run them."
        )
    );
    // With room for two, the retry goes and the agent succeeds.
    let w = checked(
        "version: 1\nproviders:\n  sim:\n    type: openai-compatible\n    base_url: http://127.0.0.1:9/v1\n    key: none\n    pricing:\n      m: {input: 0, output: 100}\nagents:\n  a: {model: sim/m, prompt: one, max_tokens: 1000, retries: 3}\n",
    );
    let provider = Arc::new(CutOnce(std::sync::atomic::AtomicBool::new(false)));
    let (record, spent) = run_with(w, provider, Some(0.25), 1);
    assert_eq!(record.agents[0].status, AgentStatus::Succeeded);
    assert_eq!(record.agents[0].attempts.len(), 2);
    assert_eq!(spent, Some(Usd::from_dollars(0.100_1)));
    assert_eq!(record.max_cost_usd, Some(0.1001));
}

/// A random squad: agents, each reading some earlier ones, on a few models with
/// random prices (dollars per million tokens).
#[derive(Debug, Clone)]
struct Squad {
    prices: Vec<(f64, f64, f64, f64)>,
    agents: Vec<(usize, Vec<usize>, u32)>,
}

impl Squad {
    fn yaml(&self) -> String {
        let mut out = String::from(
            "version: 1\nproviders:\n  fake:\n    type: openai-compatible\n    base_url: http://127.0.0.1:9/v1\n    key: none\n    pricing:\n",
        );
        for (i, (input, output, read, write)) in self.prices.iter().enumerate() {
            out.push_str(&format!(
                "      m{i}: {{input: {input}, output: {output}, cache_read: {read}, cache_write: {write}}}\n"
            ));
        }
        out.push_str("agents:\n");
        for (i, (model, reads, max_tokens)) in self.agents.iter().enumerate() {
            let mut prompt = format!("Agent {i} works on the task.");
            for r in reads {
                prompt.push_str(&format!(" Notes: {{{{agents.a{r}.output}}}}"));
            }
            out.push_str(&format!(
                "  a{i}:\n    model: fake/m{model}\n    prompt: \"{prompt}\"\n    max_tokens: {max_tokens}\n"
            ));
        }
        out
    }
}

fn squads() -> impl Strategy<Value = Squad> {
    let price = (0.0..30.0f64, 0.0..120.0f64, 0.0..1.0f64, 1.0..2.5f64)
        .prop_map(|(i, o, r, w)| (round(i), round(o), round(i * r), round(i * w)));
    (proptest::collection::vec(price, 1..4), 1..7usize).prop_flat_map(|(prices, n)| {
        let models = prices.len();
        let agents = (0..n)
            .map(|i| {
                (
                    0..models,
                    proptest::collection::vec(0..i.max(1), 0..=i.min(2)),
                    1..4_000u32,
                )
                    .prop_map(move |(m, reads, max)| {
                        let mut reads: Vec<usize> = reads.into_iter().filter(|r| *r < i).collect();
                        reads.dedup();
                        (m, reads, max)
                    })
            })
            .collect::<Vec<_>>();
        (Just(prices), agents).prop_map(|(prices, agents)| Squad { prices, agents })
    })
}

/// A price with at most 4 decimals, as a person would write it.
fn round(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Usage a provider might report for `request`: any split of at most the counted
/// input between plain input, cache reads and cache writes, and at most
/// `max_tokens` of output. `seed` picks the split.
fn fake_usage(request: &Request, seed: u64) -> Usage {
    let bound = Tokenizer::for_model(&request.model)
        .count_request(request.system.as_deref(), &request.prompt)
        .bound;
    let mut state = seed ^ request.prompt.len() as u64;
    let mut next = |max: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % (max + 1)
    };
    let input_total = next(bound);
    let cache_read = next(input_total);
    let cache_write = next(input_total - cache_read);
    Usage {
        input: input_total - cache_read - cache_write,
        cache_read,
        cache_write,
        output: next(u64::from(request.max_tokens.unwrap_or(0))),
        ..Default::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// With any budget, what the run really spent (repriced here from each agent's
    /// reported usage) never exceeds it.
    #[test]
    fn spend_never_exceeds_the_budget(
        squad in squads(),
        budget in 0.0..0.5f64,
        seed in any::<u64>(),
        concurrency in 1..5usize,
    ) {
        let w = checked(&squad.yaml());
        let table = PriceTable::builtin();
        let prices: Vec<_> = {
            let pricing = Pricing { table: &table, workflow: &w.workflow, mock: false };
            w.workflow.agents.values().map(|a| pricing.resolve(&a.model).unwrap().price).collect()
        };
        let provider = Arc::new(Fake(move |r: &Request| fake_usage(r, seed)));
        let (record, spent) = run_with(w, provider, Some(budget), concurrency);
        let actual: Usd = record
            .agents
            .iter()
            .zip(&prices)
            .map(|(a, p)| p.cost(&a.usage))
            .sum();
        prop_assert!(actual <= Usd::from_dollars(budget), "spent {actual} of {budget}");
        prop_assert_eq!(spent, Some(actual));
    }

    /// With a budget at least the estimate's maximum, nothing is skipped.
    #[test]
    fn an_ample_budget_skips_nothing(squad in squads(), seed in any::<u64>()) {
        let w = checked(&squad.yaml());
        let table = PriceTable::builtin();
        let max = {
            let pricing = Pricing { table: &table, workflow: &w.workflow, mock: false };
            estimate::estimate(&w, &IndexMap::new(), &pricing, None).total.max_usd
        };
        let provider = Arc::new(Fake(move |r: &Request| fake_usage(r, seed)));
        let (record, _) = run_with(w, provider, Some(max.dollars() + 1e-6), 4);
        prop_assert_eq!(record.status, RunStatus::Succeeded);
    }
}
