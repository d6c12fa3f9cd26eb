//! A layered drawing of a directed acyclic graph, left to right (the Sugiyama
//! method): each node gets a column (its longest path from a source), an edge that
//! spans several columns gets a bend point in each column it crosses, the nodes
//! of each column are ordered to reduce crossings (barycenter sweeps, adjacent
//! swaps, the best order seen kept), and each node is placed near its neighbours
//! without overlapping the nodes beside it.
//!
//! It knows only node sizes and edges; what a node shows is `graph.rs`'s concern.
//! Input may come from a hand-edited run record, so it never trusts it: an edge to
//! a node that does not exist is dropped, and an edge that goes backwards (a cycle)
//! is drawn straight, without bends. Work is near-linear in nodes and edges.

/// Sizes, in SVG user units (pixels).
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub node_width: f64,
    pub node_height: f64,
    /// Horizontal space between columns.
    pub column_gap: f64,
    /// Vertical space between nodes in a column.
    pub node_gap: f64,
    /// Space around the whole drawing.
    pub margin: f64,
}

/// A point in the drawing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

/// Where everything goes.
#[derive(Debug, Clone)]
pub struct Layout {
    /// Each node's top-left corner, by node index.
    pub nodes: Vec<Point>,
    /// Each edge (in the order given, dropped ones left out) as `(index in the
    /// input, its points)`: from the source's right side, through each column it
    /// crosses, to the target's left side.
    pub edges: Vec<(usize, Vec<Point>)>,
    pub width: f64,
    pub height: f64,
    /// Edge crossings left in the drawing (between adjacent columns).
    pub crossings: usize,
}

/// How many ordering sweeps to try; the best order seen is kept.
const SWEEPS: usize = 24;
/// Passes that pull each node towards its neighbours.
const PLACEMENT_PASSES: usize = 8;
/// Height of an edge's bend point, as a stand-in node.
const BEND_HEIGHT: f64 = 2.0;
/// Space a bend point keeps from its neighbours.
const BEND_GAP: f64 = 8.0;
/// Above this many nodes plus bends in one column, adjacent swaps (quadratic in
/// the worst case) are skipped; the sweeps still run.
const SWAP_LIMIT: usize = 400;

/// Lays out `nodes` nodes and `edges` (`from -> to`, indices into the nodes).
pub fn layout(nodes: usize, edges: &[(usize, usize)], sizes: &Sizes) -> Layout {
    let valid: Vec<(usize, (usize, usize))> = edges
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, (a, b))| a < nodes && b < nodes && a != b)
        .collect();
    let column = columns(nodes, &valid);
    let mut graph = Layered::new(nodes, &column, &valid);
    let crossings = graph.order();
    let y = graph.place(sizes);
    let x = |c: usize| sizes.margin + c as f64 * (sizes.node_width + sizes.column_gap);
    let top = |v: usize| y[v] - graph.height(v, sizes) / 2.0;
    let node_points: Vec<Point> = (0..nodes)
        .map(|v| Point {
            x: x(graph.column[v]),
            y: top(v),
        })
        .collect();
    let edge_points = graph
        .chains
        .iter()
        .map(|(index, chain)| {
            let (first, last) = (chain[0], chain[chain.len() - 1]);
            let mut points = vec![Point {
                x: x(graph.column[first]) + sizes.node_width,
                y: y[first],
            }];
            for &bend in &chain[1..chain.len() - 1] {
                let left = x(graph.column[bend]);
                points.push(Point {
                    x: left,
                    y: y[bend],
                });
                points.push(Point {
                    x: left + sizes.node_width,
                    y: y[bend],
                });
            }
            points.push(Point {
                x: x(graph.column[last]),
                y: y[last],
            });
            (*index, points)
        })
        .collect();
    let columns_used = graph.layers.len().max(1);
    let bottom = (0..graph.column.len())
        .map(|v| y[v] + graph.height(v, sizes) / 2.0)
        .fold(0.0, f64::max);
    Layout {
        nodes: node_points,
        edges: edge_points,
        width: 2.0 * sizes.margin
            + columns_used as f64 * sizes.node_width
            + (columns_used - 1) as f64 * sizes.column_gap,
        height: (bottom + sizes.margin).max(2.0 * sizes.margin + sizes.node_height),
        crossings,
    }
}

