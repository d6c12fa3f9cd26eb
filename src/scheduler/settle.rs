//! Settling tasks: what happens to a row when one of its tasks finishes, fails,
//! is given up (by the gate) or lost (its task panicked): the agent's state, its
//! dependents (readied or skipped), the map agent an item belongs to, and, after a
//! failure, the row stopped unless told to keep going.

use std::sync::Arc;

use super::engine::{Engine, Ev, take_row};
use super::{Event, Runner, SkipReason, State, Task};

impl<R: Runner, T: Send> Engine<'_, R, T> {
    pub(super) fn task_done(&mut self, task: Task, output: R::Output, ev: Ev<'_, R, T>) {
        let output = Arc::new(output);
        ev(Event::Finished(task, &output));
        let Some(r) = self.rows.get_mut(&task.row) else {
            return;
        };
        match task.item {
            None => {
                r.states[task.agent] = State::Done(output);
                if let Some(keep) = &self.keep {
                    r.release(task.agent, keep);
                }
                let mut ready = Vec::new();
                for d in self.dag.dependents(task.agent) {
                    r.remaining[d] -= 1;
                    if r.remaining[d] == 0 {
                        ready.push(d);
                    }
                }
                self.make_ready(task.row, ready, ev);
            }
            Some(item) => {
                if let Some(map) = r.maps.get_mut(&task.agent) {
                    map.outputs[item] = Some(output);
                    map.unsettled -= 1;
                }
                self.complete_map_if_settled(task.row, task.agent, ev);
            }
        }
    }

    pub(super) fn task_failed(&mut self, task: Task, error: R::Error, ev: Ev<'_, R, T>) {
        if task.item.is_none() {
            self.fail_agent(task.row, task.agent, error, ev);
            return;
        }
        ev(Event::Failed(task, &error));
        if let Some(map) = self
            .rows
            .get_mut(&task.row)
            .and_then(|r| r.maps.get_mut(&task.agent))
        {
            map.unsettled -= 1;
            if map.error.is_none() {
                map.error = Some(error);
            }
        }
        if !self.keep_going {
            self.stop_row(task.row, ev);
        }
        self.complete_map_if_settled(task.row, task.agent, ev);
    }

    /// A task whose run panicked: given up like a skipped one, and its row stops
    /// unless told to keep going.
    pub(super) fn task_lost(&mut self, task: Task, ev: Ev<'_, R, T>) {
        self.task_skipped(task, SkipReason::Interrupted, ev);
        if !self.keep_going {
            self.stop_row(task.row, ev);
        }
    }

    /// A task given up (by the gate, or lost): the agent, and what depends on it,
    /// is skipped; an item leaves its map agent without an output.
    pub(super) fn task_skipped(&mut self, task: Task, reason: SkipReason, ev: Ev<'_, R, T>) {
        ev(Event::Skipped(task, &reason));
        if task.item.is_some() {
            if let Some(map) = self
                .rows
                .get_mut(&task.row)
                .and_then(|r| r.maps.get_mut(&task.agent))
            {
                map.skip(&reason);
            }
            self.complete_map_if_settled(task.row, task.agent, ev);
            return;
        }
        if let Some(r) = self.rows.get_mut(&task.row) {
            r.states[task.agent] = State::Skipped(reason);
        }
        self.skip_dependents(task.row, task.agent, ev);
    }

    /// Marks an agent failed, skips what depends on it, and stops its row unless
    /// told to keep going.
    pub(super) fn fail_agent(&mut self, row: u64, agent: usize, error: R::Error, ev: Ev<'_, R, T>) {
        ev(Event::Failed(Task::agent(row, agent), &error));
        if let Some(r) = self.rows.get_mut(&row) {
            r.states[agent] = State::Failed(Box::new(error));
        }
        self.skip_dependents(row, agent, ev);
        if !self.keep_going {
            self.stop_row(row, ev);
        }
    }

    /// Skips, transitively, every waiting agent that depends on `agent`.
    pub(super) fn skip_dependents(&mut self, row: u64, agent: usize, ev: Ev<'_, R, T>) {
        let Some(r) = self.rows.get_mut(&row) else {
            return;
        };
        let mut stack: Vec<(usize, usize)> =
            self.dag.dependents(agent).map(|d| (d, agent)).collect();
        while let Some((a, because)) = stack.pop() {
            if !matches!(r.states[a], State::Waiting) {
                continue;
            }
            let reason = SkipReason::Dependency(because);
            ev(Event::Skipped(Task::agent(row, a), &reason));
            r.states[a] = State::Skipped(reason);
            stack.extend(self.dag.dependents(a).map(|d| (d, a)));
        }
    }

    /// Starts nothing more of `row`: its queued items are skipped, its queued
    /// agents stay waiting until the row ends.
    pub(super) fn stop_row(&mut self, row: u64, ev: Ev<'_, R, T>) {
        let Some(r) = self.rows.get_mut(&row) else {
            return;
        };
        if r.stopped {
            return;
        }
        r.stopped = true;
        let reason = SkipReason::RunStopped;
        for task in take_row(&mut self.ready, row) {
            self.prepared.remove(&task);
            r.queued -= 1;
            if task.item.is_some() {
                ev(Event::Skipped(task, &reason));
                if let Some(map) = r.maps.get_mut(&task.agent) {
                    map.skip(&reason);
                }
            }
        }
        let settled: Vec<usize> = r
            .maps
            .iter()
            .filter(|(_, m)| m.unsettled == 0)
            .map(|(&a, _)| a)
            .collect();
        for agent in settled {
            self.complete_map_if_settled(row, agent, ev);
        }
    }

    /// Ends a map agent whose items have all settled: done with their gathered
    /// outputs, or failed (or skipped) with what depends on it.
    pub(super) fn complete_map_if_settled(&mut self, row: u64, agent: usize, ev: Ev<'_, R, T>) {
        let Some(r) = self.rows.get_mut(&row) else {
            return;
        };
        if r.maps.get(&agent).is_none_or(|m| m.unsettled > 0) {
            return;
        }
        let Some(map) = r.maps.remove(&agent) else {
            return;
        };
        if map.outputs.iter().all(Option::is_some) {
            let outputs = map.outputs.into_iter().flatten().collect();
            let output = Arc::new(self.runner.gather(agent, outputs));
            ev(Event::Gathered {
                row,
                agent,
                output: &output,
            });
            r.states[agent] = State::Done(output);
            let mut ready = Vec::new();
            for d in self.dag.dependents(agent) {
                r.remaining[d] -= 1;
                if r.remaining[d] == 0 {
                    ready.push(d);
                }
            }
            if let Some(keep) = &self.keep {
                r.release(agent, keep);
            }
            self.read_upstream(row, agent);
            self.make_ready(row, ready, ev);
            return;
        }
        r.states[agent] = match map.error {
            Some(error) => State::Failed(Box::new(error)),
            None if map.cancelled => State::Cancelled,
            None => State::Skipped(map.skipped.unwrap_or(SkipReason::RunStopped)),
        };
        self.skip_dependents(row, agent, ev);
    }

    /// `agent` of `row` has read its dependencies' outputs for the last time (it
    /// is prepared; a map agent, settled): those nothing else will read are let go.
    pub(super) fn read_upstream(&mut self, row: u64, agent: usize) {
        let (Some(keep), Some(r)) = (&self.keep, self.rows.get_mut(&row)) else {
            return;
        };
        for d in self.dag.dependencies(agent) {
            r.readers[d] = r.readers[d].saturating_sub(1);
            r.release(d, keep);
        }
    }
}
