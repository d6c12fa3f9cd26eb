//! "Did you mean …?": the closest valid names to a misspelt one, at most
//! [`MAX_SUGGESTIONS`] of them, and never a list of every name.
//!
//! A workflow can have 100,000 agents and as many mistakes, so the work is
//! capped: a set of names is indexed once ([`Names`]), each name with every
//! variant that lacks one character, which finds every name one edit away
//! (an insertion, deletion, substitution or swap of neighbours) with a few hash
//! look-ups. Names further away are found by comparing with each name of a
//! similar length, within a fixed budget of comparisons per set, so a file full
//! of mistakes is reported in linear time; once the budget is spent, only the
//! one-edit suggestions are made.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{DefaultHasher, Hasher};

/// The most names a hint suggests.
pub const MAX_SUGGESTIONS: usize = 3;

/// Edit-distance computations a [`Names`] spends, in all, on names more than one
/// edit away (about 25 ms); a workflow of a few hundred agents with a few dozen
/// mistakes never runs out.
const SCAN_BUDGET: usize = 50_000;

/// A set of valid names, ready to be searched for the ones closest to a typo.
pub struct Names<'a> {
    all: Vec<&'a str>,
    /// Hashes of each name and of each name less one character, with the name's
    /// index, sorted; built on the first query of a large set.
    variants: RefCell<Option<Vec<(u64, usize)>>>,
    /// The names' indices in order of length (in characters), with the lengths.
    by_len: RefCell<Option<Vec<(usize, usize)>>>,
    budget: Cell<usize>,
    memo: RefCell<HashMap<String, Vec<usize>>>,
}

impl<'a> Names<'a> {
    pub fn new(names: impl IntoIterator<Item = &'a str>) -> Self {
        Names {
            all: names.into_iter().collect(),
            variants: RefCell::new(None),
            by_len: RefCell::new(None),
            budget: Cell::new(SCAN_BUDGET),
            memo: RefCell::new(HashMap::new()),
        }
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// The names close enough to `typed` to be a likely typo, closest first, at
    /// most [`MAX_SUGGESTIONS`], all as close as the closest.
    pub fn closest(&self, typed: &str) -> Vec<&'a str> {
        if let Some(found) = self.memo.borrow().get(typed) {
            return found.iter().map(|&i| self.all[i]).collect();
        }
        let found = self.search(typed);
        let names = found.iter().map(|&i| self.all[i]).collect();
        self.memo.borrow_mut().insert(typed.to_string(), found);
        names
    }

    /// "did you mean `a`?", "did you mean `a` or `b`?", or `None`.
    pub fn did_you_mean(&self, typed: &str) -> Option<String> {
        phrase(&self.closest(typed))
    }

    /// What to say when `typed` is not among the names: the closest ones, or, with
    /// none close, the names themselves when there are at most
    /// [`MAX_SUGGESTIONS`], else how many there are (`what` names them: "agents").
    pub fn hint(&self, typed: &str, what: &str) -> String {
        if let Some(near) = self.did_you_mean(typed) {
            return near;
        }
        match self.all.len() {
            0 => format!("there are no {what}"),
            n if n <= MAX_SUGGESTIONS => {
                let listed: Vec<String> = self.all.iter().map(|n| format!("`{n}`")).collect();
                format!("the {what}: {}", listed.join(", "))
            }
            n => format!("none of the {n} {what} has a similar name"),
        }
    }

    fn search(&self, typed: &str) -> Vec<usize> {
        let typed_len = typed.chars().count();
        let limit = (typed_len / 3).max(2);
        let mut scored: Vec<(usize, usize)> = Vec::new();
        let mut score = |i: usize| {
            let d = strsim::damerau_levenshtein(typed, self.all[i]);
            if d <= limit {
                scored.push((d, i));
            }
        };
        let mut near = self.one_edit(typed);
        near.sort_unstable();
        near.dedup();
        near.iter().copied().for_each(&mut score);
        let mut by_len = self.by_len.borrow_mut();
        let by_len = by_len.get_or_insert_with(|| {
            let mut by_len: Vec<(usize, usize)> = (self.all.iter().enumerate())
                .map(|(i, n)| (n.chars().count(), i))
                .collect();
            by_len.sort_unstable();
            by_len
        });
        let from = by_len.partition_point(|&(l, _)| l + limit < typed_len);
        for &(len, i) in &by_len[from..] {
            if len > typed_len + limit || self.budget.get() == 0 {
                break;
            }
            if near.binary_search(&i).is_err() {
                self.budget.set(self.budget.get() - 1);
                score(i);
            }
        }
        scored.sort_unstable();
        let best = scored.first().map_or(0, |&(d, _)| d);
        scored
            .into_iter()
            .take_while(|&(d, _)| d == best)
            .take(MAX_SUGGESTIONS)
            .map(|(_, i)| i)
            .collect()
    }