/// Each node's column: the longest path to it from a source, with a source that
/// feeds only later columns moved up to just before the first of them.
fn columns(nodes: usize, edges: &[(usize, (usize, usize))]) -> Vec<usize> {
    let mut successors = vec![Vec::new(); nodes];
    let mut incoming = vec![0usize; nodes];
    for &(_, (a, b)) in edges {
        successors[a].push(b);
        incoming[b] += 1;
    }
    let mut column = vec![0usize; nodes];
    let mut remaining = incoming.clone();
    let mut ready: Vec<usize> = (0..nodes).filter(|&v| remaining[v] == 0).collect();
    ready.reverse();
    let mut order = Vec::with_capacity(nodes);
    while let Some(v) = ready.pop() {
        order.push(v);
        for &s in &successors[v] {
            column[s] = column[s].max(column[v] + 1);
            remaining[s] -= 1;
            if remaining[s] == 0 {
                ready.push(s);
            }
        }
    }
    // Nodes on a cycle never became ready: put each after what it follows.
    let placed = order.len();
    if placed < nodes {
        let last = column.iter().copied().max().unwrap_or(0);
        for v in 0..nodes {
            if remaining[v] > 0 {
                column[v] = column[v].max(last + 1);
            }
        }
    }
    for &v in order.iter().rev() {
        if incoming[v] == 0
            && let Some(first) = successors[v].iter().map(|&s| column[s]).min()
        {
            column[v] = first.saturating_sub(1).max(column[v]);
        }
    }
    column
}

/// The graph with a bend node wherever an edge crosses a column, in columns.
struct Layered {
    /// Each node's column (real nodes first, then bends).
    column: Vec<usize>,
    /// Real nodes: `0..real`.
    real: usize,
    /// Each column's nodes, in drawing order.
    layers: Vec<Vec<usize>>,
    /// Neighbours one column to the left and to the right.
    left: Vec<Vec<usize>>,
    right: Vec<Vec<usize>>,
    /// Each drawn edge: its input index and the nodes it passes, source first.
    chains: Vec<(usize, Vec<usize>)>,
}

impl Layered {
    fn new(real: usize, column: &[usize], edges: &[(usize, (usize, usize))]) -> Self {
        let mut g = Layered {
            column: column.to_vec(),
            real,
            layers: Vec::new(),
            left: vec![Vec::new(); real],
            right: vec![Vec::new(); real],
            chains: Vec::new(),
        };
        for &(index, (a, b)) in edges {
            let mut chain = vec![a];
            if g.column[b] > g.column[a] {
                let mut previous = a;
                for c in g.column[a] + 1..g.column[b] {
                    let bend = g.column.len();
                    g.column.push(c);
                    g.left.push(Vec::new());
                    g.right.push(Vec::new());
                    g.link(previous, bend);
                    chain.push(bend);
                    previous = bend;
                }
                g.link(previous, b);
            }
            chain.push(b);
            g.chains.push((index, chain));
        }
        let columns = g.column.iter().copied().max().map_or(0, |m| m + 1);
        g.layers = vec![Vec::new(); columns];
        for v in 0..g.column.len() {
            g.layers[g.column[v]].push(v);
        }
        g
    }

    fn link(&mut self, a: usize, b: usize) {
        self.right[a].push(b);
        self.left[b].push(a);
    }

    fn height(&self, v: usize, sizes: &Sizes) -> f64 {
        if v < self.real {
            sizes.node_height
        } else {
            BEND_HEIGHT
        }
    }

    /// Orders each column to reduce crossings; returns the crossings left.
    fn order(&mut self) -> usize {
        // A first order: each column by where its left neighbours are.
        let mut position = self.positions();
        for c in 1..self.layers.len() {
            self.sort_by_barycenter(c, true, &position);
            position = self.positions();
        }
        let mut best = self.layers.clone();
        let mut fewest = self.crossings(&position);
        for sweep in 0..SWEEPS {
            if fewest == 0 {
                break;
            }
            let rightwards = sweep % 2 == 0;
            let columns: Vec<usize> = if rightwards {
                (1..self.layers.len()).collect()
            } else {
                (0..self.layers.len().saturating_sub(1)).rev().collect()
            };
            for c in columns {
                self.sort_by_barycenter(c, rightwards, &position);
                position = self.positions();
            }
            self.swap_adjacent(&mut position);
            let now = self.crossings(&position);
            if now < fewest {
                fewest = now;
                best.clone_from(&self.layers);
            }
        }
        self.layers = best;
        fewest
    }

