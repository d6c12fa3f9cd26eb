use proptest::prelude::*;

use super::*;
use crate::dag::EdgeKind;
use crate::providers::call::Attempt;
use crate::record::{CostEstimate, Dependency, Timing};
use crate::tools::Citation;
use crate::usage::Usage;

/// A record with every field set, floats that do not print short included.
fn full(name: &str, seconds: f64) -> AgentRecord {
    AgentRecord {
        name: name.into(),
        item: Some(3),
        provider: "anthropic".into(),
        model: "claude-haiku-4-5".into(),
        status: AgentStatus::Failed,
        reason: Some("HTTP 500: \"quoted\"\nand a newline".into()),
        seconds,
        usage: Usage {
            input: 1,
            output: 2,
            cache_read: 3,
            cache_write: 4,
            cache_write_1h: 5,
            web_search: 6,
            web_fetch: 7,
        },
        counted_locally: true,
        cost_usd: Some(0.1 + 0.2),
        bill_unknown: true,
        max_cost_usd: Some(1.0 / 3.0),
        stop_reason: Some("max_tokens".into()),
        output: Some("ünïcødé \u{1F600} and \u{0} a NUL".into()),
        json: Some(serde_json::Value::Null),
        answered_by: Some("openai/gpt-4o".into()),
        attempts: vec![Attempt {
            model: "anthropic/claude-haiku-4-5".into(),
            at: 0.123_456_789_012_345_6,
            status: Some(529),
            outcome: "overloaded".into(),
            seconds: 2.5e-7,
            delay_ms: 1234,
        }],
        cached: true,
        depends_on: vec![Dependency {
            agent: "planner".into(),
            kind: EdgeKind::Order,
        }],
        timing: Some(Timing {
            ready: 0.1,
            preparing: Some(0.2),
            held: Some(0.3),
            started: Some(0.4),
            ended: Some(f64::MAX),
        }),
        estimate: Some(CostEstimate {
            expected_usd: Some(1e-12),
            max_usd: None,
        }),
        citations: vec![Citation {
            url: "https://example.com/a".into(),
            title: "A".into(),
            quoted: "q".into(),
        }],
        cache_saved_usd: Some(-0.000_001),
        key_failure: true,
    }
}

fn same(a: &AgentRecord, b: &AgentRecord) {
    assert_eq!(
        serde_json::to_value(a).unwrap(),
        serde_json::to_value(b).unwrap()
    );
    assert_eq!(a.key_failure, b.key_failure);
    // Bit for bit, not just equal when printed.
    assert_eq!(a.seconds.to_bits(), b.seconds.to_bits());
    assert_eq!(a.cost_usd.map(f64::to_bits), b.cost_usd.map(f64::to_bits));
    assert_eq!(a.json.is_some(), b.json.is_some());
}

#[test]
fn a_record_comes_back_from_the_file_as_it_went_in() {
    let mut spool = Spool::new();
    assert!(spool.file.is_some(), "a temporary file could be made here");
    let record = full("writer[3]", 12.345_678_901_234_567);
    spool.push((1, Some(3)), record.clone());
    let back = spool.into_records(|_, _, why| panic!("{why}"));
    assert_eq!(back.len(), 1);
    same(&back[0], &record);
    assert_eq!(
        back[0].json,
        Some(serde_json::Value::Null),
        "a JSON null reply stays one"
    );
}

#[test]
fn records_come_back_by_agent_then_item_whatever_order_they_ended_in() {
    for mut spool in [Spool::new(), Spool::in_memory()] {
        let keys = [(2, None), (0, Some(1)), (1, None), (0, Some(0)), (0, None)];
        for (agent, item) in keys {
            let mut record = full(&format!("{agent}-{item:?}"), 1.0);
            record.item = item;
            record.key_failure = agent == 1;
            spool.push((agent, item), record);
        }
        assert_eq!(spool.slots.len(), keys.len());
        let names: Vec<String> = spool
            .into_records(|_, _, why| panic!("{why}"))
            .into_iter()
            .map(|r| {
                assert_eq!(r.key_failure, r.name.starts_with("1-"));
                r.name
            })
            .collect();
        assert_eq!(
            names,
            ["0-None", "0-Some(0)", "0-Some(1)", "1-None", "2-None"]
        );
    }
}

