//! Reading a Messages reply, whole or streamed: its text, the JSON of an
//! `output: json` tool call, the sources its text cites (`web_search_result_location`
//! citations, and the pages `web_fetch` read), its usage (cache writes split by
//! time to live, server-tool requests) and why it stopped. A streamed reply's
//! blocks are told apart by index, so a server tool's `input_json_delta` never
//! mixes with the JSON reply's, and the live view hears when a tool starts.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::super::http::SseEvent;
use super::super::wire::{StreamFault, StreamParser};
use super::super::{Reply, Reported, Request};
use super::{event_json, stream_error, tool_schema};
use crate::prompt_cache::Ttl;
use crate::tools::{Citation, ToolName, add_citation};
use crate::usage::Usage;

/// Whether `request` asked for Anthropic's 1-hour cache.
fn one_hour(request: &Request) -> bool {
    request.cache.is_some_and(|p| p.ttl == Ttl::OneHour)
}

/// Takes the counts a usage object holds into `usage`, and says which it held.
/// Cache writes are split by time to live when the reply says; when it does not,
/// a request that asked for the 1-hour cache has its writes counted as 1-hour
/// ones (the dearer), so the bill is never under what was charged.
pub(super) fn read_usage(u: &Json, usage: &mut Usage, one_hour: bool) -> Reported {
    let field = |name: &str| u.get(name).and_then(Json::as_u64);
    let mut reported = Reported::default();
    if let Some(n) = field("input_tokens") {
        usage.input = n;
        reported.input = true;
    }
    if let Some(n) = field("output_tokens") {
        usage.output = n;
        reported.output = true;
    }
    if let Some(n) = field("cache_read_input_tokens") {
        usage.cache_read = n;
    }
    let split = u.get("cache_creation").filter(|c| c.is_object());
    match (field("cache_creation_input_tokens"), split) {
        (total, Some(split)) => {
            let n = |name: &str| split.get(name).and_then(Json::as_u64).unwrap_or(0);
            let (five, hour) = (
                n("ephemeral_5m_input_tokens"),
                n("ephemeral_1h_input_tokens"),
            );
            usage.cache_write_1h = hour;
            // Whatever of the total the split leaves out, at the rate asked for.
            let rest = total.unwrap_or(0).saturating_sub(five.saturating_add(hour));
            if one_hour {
                usage.cache_write = five;
                usage.cache_write_1h = hour.saturating_add(rest);
            } else {
                usage.cache_write = five.saturating_add(rest);
            }
        }
        (Some(total), None) if one_hour => {
            usage.cache_write = 0;
            usage.cache_write_1h = total;
        }
        (Some(total), None) => usage.cache_write = total,
        (None, None) => {}
    }
    if let Some(tools) = u.get("server_tool_use").filter(|t| t.is_object()) {
        let n = |name: &str| tools.get(name).and_then(Json::as_u64).unwrap_or(0);
        usage.web_search = n("web_search_requests");
        usage.web_fetch = n("web_fetch_requests");
    }
    reported
}

/// A reply's content, put together block by block.
#[derive(Debug, Default)]
pub(super) struct Blocks {
    text: String,
    /// The input of the `output: json` tool call, whole, or streamed as text.
    tool_input: Option<Json>,
    tool_json: String,
    citations: Vec<Citation>,
    /// Pages `web_fetch` read: title and address.
    fetched: Vec<(String, String)>,
    /// Quotes from fetched documents, by the document's title, until the end.
    document_quotes: Vec<(String, String)>,
    /// Server tool calls seen, in case the usage does not count them.
    searches: u64,
    fetches: u64,
}

fn text_of<'a>(value: &'a Json, key: &str) -> &'a str {
    value.get(key).and_then(Json::as_str).unwrap_or_default()
}

