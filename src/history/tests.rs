use indexmap::IndexMap;

use super::schema::SCHEMA;
use super::*;
use crate::record::{AgentRecord, AgentStatus, RunRecord, RunStatus};
use crate::usage::Usage;

fn agent(name: &str, model: &str, usage: (u64, u64), cost: Option<f64>) -> AgentRecord {
    let (provider, model) = model.split_once('/').unwrap();
    AgentRecord {
        name: name.into(),
        item: None,
        provider: provider.into(),
        model: model.into(),
        status: AgentStatus::Succeeded,
        reason: None,
        seconds: 1.5,
        usage: Usage {
            input: usage.0,
            output: usage.1,
            ..Usage::default()
        },
        counted_locally: false,
        cost_usd: cost,
        bill_unknown: false,
        max_cost_usd: None,
        stop_reason: Some("end_turn".into()),
        output: Some("a reply that is never stored".into()),
        json: None,
        answered_by: None,
        attempts: Vec::new(),
        key_failure: false,
        cached: false,
        depends_on: Vec::new(),
        timing: None,
        estimate: None,
        citations: Vec::new(),
        cache_saved_usd: None,
    }
}

fn record(id: &str, started_at: &str, mock: bool, agents: Vec<AgentRecord>) -> RunRecord {
    let mut usage = Usage::default();
    for a in &agents {
        usage += a.usage;
    }
    let mut record = RunRecord {
        run_id: id.into(),
        version: "0.1.0".into(),
        workflow_sha256: None,
        estimate: None,
        workflow: "research".into(),
        file: "workflows/research.yaml".into(),
        started_at: started_at.into(),
        seconds: 3.25,
        status: RunStatus::Succeeded,
        mock,
        inputs: IndexMap::from([("topic".to_string(), "a secret topic".to_string())]),
        cost_usd: None,
        cache_saved_usd: None,
        unpriced_agents: Vec::new(),
        max_cost_usd: None,
        agents,
        outputs: IndexMap::new(),
        usage,
        budget_usd: Some(0.5),
    };
    record.total_agents();
    record
}

fn start(store: &mut Store, r: &RunRecord) {
    store
        .start(&RunStart {
            rows: None,
            run_id: &r.run_id,
            workflow: &r.workflow,
            file: &r.file,
            inputs_hash: &inputs_hash(&r.inputs),
            started_at: &r.started_at,
            mock: r.mock,
            agents: r.agents.len(),
        })
        .unwrap();
}

fn keep(store: &mut Store, r: &RunRecord) {
    start(store, r);
    store.finish(r).unwrap();
}

