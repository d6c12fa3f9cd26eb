//! The runner and the answer cache (SPEC §5): where each call's answer is kept,
//! looking it up before a call (a hit sends nothing and costs nothing), keeping a
//! success the moment it arrives, and which agents of a run the cache would
//! answer (for the estimate and the key check, before anything is sent).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value as Json;

use super::{AgentOutput, AgentRunner};
use crate::cache::{self, Entry, Key, Lookup};
use crate::events::Event;
use crate::providers::Request;

impl AgentRunner {
    /// Where `agent`'s answer to `request` is cached, if it is cached at all.
    pub(super) fn cache_key(&self, agent: usize, request: &Request) -> Option<Key> {
        self.endpoints[agent]
            .as_deref()
            .and_then(|targets| cache::key(targets, request))
    }

    /// Which agents this run would answer from the cache: those with an entry for
    /// the call they would make, given their upstream agents' cached answers. It
    /// reads the cache and sends nothing; an agent downstream of one that must be
    /// called is not known until then, so counts as called.
    pub fn cached_agents(&self) -> Vec<bool> {
        self.cached_agents_of(&self.inputs)
    }

    /// [`AgentRunner::cached_agents`] of a run whose template context's `inputs` is
    /// `inputs` (a row of a dataset). A map agent counts as called.
    pub fn cached_agents_of(&self, inputs: &Json) -> Vec<bool> {
        let dag = &self.checked.dag;
        let n = dag.len();
        if self.cache.is_none() {
            return vec![false; n];
        }
        let mut answers: Vec<Option<Arc<AgentOutput>>> = vec![None; n];
        let mut remaining: Vec<usize> = (0..n).map(|i| dag.dependencies(i).count()).collect();
        let mut ready: Vec<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
        while let Some(agent) = ready.pop() {
            let upstream: Option<Vec<(usize, Arc<AgentOutput>)>> = dag
                .dependencies(agent)
                .map(|d| answers[d].clone().map(|out| (d, out)))
                .collect();
            let entry = upstream
                .filter(|_| self.lists[agent].is_none())
                .and_then(|upstream| {
                    let request = self.request(agent, inputs, &upstream, None).ok()?;
                    // No warning here: the run that follows gives it.
                    self.lookup(agent, self.cache_key(agent, &request).as_ref(), false)
                });
            answers[agent] = entry.map(|e| Arc::new(AgentOutput::cached(e)));
            for d in dag.dependents(agent) {
                remaining[d] -= 1;
                if remaining[d] == 0 {
                    ready.push(d);
                }
            }
        }
        answers.iter().map(Option::is_some).collect()
    }

    /// The cached answer for `agent`'s call, unless it is not to be read. An entry
    /// that cannot be used is a miss, with a warning if `warn`.
    pub(super) fn lookup(&self, agent: usize, key: Option<&Key>, warn: bool) -> Option<Entry> {
        let (cache, key) = (self.cache.as_ref()?, key?);
        if self.refresh[agent] {
            return None;
        }
        let short = || key.to_string().chars().take(12).collect::<String>();
        match cache.get(key) {
            Lookup::Hit(entry) => {
                tracing::debug!("cache hit {}: answered by the cache", short());
                Some(*entry)
            }
            Lookup::Miss => {
                tracing::debug!("cache miss {}: will call", short());
                None
            }
            Lookup::Unreadable(_) if !warn => None,
            Lookup::Unreadable(why) => {
                tracing::debug!("cache miss {}: the entry cannot be used", short());
                let message = format!("agent `{}`: {why}", self.names[agent]);
                self.bus.emit(&Event::Warning { message: &message });
                None
            }
        }
    }

    /// Keeps a successful answer; a cache that cannot be written costs only a
    /// warning. Writing is one `write` to a file already open (the kernel's page
    /// cache, not the disk): cheaper done here than handed to a blocking thread.
    pub(super) fn store(&self, key: Key, output: &AgentOutput) {
        let Some(cache) = self.cache.as_ref() else {
            return;
        };
        let entry = Entry {
            usage: output.bill.usage,
            stop_reason: output.stop_reason.clone(),
            citations: output.citations.clone(),
            ..Entry::new(
                &key,
                output.model.clone(),
                output.text.clone(),
                output.json.clone(),
            )
        };
        if let Err(e) = cache.put(&key, &entry)
            && !self.write_warned.swap(true, Ordering::Relaxed)
        {
            let message = format!(
                "cannot write to the cache in {}: {e}; answers of this run will not be reused (pass `--cache-dir DIR` to use another folder, or `--no-cache`)",
                cache.root().display()
            );
            self.bus.emit(&Event::Warning { message: &message });
        }
    }
}