impl Blocks {
    /// A whole content block: from a whole reply, or a stream's `content_block_start`.
    fn block(&mut self, block: &Json) {
        match block.get("type").and_then(Json::as_str) {
            Some("text") => {
                self.text.push_str(text_of(block, "text"));
                for citation in block
                    .get("citations")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                {
                    self.citation(citation);
                }
            }
            Some("tool_use") => {
                if let Some(input) = block
                    .get("input")
                    .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                {
                    self.tool_input = Some(input.clone());
                }
            }
            Some("server_tool_use") => match ToolName::from_name(text_of(block, "name")) {
                Some(ToolName::WebSearch) => self.searches += 1,
                Some(ToolName::WebFetch) => self.fetches += 1,
                None => {}
            },
            Some("web_fetch_tool_result") => {
                let content = block.get("content").unwrap_or(&Json::Null);
                if content.get("type").and_then(Json::as_str) == Some("web_fetch_result") {
                    let url = text_of(content, "url").to_string();
                    let title = content
                        .pointer("/content/title")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_string();
                    add_citation(
                        &mut self.citations,
                        Citation {
                            url: url.clone(),
                            title: title.clone(),
                            quoted: String::new(),
                        },
                    );
                    self.fetched.push((title, url));
                }
            }
            _ => {}
        }
    }

    /// One citation of the reply's text.
    fn citation(&mut self, citation: &Json) {
        match citation.get("type").and_then(Json::as_str) {
            Some("web_search_result_location") => add_citation(
                &mut self.citations,
                Citation {
                    url: text_of(citation, "url").to_string(),
                    title: text_of(citation, "title").to_string(),
                    quoted: text_of(citation, "cited_text").to_string(),
                },
            ),
            // A passage of a fetched page: matched to its page by title at the end.
            Some("char_location" | "page_location" | "content_block_location") => {
                self.document_quotes.push((
                    text_of(citation, "document_title").to_string(),
                    text_of(citation, "cited_text").to_string(),
                ));
            }
            _ => {}
        }
    }

    /// The reply, with `usage` as reported (`reported`) and the request it answers.
    fn finish(
        mut self,
        request: &Request,
        mut usage: Usage,
        reported: Reported,
        stop_reason: Option<String>,
    ) -> Reply {
        for (title, quoted) in std::mem::take(&mut self.document_quotes) {
            if let Some((_, url)) = self.fetched.iter().find(|(t, _)| *t == title) {
                add_citation(
                    &mut self.citations,
                    Citation {
                        url: url.clone(),
                        title,
                        quoted,
                    },
                );
            }
        }
        // A reply whose usage leaves server tools out: count the calls seen.
        usage.web_search = usage.web_search.max(self.searches);
        usage.web_fetch = usage.web_fetch.max(self.fetches);
        let mut tool_input = self.tool_input.take();
        if tool_input.is_none() && !self.tool_json.is_empty() {
            match serde_json::from_str(&self.tool_json) {
                Ok(input) => tool_input = Some(input),
                // Left as text, so the JSON check reports it and asks again.
                Err(_) => self.text = std::mem::take(&mut self.tool_json),
            }
        }
        let json = tool_input.map(|input| {
            let (_, wrapped) = tool_schema(request.schema.as_ref());
            if wrapped {
                input.get("value").cloned().unwrap_or(Json::Null)
            } else {
                input
            }
        });
        let text = json.as_ref().map_or(self.text, Json::to_string);
        Reply {
            text,
            json,
            usage,
            reported,
            stop_reason,
            citations: self.citations,
        }
    }
}

/// Reads a whole (non-streamed) reply.
pub(super) fn parse(request: &Request, body: &str) -> Result<Reply, String> {
    let message: Json =
        serde_json::from_str(body).map_err(|e| format!("the reply is not valid JSON: {e}"))?;
    if let Some(error) = super::super::wire::error_in_reply(&message) {
        return Err(error);
    }
    let content = message
        .get("content")
        .and_then(Json::as_array)
        .ok_or("the reply has no `content`")?;
    let mut blocks = Blocks::default();
    for block in content {
        blocks.block(block);
    }
    let (mut usage, mut reported) = (Usage::default(), Reported::default());
    if let Some(u) = message.get("usage") {
        reported = read_usage(u, &mut usage, one_hour(request));
    }
    let stop_reason = message
        .get("stop_reason")
        .and_then(Json::as_str)
        .map(str::to_string);
    Ok(blocks.finish(request, usage, reported, stop_reason))
}

