//! The squad as a directed acyclic graph (petgraph): an edge `a -> b` means `b`
//! needs `a` to have finished. It finds cycles (every agent on one, in order), and
//! draws the graph as Mermaid or Graphviz DOT.

use petgraph::Direction;
use petgraph::algo::kosaraju_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;

/// The agents (by index, in the order the file declares them) and their edges.
#[derive(Debug, Clone, Default)]
pub struct Dag {
    graph: DiGraph<String, EdgeKind>,
}

/// Why an edge exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// A template reads the upstream agent's output.
    Data,
    /// Only `needs:` orders them.
    Order,
}

impl Dag {
    /// A graph of `names`, with `edges` as (from, to, kind) indices into it.
    /// A data edge and an order edge between the same pair collapse into the data edge.
    pub fn new(
        names: &[String],
        edges: impl IntoIterator<Item = (usize, usize, EdgeKind)>,
    ) -> Self {
        let mut graph = DiGraph::with_capacity(names.len(), names.len() * 2);
        for name in names {
            graph.add_node(name.clone());
        }
        for (from, to, kind) in edges {
            let (a, b) = (NodeIndex::new(from), NodeIndex::new(to));
            match graph.find_edge(a, b) {
                Some(e) if kind == EdgeKind::Data => graph[e] = EdgeKind::Data,
                Some(_) => {}
                None => {
                    graph.add_edge(a, b, kind);
                }
            }
        }
        Dag { graph }
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    pub fn name(&self, i: usize) -> &str {
        &self.graph[NodeIndex::new(i)]
    }

    /// The agents `i` waits for.
    pub fn dependencies(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(i), Direction::Incoming)
            .map(NodeIndex::index)
    }

    /// The agents `i` waits for, each with why.
    pub fn dependencies_with_kind(&self, i: usize) -> impl Iterator<Item = (usize, EdgeKind)> + '_ {
        self.graph
            .edges_directed(NodeIndex::new(i), Direction::Incoming)
            .map(|e| (e.source().index(), *e.weight()))
    }

    /// The agents that wait for `i`.
    pub fn dependents(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph
            .neighbors_directed(NodeIndex::new(i), Direction::Outgoing)
            .map(NodeIndex::index)
    }

    /// Agents nothing depends on: the default outputs of a run.
    pub fn sinks(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.dependents(i).next().is_none())
            .collect()
    }

    /// Every cycle, each as the agents on it in order, starting from the one declared first.
    /// Iterative (Kosaraju's algorithm, then a breadth-first search in each
    /// component): a chain of 100,000 agents must not overflow the stack.
    pub fn cycles(&self) -> Vec<Vec<usize>> {
        let mut cycles = Vec::new();
        for scc in kosaraju_scc(&self.graph) {
            let start = scc.iter().map(|n| n.index()).min().unwrap_or_default();
            if scc.len() == 1
                && self
                    .graph
                    .find_edge(NodeIndex::new(start), NodeIndex::new(start))
                    .is_none()
            {
                continue;
            }
            cycles.push(self.cycle_through(start, &scc));
        }
        cycles.sort();
        cycles
    }

    /// A shortest cycle from `start` back to itself inside one strongly connected component.
    fn cycle_through(&self, start: usize, scc: &[NodeIndex]) -> Vec<usize> {
        let inside: std::collections::HashSet<usize> = scc.iter().map(|n| n.index()).collect();
        let mut parent: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(node) = queue.pop_front() {
            let mut next: Vec<usize> = self
                .dependents(node)
                .filter(|n| inside.contains(n))
                .collect();
            next.sort_unstable();
            for n in next {
                if n == start {
                    let mut path = vec![node];
                    while let Some(&p) = parent.get(path.last().unwrap_or(&start)) {
                        path.push(p);
                    }
                    path.reverse();
                    return path;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(n) {
                    e.insert(node);
                    queue.push_back(n);
                }
            }
        }
        vec![start]
    }

    /// The graph as a Mermaid flowchart; a `stacked` agent (one that runs once per
    /// item) is drawn as a stack of boxes.
    pub fn to_mermaid(
        &self,
        label: impl Fn(usize) -> String,
        stacked: impl Fn(usize) -> bool,
    ) -> String {
        let mut out = String::from("flowchart LR\n");
        for i in 0..self.len() {
            let (id, text) = (node_id(self.name(i)), escape_label(&label(i)));
            if stacked(i) {
                out.push_str(&format!(
                    "    {id}@{{ shape: processes, label: \"{text}\" }}\n"
                ));
            } else {
                out.push_str(&format!("    {id}[\"{text}\"]\n"));
            }
        }
        for e in self.graph.edge_references() {
            let arrow = if *e.weight() == EdgeKind::Data {
                "-->"
            } else {
                "-.->"
            };
            out.push_str(&format!(
                "    {} {arrow} {}\n",
                node_id(&self.graph[e.source()]),
                node_id(&self.graph[e.target()])
            ));
        }
        out
    }

    /// The graph in Graphviz DOT; a `stacked` agent is drawn as a stack (`box3d`).
    pub fn to_dot(
        &self,
        label: impl Fn(usize) -> String,
        stacked: impl Fn(usize) -> bool,
    ) -> String {
        let mut out = String::from("digraph squad {\n    rankdir=LR;\n    node [shape=box];\n");
        for i in 0..self.len() {
            let shape = if stacked(i) { ", shape=box3d" } else { "" };
            out.push_str(&format!(
                "    \"{}\" [label=\"{}\"{shape}];\n",
                self.name(i),
                label(i).replace('"', "\\\"")
            ));
        }
        for e in self.graph.edge_references() {
            let style = if *e.weight() == EdgeKind::Data {
                ""
            } else {
                " [style=dashed]"
            };
            out.push_str(&format!(
                "    \"{}\" -> \"{}\"{style};\n",
                self.graph[e.source()],
                self.graph[e.target()]
            ));
        }
        out.push_str("}\n");
        out
    }
}