    /// Each node's index within its column.
    fn positions(&self) -> Vec<usize> {
        let mut position = vec![0; self.column.len()];
        for layer in &self.layers {
            for (i, &v) in layer.iter().enumerate() {
                position[v] = i;
            }
        }
        position
    }

    /// Sorts column `c` by the mean position of each node's neighbours on the
    /// left (`from_left`) or right; a node with none keeps its place.
    fn sort_by_barycenter(&mut self, c: usize, from_left: bool, position: &[usize]) {
        let neighbours = if from_left { &self.left } else { &self.right };
        let mut keyed: Vec<(f64, usize, usize)> = self.layers[c]
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let n = &neighbours[v];
                let key = if n.is_empty() {
                    i as f64
                } else {
                    n.iter().map(|&u| position[u] as f64).sum::<f64>() / n.len() as f64
                };
                (key, i, v)
            })
            .collect();
        keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        self.layers[c] = keyed.into_iter().map(|(_, _, v)| v).collect();
    }

    /// Swaps neighbours in a column while that removes crossings.
    fn swap_adjacent(&mut self, position: &mut [usize]) {
        for _ in 0..4 {
            let mut improved = false;
            for c in 0..self.layers.len() {
                if self.layers[c].len() > SWAP_LIMIT {
                    continue;
                }
                for i in 0..self.layers[c].len().saturating_sub(1) {
                    let (u, v) = (self.layers[c][i], self.layers[c][i + 1]);
                    let now = self.pair_crossings(u, v, position);
                    let swapped = self.pair_crossings(v, u, position);
                    if swapped < now {
                        self.layers[c].swap(i, i + 1);
                        position[u] = i + 1;
                        position[v] = i;
                        improved = true;
                    }
                }
            }
            if !improved {
                break;
            }
        }
    }

    /// Crossings between the edges of `u` and of `v` when `u` is above `v`.
    fn pair_crossings(&self, u: usize, v: usize, position: &[usize]) -> usize {
        let mut count = 0;
        for side in [&self.left, &self.right] {
            for &a in &side[u] {
                for &b in &side[v] {
                    if position[a] > position[b] {
                        count += 1;
                    }
                }
            }
        }
        count
    }

    /// Crossings between every pair of adjacent columns: per pair, the edges
    /// sorted by their left ends, and the inversions among their right ends
    /// counted with a Fenwick tree (Barth, Jünger and Mutzel, 2002).
    fn crossings(&self, position: &[usize]) -> usize {
        let mut total = 0;
        for c in 0..self.layers.len().saturating_sub(1) {
            let mut ends: Vec<(usize, usize)> = self.layers[c]
                .iter()
                .flat_map(|&a| self.right[a].iter().map(move |&b| (a, b)))
                .map(|(a, b)| (position[a], position[b]))
                .collect();
            ends.sort_unstable();
            let size = self.layers[c + 1].len();
            let mut tree = vec![0usize; size + 1];
            for (seen, &(_, b)) in ends.iter().enumerate() {
                // Edges seen so far whose right end is below b cross this one.
                let mut at_or_above = 0;
                let mut i = b + 1;
                while i > 0 {
                    at_or_above += tree[i];
                    i &= i - 1;
                }
                total += seen - at_or_above;
                let mut i = b + 1;
                while i <= size {
                    tree[i] += 1;
                    i += i & i.wrapping_neg();
                }
            }
        }
        total
    }

    /// Each node's vertical centre: stacked in column order, then pulled towards
    /// its neighbours' centres while keeping the order and the gaps.
    fn place(&self, sizes: &Sizes) -> Vec<f64> {
        let mut y = vec![0.0; self.column.len()];
        for layer in &self.layers {
            let mut top = sizes.margin;
            for &v in layer {
                let h = self.height(v, sizes);
                y[v] = top + h / 2.0;
                top += h + self.gap(v, sizes);
            }
        }
        for pass in 0..PLACEMENT_PASSES {
            let rightwards = pass % 2 == 0;
            let columns: Vec<usize> = if rightwards {
                (1..self.layers.len()).collect()
            } else {
                (0..self.layers.len().saturating_sub(1)).rev().collect()
            };
            for c in columns {
                let neighbours = if rightwards { &self.left } else { &self.right };
                let wanted: Vec<f64> = self.layers[c]
                    .iter()
                    .map(|&v| {
                        let n = &neighbours[v];
                        if n.is_empty() {
                            y[v]
                        } else {
                            n.iter().map(|&u| y[u]).sum::<f64>() / n.len() as f64
                        }
                    })
                    .collect();
                let placed = self.closest(c, &wanted, sizes);
                for (&v, p) in self.layers[c].iter().zip(placed) {
                    y[v] = p;
                }
            }
        }
        // Nothing above the margin.
        let top = (0..y.len())
            .map(|v| y[v] - self.height(v, sizes) / 2.0)
            .fold(f64::INFINITY, f64::min);
        if top.is_finite() {
            for value in &mut y {
                *value += sizes.margin - top;
            }
        }
        y
    }

    /// Space below `v` before the next node of its column.
    fn gap(&self, v: usize, sizes: &Sizes) -> f64 {
        if v < self.real {
            sizes.node_gap
        } else {
            BEND_GAP
        }
    }

    /// The centres for column `c` closest (least squares) to `wanted` that keep
    /// its order and gaps: with each centre shifted by the room the nodes above it
    /// need, the constraint is "never decreasing", solved by pooling adjacent
    /// violators. Real nodes pull harder than bend points.
    fn closest(&self, c: usize, wanted: &[f64], sizes: &Sizes) -> Vec<f64> {
        let layer = &self.layers[c];
        let mut offsets = Vec::with_capacity(layer.len());
        let mut offset = 0.0;
        for (i, &v) in layer.iter().enumerate() {
            if i > 0 {
                let above = layer[i - 1];
                offset += self.height(above, sizes) / 2.0
                    + self.gap(above, sizes)
                    + self.height(v, sizes) / 2.0;
            }
            offsets.push(offset);
        }
        // Blocks of (weighted mean, weight, count).
        let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(layer.len());
        for (i, &v) in layer.iter().enumerate() {
            let weight = if v < self.real { 1.0 } else { 0.25 };
            blocks.push((wanted[i] - offsets[i], weight, 1));
            while blocks.len() > 1 && blocks[blocks.len() - 2].0 > blocks[blocks.len() - 1].0 {
                let (m2, w2, n2) = blocks.pop().expect("two blocks");
                let (m1, w1, n1) = blocks.pop().expect("two blocks");
                let w = w1 + w2;
                blocks.push(((m1 * w1 + m2 * w2) / w, w, n1 + n2));
            }
        }
        let mut placed = Vec::with_capacity(layer.len());
        for (mean, _, count) in blocks {
            for _ in 0..count {
                let i = placed.len();
                placed.push(mean + offsets[i]);
            }
        }
        placed
    }
}