#[test]
fn a_run_is_listed_shown_and_added_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("deep/folder/history.sqlite")).unwrap();
    let mut fallback = agent("writer", "openai/gpt-4o", (200, 80), Some(0.0013));
    fallback.answered_by = Some("anthropic/claude-sonnet-4-5".into());
    let mut cached = agent("editor", "openai/gpt-4o-mini", (0, 0), Some(0.0));
    cached.cached = true;
    let first = record(
        "1000-aaaaaa",
        "2025-03-01T09:00:00Z",
        false,
        vec![
            agent(
                "researcher",
                "anthropic/claude-sonnet-4-5",
                (100, 50),
                Some(0.00105),
            ),
            fallback,
            cached,
        ],
    );
    keep(&mut store, &first);
    let second = record(
        "2000-bbbbbb",
        "2025-03-02T09:00:00Z",
        false,
        vec![agent("researcher", "local/llama3", (10, 5), None)],
    );
    keep(&mut store, &second);
    let mock = record(
        "3000-cccccc",
        "2025-03-03T09:00:00Z",
        true,
        vec![agent(
            "researcher",
            "anthropic/claude-sonnet-4-5",
            (7, 7),
            Some(0.0),
        )],
    );
    keep(&mut store, &mock);

    let runs = store.list(10).unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r.run_id.as_str()).collect();
    assert_eq!(ids, ["3000-cccccc", "2000-bbbbbb", "1000-aaaaaa"]);
    assert_eq!(runs[2].succeeded, 3);
    assert_eq!(runs[2].cached, 1);
    assert_eq!(runs[2].cost_usd, Some(0.00235));
    assert!(runs[1].unpriced && !runs[2].unpriced);
    // Unpriced is not $0: the cost is unknown.
    assert_eq!(runs[1].cost_usd, None);
    assert!(runs[0].mock);
    assert_eq!(store.list(1).unwrap().len(), 1);

    let (summary, shown) = store.show("1000-aaaaaa").unwrap().unwrap();
    assert_eq!(summary.status, "succeeded");
    assert_eq!(shown.agents.len(), 3);
    assert_eq!(
        shown.agents[1].answered_by.as_deref(),
        Some("anthropic/claude-sonnet-4-5")
    );
    assert!(shown.agents[2].cached);
    assert_eq!(shown.usage.input, 300);
    assert_eq!(shown.budget_usd, Some(0.5));
    assert_eq!(shown.agents[0].output, None, "replies are not kept");
    assert!(store.show("nope").unwrap().is_none());
    assert_eq!(store.find("1000").unwrap(), ["1000-aaaaaa"]);
    assert_eq!(store.find("%").unwrap(), Vec::<String>::new());

    // By provider: the fallback's provider is charged; the cached agent and the mock
    // run are not counted.
    let by_provider = store.spend(0, Group::Provider, false).unwrap();
    let groups: Vec<(&str, u64, u64)> = by_provider
        .iter()
        .map(|r| (r.group.as_str(), r.runs, r.calls))
        .collect();
    assert_eq!(groups, [("anthropic", 1, 2), ("local", 1, 1)]);
    assert_eq!(by_provider[0].cost_usd, Some(0.00235));
    assert_eq!(by_provider[1].cost_usd, None);
    assert_eq!(by_provider[0].usage.input, 300);
    assert_eq!(by_provider[1].unpriced_calls, 1);
    // A mock run's calls are the mock's, whatever model the workflow names.
    let with_mock = store.spend(0, Group::Provider, true).unwrap();
    let groups: Vec<(&str, u64)> = with_mock
        .iter()
        .map(|r| (r.group.as_str(), r.calls))
        .collect();
    assert_eq!(groups, [("anthropic", 2), ("local", 1), ("mock", 1)]);
    let by_model = store.spend(0, Group::Model, false).unwrap();
    assert_eq!(by_model[0].group, "anthropic/claude-sonnet-4-5");
    let since = humantime::parse_rfc3339("2025-03-02T00:00:00Z")
        .unwrap()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let recent = store
        .spend(i64::try_from(since).unwrap(), Group::Workflow, false)
        .unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].group, "research");
    assert_eq!(recent[0].calls, 1);
}

#[test]
fn a_killed_run_is_unfinished_with_what_it_spent() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.sqlite")).unwrap();
    let r = record(
        "1000-aaaaaa",
        "2025-03-01T09:00:00Z",
        false,
        vec![
            agent("a", "anthropic/claude-sonnet-4-5", (100, 50), Some(0.001)),
            agent("b", "anthropic/claude-sonnet-4-5", (100, 50), Some(0.002)),
        ],
    );
    start(&mut store, &r);
    store.agent(&r.run_id, 0, &r.agents[0]).unwrap();
    drop(store);
    let store = Store::open(&dir.path().join("history.sqlite")).unwrap();
    let (summary, shown) = store.show("1000-aaaaaa").unwrap().unwrap();
    assert!(summary.unfinished());
    assert_eq!(shown.agents.len(), 1);
    assert_eq!(summary.cost_usd, Some(0.001));
    assert_eq!(store.spend(0, Group::Provider, false).unwrap()[0].calls, 1);
}

#[test]
fn the_history_keeps_no_input_value_and_no_reply() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    let mut store = Store::open(&path).unwrap();
    let r = record(
        "1000-aaaaaa",
        "2025-03-01T09:00:00Z",
        false,
        vec![agent(
            "a",
            "anthropic/claude-sonnet-4-5",
            (100, 50),
            Some(0.001),
        )],
    );
    keep(&mut store, &r);
    drop(store);
    let mut bytes = std::fs::read(&path).unwrap();
    if let Ok(wal) = std::fs::read(dir.path().join("history.sqlite-wal")) {
        bytes.extend(wal);
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains("a secret topic"));
    assert!(!text.contains("never stored"));
    assert_eq!(inputs_hash(&r.inputs).len(), 16);
    assert_ne!(inputs_hash(&r.inputs), inputs_hash(&IndexMap::new()));
}