/// Many records come back in order, spooled and held ones mixed, each with its
/// own fields.
#[test]
fn many_records_come_back_in_order_spooled_or_held() {
    let n = 10_000;
    let mut spool = Spool::new();
    for agent in (0..n).rev() {
        if agent == n / 2 {
            // The file fails half-way: every record from here on is held, and
            // those before are still read back from it.
            spool.full = true;
        }
        let mut record = full(&format!("agent-{agent}"), agent as f64);
        record.key_failure = agent % 3 == 0;
        spool.push((agent, None), record);
    }
    let back = spool.into_records(|_, _, why| panic!("{why}"));
    assert_eq!(back.len(), n);
    for (agent, record) in back.iter().enumerate() {
        assert_eq!(record.name, format!("agent-{agent}"));
        assert_eq!(record.seconds.to_bits(), (agent as f64).to_bits());
        assert_eq!(record.key_failure, agent % 3 == 0);
    }
}

/// A write that fails (a full disk) keeps later records in memory; the records
/// written before it are still read back from the file, not lost.
#[cfg(target_os = "linux")]
#[test]
fn records_written_before_a_failed_write_are_read_back() {
    use std::os::fd::AsRawFd;
    let mut spool = Spool::new();
    spool.push((0, None), full("a", 1.0));
    spool.push((1, None), full("b", 2.0));
    // The file can no longer be written (its handle is swapped for a read-only one).
    let writer = spool.file.as_mut().unwrap();
    writer.flush().unwrap();
    let read_only = File::open(format!("/proc/self/fd/{}", writer.get_ref().as_raw_fd())).unwrap();
    *writer.get_mut() = read_only;
    let mut long = full("c", 3.0);
    long.output = Some("x".repeat(64 * 1024)); // past the writer's buffer: it must write
    spool.push((2, None), long);
    assert!(spool.full);
    spool.push((3, None), full("d", 4.0));
    assert!(matches!(spool.slots[3].place, Place::Held(_)));
    let back = spool.into_records(|_, _, why| panic!("{why}"));
    let names: Vec<&str> = back.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
}

#[test]
fn failed_agents_are_known_without_reading_their_records() {
    let mut spool = Spool::new();
    spool.push((0, None), full("a", 1.0));
    let mut item = full("b[0]", 1.0);
    item.item = Some(0);
    spool.push((1, Some(0)), item);
    let mut ok = full("c", 1.0);
    ok.status = AgentStatus::Succeeded;
    spool.push((2, None), ok);
    assert!(spool.failed(0));
    assert!(
        !spool.failed(1),
        "a failed item is not its map agent's record"
    );
    assert!(!spool.failed(2));
}

#[test]
fn a_record_the_file_lost_is_replaced_not_dropped() {
    let mut spool = Spool::new();
    spool.push((0, None), full("a", 1.0));
    spool.push((1, None), full("b", 1.0));
    // The file is cut short under the spool: the last record cannot be read back.
    let file = spool.file.as_mut().unwrap();
    file.flush().unwrap();
    let Place::Spooled { offset, .. } = spool.slots[1].place else {
        panic!("spooled")
    };
    file.get_ref().set_len(offset + 3).unwrap();
    let back = spool.into_records(|(agent, item), status, why| {
        let mut r = full("replacement", 0.0);
        (r.item, r.status, r.reason) = (item, status, Some(format!("{agent}: {why}")));
        r
    });
    assert_eq!(back.len(), 2);
    assert_eq!(back[0].name, "a");
    assert_eq!(back[1].status, AgentStatus::Failed);
    let reason = back[1].reason.as_deref().unwrap();
    assert!(
        reason.starts_with("1: its record could not be read back"),
        "{reason}"
    );
}

proptest! {
    #[test]
    fn any_output_and_floats_come_back_bit_for_bit(
        output in any::<String>(),
        seconds in any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()),
        cost in any::<f64>().prop_filter("finite", |f| f.is_finite()),
    ) {
        let mut record = full("a", seconds);
        record.output = Some(output);
        record.cost_usd = Some(cost);
        let mut spool = Spool::new();
        spool.push((0, None), record.clone());
        let back = spool.into_records(|_, _, why| panic!("{why}"));
        same(&back[0], &record);
    }
}