    /// Names that `typed` could be one edit away from: those sharing `typed`
    /// itself or `typed` less one character, as themselves or less one character.
    fn one_edit(&self, typed: &str) -> Vec<usize> {
        let mut variants = self.variants.borrow_mut();
        let index = variants.get_or_insert_with(|| {
            let mut all = Vec::new();
            for (i, name) in self.all.iter().enumerate() {
                for_each_variant(name, |h| all.push((h, i)));
            }
            all.sort_unstable();
            all
        });
        let mut out = Vec::new();
        for_each_variant(typed, |h| {
            let from = index.partition_point(|&(v, _)| v < h);
            out.extend(
                index[from..]
                    .iter()
                    .take_while(|&&(v, _)| v == h)
                    .map(|&(_, i)| i),
            );
        });
        out
    }
}

/// Calls `f` with the hash of `name` and of each `name` less one character.
fn for_each_variant(name: &str, mut f: impl FnMut(u64)) {
    // The same text made by deleting different characters must hash alike.
    let hash = |parts: [&str; 2]| {
        let mut h = DefaultHasher::new();
        h.write(parts[0].as_bytes());
        h.write(parts[1].as_bytes());
        h.finish()
    };
    f(hash([name, ""]));
    for (at, c) in name.char_indices() {
        f(hash([&name[..at], &name[at + c.len_utf8()..]]));
    }
}

/// "did you mean `a`?", "did you mean `a` or `b`?", "did you mean `a`, `b` or `c`?".
pub fn phrase(names: &[&str]) -> Option<String> {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => None,
        [one] => Some(format!("did you mean {one}?")),
        [rest @ .., last] => Some(format!("did you mean {} or {last}?", rest.join(", "))),
    }
}

/// The candidate closest to `name`, when it is close enough to be a likely typo.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    Names::new(candidates).closest(name).first().copied()
}

/// "did you mean `x`?" (or up to three names) or nothing, for a hint.
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    Names::new(candidates).did_you_mean(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_typos_only() {
        let fields = ["max_tokens", "model", "prompt", "temperature"];
        assert_eq!(closest("max_token", fields), Some("max_tokens"));
        assert_eq!(closest("temprature", fields), Some("temperature"));
        assert_eq!(closest("promt", fields), Some("prompt"));
        assert_eq!(closest("banana", fields), None);
    }

    #[test]
    fn suggests_at_most_three_closest_first() {
        let names = ["writer", "writer-a", "writer-b", "writer-c", "writer-d"];
        let near = Names::new(names).closest("writer-x");
        assert_eq!(near, ["writer-a", "writer-b", "writer-c"]);
        assert_eq!(Names::new(names).closest("writr"), ["writer"]);
        assert_eq!(
            phrase(&["a", "b", "c"]).unwrap(),
            "did you mean `a`, `b` or `c`?"
        );
        assert_eq!(phrase(&["a", "b"]).unwrap(), "did you mean `a` or `b`?");
    }

    #[test]
    fn never_lists_every_name() {
        let many: Vec<String> = (0..50).map(|i| format!("agent{i}")).collect();
        let names = Names::new(many.iter().map(String::as_str));
        assert_eq!(
            names.hint("zzzzzzzzzzzz", "agents"),
            "none of the 50 agents has a similar name"
        );
        let few = Names::new(["a", "b"]);
        assert_eq!(few.hint("zzzzzz", "agents"), "the agents: `a`, `b`");
    }

    /// Large sets go through the index of one-edit variants and the budgeted scan,
    /// and find what a full scan would.
    #[test]
    fn large_sets_find_near_names() {
        let many: Vec<String> = (0..20_000).map(|i| format!("agent-{i:05}")).collect();
        let names = Names::new(many.iter().map(String::as_str));
        assert_eq!(names.closest("agent-12345")[0], "agent-12345");
        assert!(names.closest("agnet-12345").contains(&"agent-12345"));
        assert!(names.closest("agent-1234").contains(&"agent-01234"));
        assert!(names.closest("gent-123456").len() <= MAX_SUGGESTIONS);
        // With the scan budget spent, one-edit typos are still found.
        names.budget.set(0);
        assert_eq!(names.closest("agent-1999x")[0], "agent-19990");
    }
}