#[test]
fn concurrent_writers_each_record_their_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&path).unwrap();
                for i in 0..10 {
                    let r = record(
                        &format!("{t}{i:03}-aaaaaa"),
                        "2025-03-01T09:00:00Z",
                        false,
                        vec![agent(
                            "a",
                            "anthropic/claude-sonnet-4-5",
                            (1, 1),
                            Some(0.001),
                        )],
                    );
                    keep(&mut store, &r);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.list(100).unwrap().len(), 40);
    assert_eq!(store.spend(0, Group::Provider, false).unwrap()[0].calls, 40);
}

#[cfg(unix)]
#[test]
fn the_history_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    let mut store = Store::open(&path).unwrap();
    let r = record("1000-aaaaaa", "2025-03-01T09:00:00Z", false, Vec::new());
    keep(&mut store, &r);
    for file in [path.clone(), dir.path().join("history.sqlite-wal")] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", file.display());
    }
}

#[test]
fn a_file_that_is_not_a_database_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    std::fs::write(
        &path,
        "this is not SQLite, it is a long enough line of text to look at",
    )
    .unwrap();
    let e = Store::open(&path).err().expect("an error");
    assert!(e.to_string().contains("history.sqlite"), "{e}");
}

/// A history written by the first schema opens, gains the new columns, keeps its
/// runs, and takes runs with locally counted and unknown bills.
#[test]
fn a_version_1_history_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let v1 = SCHEMA
            .replace(
                "    -- 1: some tokens were counted by byok-flow, not reported by the provider\n    counted_locally INTEGER NOT NULL DEFAULT 0,\n",
                "",
            )
            .replace(
                "    -- 1: a call was cut off after it was sent; max_cost_micro_usd is the most it may have cost\n    bill_unknown INTEGER NOT NULL DEFAULT 0,\n    max_cost_micro_usd INTEGER,\n",
                "",
            )
            .replace(
                "    budget_usd REAL,\n    -- where the run's record was written (`--out DIR/run.json`), for `report RUN_ID`\n    record_path TEXT,\n    -- a dataset run: the rows it was to run (when known), then how they ended\n    rows_total INTEGER,\n    rows_succeeded INTEGER,\n    rows_failed INTEGER\n",
                "    budget_usd REAL\n",
            )
            .replace(
                "    -- in a dataset run, the agent's calls over every row (1 otherwise), how many\n    -- failed and how many the cache answered\n    calls INTEGER NOT NULL DEFAULT 1,\n    failures INTEGER NOT NULL DEFAULT 0,\n    cached_calls INTEGER NOT NULL DEFAULT 0,\n",
                "",
            );
        assert!(!v1.contains("counted_locally") && !v1.contains("max_cost"));
        assert!(!v1.contains("record_path"));
        assert!(!v1.contains("rows_total") && !v1.contains("cached_calls"));
        conn.execute_batch(&v1).unwrap();
        conn.execute_batch(
            "INSERT INTO runs (id, workflow, file, inputs_hash, status, started_at, started_unix, mock, agents, cost_micro_usd)
             VALUES ('1000-aaaaaa', 'old', 'old.yaml', '', 'succeeded', '2025-01-01T00:00:00Z', 1735689600, 0, 1, 1500);
             INSERT INTO agents (run_id, position, name, provider, model, status, cached, seconds, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_micro_usd)
             VALUES ('1000-aaaaaa', 0, 'a', 'openai', 'gpt-4o', 'succeeded', 0, 1.0, 10, 10, 0, 0, 1500);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let mut store = Store::open(&path).unwrap();
    let mut cut = agent("b", "openai/gpt-4o", (100, 5), Some(0.001));
    cut.counted_locally = true;
    cut.bill_unknown = true;
    cut.max_cost_usd = Some(0.004);
    keep(
        &mut store,
        &record("2000-bbbbbb", "2025-02-01T00:00:00Z", false, vec![cut]),
    );
    let runs = store.list(10).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[1].cost_usd, Some(0.0015));
    assert!(!runs[1].counted_locally && !runs[1].bill_unknown);
    assert!(runs[0].counted_locally && runs[0].bill_unknown);
    assert_eq!(runs[0].max_cost_usd, Some(0.004));
    let (_, shown) = store.show("2000-bbbbbb").unwrap().unwrap();
    assert!(shown.agents[0].counted_locally && shown.agents[0].bill_unknown);
    assert_eq!(shown.max_cost_usd, Some(0.004));
    // And from schema 3 on, where each run's record went.
    assert_eq!(store.record_path("1000-aaaaaa").unwrap(), None);
    store
        .keep_record_path("2000-bbbbbb", "/work/out/run.json")
        .unwrap();
    assert_eq!(
        store.record_path("2000-bbbbbb").unwrap().as_deref(),
        Some("/work/out/run.json")
    );
    // And from schema 4 on, dataset runs: an old run is one run of one call a line.
    assert_eq!(runs[1].rows, None);
    assert_eq!(store.spend(0, Group::Provider, false).unwrap()[0].calls, 2);
    drop(store);
    // Opened again: already upgraded, nothing to do.
    assert_eq!(Store::open(&path).unwrap().list(10).unwrap().len(), 2);
}

