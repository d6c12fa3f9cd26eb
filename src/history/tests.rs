use indexmap::IndexMap;

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
        cost_usd: cost,
        stop_reason: Some("end_turn".into()),
        output: Some("a reply that is never stored".into()),
        json: None,
        answered_by: None,
        attempts: Vec::new(),
        key_failure: false,
        cached: false,
    }
}

fn record(id: &str, started_at: &str, mock: bool, agents: Vec<AgentRecord>) -> RunRecord {
    let mut usage = Usage::default();
    for a in &agents {
        usage += a.usage;
    }
    RunRecord {
        run_id: id.into(),
        workflow: "research".into(),
        file: "workflows/research.yaml".into(),
        started_at: started_at.into(),
        seconds: 3.25,
        status: RunStatus::Succeeded,
        mock,
        inputs: IndexMap::from([("topic".to_string(), "a secret topic".to_string())]),
        cost_usd: agents.iter().filter_map(|a| a.cost_usd).sum(),
        agents,
        outputs: IndexMap::new(),
        usage,
        budget_usd: Some(0.5),
    }
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
    assert!((runs[2].cost_usd - 0.00235).abs() < 1e-12);
    assert!(runs[1].unpriced && !runs[2].unpriced);
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
    assert!((by_provider[0].cost_usd - 0.00235).abs() < 1e-12);
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
    assert!((summary.cost_usd - 0.001).abs() < 1e-12);
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

/// A history written by the first version (no dataset columns) is upgraded in
/// place when opened, and its runs read as before.
#[test]
fn a_version_1_history_is_upgraded_and_keeps_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!("{SCHEMA} PRAGMA user_version = 1;"))
            .unwrap();
        conn.execute_batch(
            "INSERT INTO runs (id, workflow, file, inputs_hash, status, started_at, started_unix, mock, agents, cost_micro_usd)
             VALUES ('1000-aaaaaa', 'research', 'r.yaml', 'h', 'succeeded', '2025-03-01T09:00:00Z', 1740819600, 0, 1, 1000);
             INSERT INTO agents (run_id, position, name, provider, model, status, cached, seconds, input_tokens, output_tokens,
                                 cache_read_tokens, cache_write_tokens, cost_micro_usd)
             VALUES ('1000-aaaaaa', 0, 'a', 'anthropic', 'claude-sonnet-4-5', 'succeeded', 0, 1.0, 10, 5, 0, 0, 1000);",
        )
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    let runs = store.list(10).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].rows, None, "a single run has no rows");
    assert_eq!(store.spend(0, Group::Provider, false).unwrap()[0].calls, 1);
    let version: i64 = store
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    drop(store);
    // And opening it again changes nothing.
    assert_eq!(Store::open(&path).unwrap().list(10).unwrap().len(), 1);
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
        seconds: 2.0,
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
    assert!((listed[0].cost_usd - 0.01).abs() < 1e-9, "kept as it goes");
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
        cost_usd: 0.1,
        budget_usd: None,
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
    assert!((spend[0].cost_usd - 0.1).abs() < 1e-9);
}

/// A file at this version that lacks a column (written by a build that numbered
/// its own change the same) gets it: columns are looked for, not assumed.
#[test]
fn a_missing_column_is_added_whatever_the_version_says() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&format!(
            "{SCHEMA} ALTER TABLE runs ADD COLUMN something_else TEXT; PRAGMA user_version = {SCHEMA_VERSION};"
        ))
        .unwrap();
    }
    let store = Store::open(&path).unwrap();
    assert!(store.missing_columns().unwrap().is_empty());
    assert!(store.list(10).unwrap().is_empty());
}
