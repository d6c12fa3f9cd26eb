//! The squad as an SVG drawing: each agent a box (coloured by how it ended, with
//! its model, seconds and dollars), a map agent as a stack of boxes, data edges
//! solid and `needs:` edges dashed, laid out by [`super::layout`]. The drawing
//! carries its colours as attributes, not CSS, so `graph --format svg` prints it
//! alone and the report embeds the same markup.

use maud::{Markup, html};

use super::layout::{self, Sizes};
use super::{Status, px};
use crate::dag::EdgeKind;

/// One agent as drawn.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    /// `provider/model`, or what answered when a fallback did.
    pub model: String,
    pub status: Status,
    /// `12.3 s · $0.0123`, or nothing for a drawing of the workflow alone.
    pub facts: Option<String>,
    /// A map agent (`for_each`): drawn as a stack.
    pub stack: bool,
    /// A fragment the box links to (the agent's details in the report).
    pub link: Option<String>,
    /// The tooltip: everything the box has no room for.
    pub title: String,
}

/// An edge `from -> to` (indices into the nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edge {
    pub from: usize,
    pub to: usize,
    pub kind: EdgeKind,
}

const SIZES: Sizes = Sizes {
    node_width: 210.0,
    node_height: 62.0,
    column_gap: 70.0,
    node_gap: 18.0,
    margin: 16.0,
};

/// Characters of a name or model that fit on a box's line.
const LINE_CHARS: usize = 28;
/// How far each card of a stack sits behind the one in front.
const STACK_OFFSET: f64 = 5.0;

/// The drawing, as an `<svg>` element.
pub fn svg(nodes: &[Node], edges: &[Edge]) -> Markup {
    let pairs: Vec<(usize, usize)> = edges.iter().map(|e| (e.from, e.to)).collect();
    let layout = layout::layout(nodes.len(), &pairs, &SIZES);
    // Room for the cards of a stack behind the last box.
    let (width, height) = (
        px(layout.width + 2.0 * STACK_OFFSET),
        px(layout.height + 2.0 * STACK_OFFSET),
    );
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="squad" role="img"
            width=(width) height=(height) viewBox={ "0 0 " (width) " " (height) }
            font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12" {
            title { "The squad: " (nodes.len()) " agents, " (edges.len()) " edges" }
            defs {
                marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"
                    markerHeight="7" orient="auto-start-reverse" {
                    path d="M0,0 L10,5 L0,10 z" fill="#5f6368" {}
                }
            }
            g class="edges" fill="none" stroke="#5f6368" stroke-width="1.4" {
                @for (index, points) in &layout.edges {
                    @let kind = edges[*index].kind;
                    path class={ "edge " (kind_name(kind)) } d=(path(points))
                        stroke-dasharray=[(kind == EdgeKind::Order).then_some("5 4")]
                        marker-end="url(#arrow)" {}
                }
            }
            @for (node, at) in nodes.iter().zip(&layout.nodes) {
                (box_of(node, at.x, at.y))
            }
        }
    }
}

fn kind_name(kind: EdgeKind) -> &'static str {
    match kind {
        EdgeKind::Data => "data",
        EdgeKind::Order => "order",
    }
}

/// One agent's box at `(x, y)`, its top-left corner.
fn box_of(node: &Node, x: f64, y: f64) -> Markup {
    let (fill, stroke) = node.status.colours();
    let (w, h) = (SIZES.node_width, SIZES.node_height);
    let body = html! {
        title { (node.title) }
        @if node.stack {
            @for depth in [2.0, 1.0] {
                rect x=(px(x + depth * STACK_OFFSET)) y=(px(y + depth * STACK_OFFSET))
                    width=(w) height=(h) rx="6" fill=(fill) stroke=(stroke) {}
            }
        }
        rect x=(px(x)) y=(px(y)) width=(w) height=(h) rx="6" fill=(fill) stroke=(stroke)
            stroke-width=(if node.status == Status::Failed { "2.5" } else { "1.5" }) {}
        text x=(px(x + 10.0)) y=(px(y + 18.0)) font-weight="600" fill="#202124" {
            (clip(&node.name))
        }
        text x=(px(x + 10.0)) y=(px(y + 35.0)) fill="#3c4043" { (clip(&node.model)) }
        text x=(px(x + 10.0)) y=(px(y + 52.0)) fill="#3c4043" {
            (node.facts.as_deref().unwrap_or(node.status.label()))
        }
    };
    html! {
        g class="node" data-agent=(node.name) data-status=(node.status.label()) {
            @if let Some(link) = &node.link {
                a href={ "#" (link) } { (body) }
            } @else {
                (body)
            }
        }
    }
}

/// An edge's path: a smooth curve between columns, straight across each column
/// it passes through.
fn path(points: &[layout::Point]) -> String {
    let mut d = String::new();
    for (i, p) in points.iter().enumerate() {
        if i == 0 {
            d.push_str(&format!("M{},{}", px(p.x), px(p.y)));
            continue;
        }
        let from = points[i - 1];
        if i % 2 == 1 {
            // Between columns: a curve leaving and arriving horizontally.
            let mid = f64::midpoint(from.x, p.x);
            d.push_str(&format!(
                " C{},{} {},{} {},{}",
                px(mid),
                px(from.y),
                px(mid),
                px(p.y),
                px(p.x),
                px(p.y)
            ));
        } else {
            d.push_str(&format!(" L{},{}", px(p.x), px(p.y)));
        }
    }
    d
}

/// A line of a box: cut with `…` past what fits (the tooltip has it whole).
fn clip(text: &str) -> String {
    if text.chars().count() <= LINE_CHARS {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(LINE_CHARS - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, status: Status) -> Node {
        Node {
            name: name.into(),
            model: "openai/gpt-4o".into(),
            status,
            facts: None,
            stack: false,
            link: None,
            title: name.into(),
        }
    }

    #[test]
    fn one_node_per_agent_and_dashed_order_edges() {
        let nodes = [
            node("researcher", Status::Succeeded),
            node("writer", Status::Failed),
            node("editor", Status::Skipped),
        ];
        let edges = [
            Edge {
                from: 0,
                to: 1,
                kind: EdgeKind::Data,
            },
            Edge {
                from: 1,
                to: 2,
                kind: EdgeKind::Order,
            },
        ];
        let svg = svg(&nodes, &edges).into_string();
        assert_eq!(svg.matches("<g class=\"node\"").count(), 3, "{svg}");
        assert_eq!(svg.matches("class=\"edge data\"").count(), 1);
        assert_eq!(svg.matches("stroke-dasharray=\"5 4\"").count(), 1);
        assert!(svg.contains("data-status=\"failed\""));
    }

    #[test]
    fn a_map_agent_is_a_stack_and_names_are_escaped() {
        let mut n = node("<b>&\"x\"</b>", Status::Succeeded);
        n.stack = true;
        let svg = svg(&[n], &[]).into_string();
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(!svg.contains("<b>"), "{svg}");
        assert!(
            svg.contains("&lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;"),
            "{svg}"
        );
    }

    #[test]
    fn long_lines_are_cut() {
        assert_eq!(clip("short"), "short");
        let long = "a".repeat(40);
        assert_eq!(clip(&long).chars().count(), LINE_CHARS);
        assert!(clip(&long).ends_with('…'));
    }
}