/// A dataset run is one run with its rows, an agent a line for all its calls;
/// `spend` counts its calls, and only once.
#[test]
fn a_dataset_run_is_one_run_with_per_agent_aggregates() {
    use crate::dataset::record::{AgentAggregate, DatasetRecord, RowCounts};
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("history.sqlite")).unwrap();
    let aggregate = |name: &str, calls: u64, failed: u64, cost: f64| AgentAggregate {
        name: name.into(),
        provider: "openai".into(),
        model: "gpt-4o-mini".into(),
        calls,
        succeeded: calls - failed,
        failed,
        cached: 1,
        skipped: 0,
        usage: Usage {
            input: 100 * calls,
            output: 10 * calls,
            ..Usage::default()
        },
        cost_usd: Some(cost),
        unknown_bills: 0,
        seconds: 2.0,
        cache_saved_usd: None,
    };
    store
        .start(&RunStart {
            run_id: "2000-bbbbbb",
            workflow: "triage",
            file: "triage.yaml",
            inputs_hash: "h",
            started_at: "2025-03-02T09:00:00Z",
            mock: false,
            agents: 2,
            rows: Some(20),
        })
        .unwrap();
    store
        .aggregates("2000-bbbbbb", &[aggregate("classify", 5, 0, 0.01)])
        .unwrap();
    let listed = store.list(10).unwrap();
    assert!(listed[0].unfinished());
    assert_eq!(listed[0].rows.unwrap().total, Some(20));
    assert!(
        (listed[0].priced_cost_usd - 0.01).abs() < 1e-9,
        "kept as it goes"
    );
    let record = DatasetRecord {
        kind: "dataset".into(),
        run_id: "2000-bbbbbb".into(),
        workflow: "triage".into(),
        file: "triage.yaml".into(),
        rows_file: "tickets.jsonl".into(),
        rows_in_file: Some(20),
        shard: None,
        started_at: "2025-03-02T09:00:00Z".into(),
        seconds: 3.5,
        status: RunStatus::Failed,
        mock: false,
        inputs: IndexMap::new(),
        rows: RowCounts {
            total: 20,
            succeeded: 19,
            failed: 1,
            ..RowCounts::default()
        },
        agents: vec![
            aggregate("classify", 20, 0, 0.04),
            aggregate("reply", 20, 1, 0.06),
        ],
        usage: Usage::default(),
        cost_usd: Some(0.1),
        priced_cost_usd: 0.1,
        unpriced_agents: Vec::new(),
        max_cost_usd: None,
        budget_usd: None,
        cache_saved_usd: None,
        failed_rows: Vec::new(),
        key_failure: false,
    };
    store.finish_rows(&record).unwrap();
    let summary = &store.list(10).unwrap()[0];
    assert_eq!(summary.status, "failed");
    let rows = summary.rows.unwrap();
    assert_eq!(
        (rows.total, rows.succeeded, rows.failed),
        (Some(20), Some(19), Some(1))
    );
    let agents = store.aggregates_of("2000-bbbbbb").unwrap();
    assert_eq!(agents, record.agents, "shown as they were");
    let spend = store.spend(0, Group::Provider, false).unwrap();
    assert_eq!(spend.len(), 1);
    assert_eq!(spend[0].runs, 1, "one run, counted once");
    assert_eq!(spend[0].calls, 38, "its calls, less the cached ones");
    assert!((spend[0].priced_cost_usd - 0.1).abs() < 1e-9);
}