/// What a streamed block is, by its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    /// The `output: json` tool call.
    Output,
    Other,
}

/// A streamed reply being put together.
pub(super) struct Stream {
    request: Request,
    blocks: Blocks,
    kinds: HashMap<u64, Kind>,
    usage: Usage,
    reported: Reported,
    stop_reason: Option<String>,
}

impl Stream {
    pub(super) fn new(request: &Request) -> Self {
        Stream {
            request: request.clone(),
            blocks: Blocks::default(),
            kinds: HashMap::new(),
            usage: Usage::default(),
            reported: Reported::default(),
            stop_reason: None,
        }
    }

    fn block_start(&mut self, data: &Json) {
        let index = data.get("index").and_then(Json::as_u64).unwrap_or(u64::MAX);
        let Some(block) = data.get("content_block") else {
            return;
        };
        let kind = match block.get("type").and_then(Json::as_str) {
            Some("text") => Kind::Text,
            Some("tool_use") => Kind::Output,
            Some("server_tool_use") => {
                if let Some(tool) = ToolName::from_name(text_of(block, "name")) {
                    self.request.progress.tool(tool);
                }
                Kind::Other
            }
            _ => Kind::Other,
        };
        self.kinds.insert(index, kind);
        // A tool result arrives whole here; a text block may start with text.
        self.blocks.block(block);
    }

    fn block_delta(&mut self, data: &Json) {
        let index = data.get("index").and_then(Json::as_u64).unwrap_or(u64::MAX);
        // A delta for a block never started: as Anthropic's older streams, take it as text.
        let kind = self.kinds.get(&index).copied().unwrap_or(Kind::Text);
        let delta = data.get("delta").unwrap_or(&Json::Null);
        match delta.get("type").and_then(Json::as_str) {
            Some("text_delta") => self.blocks.text.push_str(text_of(delta, "text")),
            Some("input_json_delta")
                if kind == Kind::Output || !self.kinds.contains_key(&index) =>
            {
                self.blocks
                    .tool_json
                    .push_str(text_of(delta, "partial_json"));
            }
            Some("citations_delta") => {
                if let Some(citation) = delta.get("citation") {
                    self.blocks.citation(citation);
                }
            }
            _ => {}
        }
    }
}

impl StreamParser for Stream {
    fn event(&mut self, event: &SseEvent) -> Result<bool, StreamFault> {
        let Some(data) = event_json(event)? else {
            return Ok(false);
        };
        let kind = data
            .get("type")
            .and_then(Json::as_str)
            .unwrap_or(event.name.as_str());
        let one_hour = one_hour(&self.request);
        match kind {
            "message_start" => {
                if let Some(u) = data.pointer("/message/usage") {
                    // Its `output_tokens` is a placeholder (1): only the input counts here.
                    let reported = read_usage(u, &mut self.usage, one_hour);
                    self.reported.input |= reported.input;
                }
            }
            "content_block_start" => self.block_start(&data),
            "content_block_delta" => self.block_delta(&data),
            "message_delta" => {
                if let Some(u) = data.get("usage") {
                    let reported = read_usage(u, &mut self.usage, one_hour);
                    self.reported.input |= reported.input;
                    self.reported.output |= reported.output;
                }
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Json::as_str) {
                    self.stop_reason = Some(reason.to_string());
                }
            }
            "message_stop" => return Ok(true),
            "error" => return Err(stream_error(&data)),
            // Unknown event types are ignored, as Anthropic's versioning policy asks.
            _ => {}
        }
        Ok(false)
    }

    fn received(&self) -> usize {
        self.blocks.text.len() + self.blocks.tool_json.len()
    }

    fn reply(&mut self) -> Reply {
        std::mem::take(&mut self.blocks).finish(
            &self.request,
            self.usage,
            self.reported,
            self.stop_reason.take(),
        )
    }
}