#[cfg(test)]
// The layout's arithmetic is exact for these sizes: equal means equal.
#[allow(
    clippy::float_cmp,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
mod tests {
    use super::*;

    const SIZES: Sizes = Sizes {
        node_width: 100.0,
        node_height: 40.0,
        column_gap: 50.0,
        node_gap: 10.0,
        margin: 5.0,
    };

    fn overlaps(layout: &Layout) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        for (i, a) in layout.nodes.iter().enumerate() {
            for (j, b) in layout.nodes.iter().enumerate().skip(i + 1) {
                let apart_x = (a.x - b.x).abs() >= SIZES.node_width;
                let apart_y = (a.y - b.y).abs() >= SIZES.node_height + SIZES.node_gap - 1e-6;
                if !apart_x && !apart_y {
                    found.push((i, j));
                }
            }
        }
        found
    }

    #[test]
    fn columns_follow_the_longest_path_and_sources_move_up() {
        // 0 -> 1 -> 2, and 3 feeds only 2: 3 goes in column 1, beside 1.
        let l = layout(4, &[(0, 1), (1, 2), (3, 2)], &SIZES);
        let column = |v: usize| ((l.nodes[v].x - SIZES.margin) / 150.0).round() as usize;
        assert_eq!([0, 1, 2, 3].map(column), [0, 1, 2, 1]);
        assert_eq!(l.width, 2.0 * 5.0 + 3.0 * 100.0 + 2.0 * 50.0);
        assert!(overlaps(&l).is_empty());
    }

    #[test]
    fn a_long_edge_bends_through_each_column_it_crosses() {
        let l = layout(3, &[(0, 1), (1, 2), (0, 2)], &SIZES);
        let (_, long) = l.edges.iter().find(|(i, _)| *i == 2).unwrap();
        assert_eq!(long.len(), 4, "{long:?}");
        assert_eq!(long[0].x, 5.0 + 100.0);
        assert_eq!(long[3].x, 5.0 + 300.0);
        assert_eq!(long[1].y, long[2].y, "straight across the middle column");
    }

    #[test]
    fn crossings_are_removed_where_an_order_without_them_exists() {
        // Two chains declared crosswise: a0 -> b1, a1 -> b0 (b0 declared first).
        // 0, 1 in column 0; 2, 3 in column 1 with 0 -> 3 and 1 -> 2.
        let l = layout(4, &[(0, 3), (1, 2)], &SIZES);
        assert_eq!(l.crossings, 0);
        // A wider one: K(2,2) plus chains that start crossed.
        let edges = [
            (0, 5),
            (1, 4),
            (2, 3),
            (3, 6),
            (4, 7),
            (5, 8),
            (6, 9),
            (8, 9),
        ];
        let l = layout(10, &edges, &SIZES);
        assert_eq!(l.crossings, 0, "{l:?}");
        assert!(overlaps(&l).is_empty());
    }

    #[test]
    fn unavoidable_crossings_are_counted() {
        // K(3,3) needs 3 crossings in any two-column drawing.
        let mut edges = Vec::new();
        for a in 0..3 {
            for b in 3..6 {
                edges.push((a, b));
            }
        }
        assert_eq!(layout(6, &edges, &SIZES).crossings, 3 * 3);
        // (K(3,3) has C(3,2) * C(3,2) = 9 crossing pairs in a two-layer drawing.)
    }

    #[test]
    fn nodes_sit_beside_their_neighbours() {
        // A chain is a straight line.
        let l = layout(3, &[(0, 1), (1, 2)], &SIZES);
        assert_eq!(l.nodes[0].y, l.nodes[1].y);
        assert_eq!(l.nodes[1].y, l.nodes[2].y);
        // A fan-in's target sits between its sources.
        let l = layout(3, &[(0, 2), (1, 2)], &SIZES);
        let middle = f64::midpoint(l.nodes[0].y, l.nodes[1].y);
        assert!((l.nodes[2].y - middle).abs() < 1e-6, "{l:?}");
    }

    #[test]
    fn bad_edges_and_cycles_never_panic() {
        let l = layout(3, &[(0, 7), (1, 1), (0, 1), (1, 2), (2, 0)], &SIZES);
        assert_eq!(l.nodes.len(), 3);
        assert!(l.edges.iter().all(|(i, _)| *i != 0 && *i != 1));
        let empty = layout(0, &[], &SIZES);
        assert!(empty.nodes.is_empty() && empty.width > 0.0 && empty.height > 0.0);
    }

    #[test]
    fn a_wide_fan_stays_fast_and_apart() {
        let n = 2_000;
        let mut edges: Vec<(usize, usize)> = (1..n - 1).map(|i| (0, i)).collect();
        edges.extend((1..n - 1).map(|i| (i, n - 1)));
        let l = layout(n, &edges, &SIZES);
        assert_eq!(l.crossings, 0);
        let mut ys: Vec<f64> = (1..n - 1).map(|i| l.nodes[i].y).collect();
        ys.sort_by(f64::total_cmp);
        assert!(ys.windows(2).all(|w| w[1] - w[0] >= 50.0 - 1e-6));
    }
}