/// Mermaid node ids: agent names are identifiers, but `-` and reserved words need care.
fn node_id(name: &str) -> String {
    format!("a_{}", name.replace('-', "_2d_"))
}

fn escape_label(label: &str) -> String {
    label.replace('"', "#quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(n: usize, edges: &[(usize, usize)]) -> Dag {
        let names: Vec<String> = (0..n).map(|i| format!("a{i}")).collect();
        Dag::new(&names, edges.iter().map(|&(a, b)| (a, b, EdgeKind::Data)))
    }

    #[test]
    fn finds_cycles_in_order() {
        let d = dag(5, &[(0, 1), (1, 2), (2, 0), (3, 3), (2, 4)]);
        assert_eq!(d.cycles(), vec![vec![0, 1, 2], vec![3]]);
    }

    /// Issue 13, item 10: a chain (and a ring) of 200,000 agents, walked without recursion.
    #[test]
    fn issue13_a_long_chain_and_ring_need_no_deep_stack() {
        let n = 200_000;
        let chain: Vec<(usize, usize)> = (1..n).map(|i| (i - 1, i)).collect();
        // On a thread with a small stack, where recursion per agent would overflow.
        std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let d = dag(n, &chain);
                assert!(d.cycles().is_empty());
                let mut ring = chain.clone();
                ring.push((n - 1, 0));
                let d = dag(n, &ring);
                let cycles = d.cycles();
                assert_eq!(cycles.len(), 1);
                assert_eq!(cycles[0].len(), n);
                assert_eq!(cycles[0][..3], [0, 1, 2]);
                assert!(d.to_mermaid(|i| d.name(i).to_string(), |_| false).len() > n);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn acyclic_has_no_cycles_and_sinks() {
        let d = dag(4, &[(0, 1), (0, 2), (1, 3), (2, 3)]);
        assert!(d.cycles().is_empty());
        assert_eq!(d.sinks(), vec![3]);
        let mut deps: Vec<usize> = d.dependencies(3).collect();
        deps.sort_unstable();
        assert_eq!(deps, vec![1, 2]);
    }

    #[test]
    fn draws_mermaid_and_dot() {
        let names = vec!["a".to_string(), "b-c".to_string()];
        let d = Dag::new(&names, [(0, 1, EdgeKind::Order)]);
        let m = d.to_mermaid(|i| d.name(i).to_string(), |i| i == 1);
        assert!(m.contains("a_a -.-> a_b_2d_c"), "{m}");
        assert!(m.contains("    a_a[\"a\"]\n"), "{m}");
        assert!(
            m.contains("    a_b_2d_c@{ shape: processes, label: \"b-c\" }\n"),
            "{m}"
        );
        let dot = d.to_dot(|i| d.name(i).to_string(), |i| i == 1);
        assert!(dot.contains("\"a\" -> \"b-c\" [style=dashed];"), "{dot}");
        assert!(
            dot.contains("\"b-c\" [label=\"b-c\", shape=box3d];"),
            "{dot}"
        );
    }
}
