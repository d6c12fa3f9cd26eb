//! When to try a call again, and how long to wait first (SPEC §5).
//!
//! Retried: 408, 409, 429, every 5xx (Anthropic's 529 included), dropped
//! connections, time-outs, and replies cut short or malformed. Never retried: 400,
//! 401, 403, 404 and the other 4xx, nor a 429 that needs the user to act (OpenAI's
//! `insufficient_quota`, Gemini's per-day quota). The wait is exponential with full
//! jitter, unless the provider says how long: `retry-after-ms`, `retry-after`
//! (seconds or an HTTP date), OpenAI's `x-ratelimit-reset-*` durations, Anthropic's
//! `anthropic-ratelimit-*-reset` timestamps, or Gemini's `RetryInfo.retryDelay`.

use std::time::{Duration, SystemTime};

use super::http::Headers;

/// How many times to retry and how long to wait.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub retries: u32,
    pub base: Duration,
    pub cap: Duration,
    /// The longest wait a provider may ask for before we give up instead.
    pub max_retry_after: Duration,
    /// Multiplies every wait; 0 in tests (`BYOK_FLOW_BACKOFF_SCALE`), so the retry
    /// count and order are still exercised without the waiting.
    pub scale: f64,
}

impl Policy {
    /// The default policy with `retries` retries.
    pub fn new(retries: u32) -> Self {
        let scale = std::env::var("BYOK_FLOW_BACKOFF_SCALE")
            .ok()
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .unwrap_or(1.0);
        Policy {
            retries,
            base: Duration::from_millis(500),
            cap: Duration::from_secs(30),
            max_retry_after: Duration::from_mins(2),
            scale,
        }
    }

    /// The wait before retry number `attempt` (0 for the first retry), honouring a hint.
    pub fn delay(&self, attempt: u32, hint: Option<Duration>) -> Duration {
        if let Some(hint) = hint {
            return hint;
        }
        let ceiling = self
            .base
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.cap);
        ceiling.mul_f64(rand::random::<f64>())
    }

    /// How long to actually sleep for a planned delay.
    pub fn sleep_for(&self, planned: Duration) -> Duration {
        planned.mul_f64(self.scale)
    }
}

/// Whether an HTTP status is worth another try.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 409 | 429) || status >= 500
}

/// The wait a response asks for, if it says.
pub fn hint(headers: &Headers, body: &str) -> Option<Duration> {
    if let Some(ms) = headers
        .get("retry-after-ms")
        .and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(seconds(ms / 1000.0));
    }
    if let Some(value) = headers.get("retry-after") {
        let value = value.trim();
        if let Ok(secs) = value.parse::<f64>()
            && secs.is_finite()
            && secs >= 0.0
        {
            return Some(seconds(secs));
        }
        if let Ok(when) = httpdate::parse_http_date(value) {
            return Some(when.duration_since(SystemTime::now()).unwrap_or_default());
        }
    }
    let mut resets: Vec<Duration> = Vec::new();
    for (name, value) in headers.with_prefix("x-ratelimit-reset-") {
        if name.ends_with("requests") || name.ends_with("tokens") {
            resets.extend(go_duration(value));
        }
    }
    for (name, value) in headers.with_prefix("anthropic-ratelimit-") {
        if let Some(prefix) = name.strip_suffix("-reset") {
            let remaining = headers
                .get(&format!("{prefix}-remaining"))
                .and_then(|r| r.parse::<u64>().ok());
            if remaining == Some(0)
                && let Ok(when) = humantime::parse_rfc3339_weak(value.trim().trim_end_matches('Z'))
            {
                resets.push(when.duration_since(SystemTime::now()).unwrap_or_default());
            }
        }
    }
    if let Some(longest) = resets.into_iter().max() {
        return Some(longest);
    }
    gemini_retry_delay(body)
}

/// Gemini's `RetryInfo.retryDelay` (`"34s"`) from an error body.
fn gemini_retry_delay(body: &str) -> Option<Duration> {
    let json: serde_json::Value = serde_json::from_str(body).ok()?;
    let details = json.pointer("/error/details")?.as_array()?;
    details.iter().find_map(|d| {
        d.get("retryDelay")
            .and_then(|v| v.as_str())
            .and_then(go_duration)
    })
}

/// Go-style durations as OpenAI and Google write them: `1s`, `6m0s`, `12ms`, `1.5s`.
pub fn go_duration(text: &str) -> Option<Duration> {
    let mut total = 0.0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let split = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
        let (number, tail) = rest.split_at(split);
        let value: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let factor = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            "us" | "µs" => 0.000_001,
            "ns" => 0.000_000_001,
            _ => return None,
        };
        total += value * factor;
        rest = tail;
    }
    total.is_finite().then(|| seconds(total))
}

/// A wait of `secs` (finite, not negative) seconds. One too long for a `Duration`
/// (`retry-after: 99999999999999999999999`) is the longest there is, which the
/// call loop treats as any wait over `max_retry_after`: it gives up and says so.
/// `Duration::from_secs_f64` would panic on it.
fn seconds(secs: f64) -> Duration {
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(pairs)
    }

    #[test]
    fn statuses() {
        for s in [408, 409, 429, 500, 502, 503, 529] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn hints() {
        assert_eq!(
            hint(&headers(&[("retry-after", "2")]), ""),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            hint(&headers(&[("retry-after-ms", "1500")]), ""),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            hint(
                &headers(&[
                    ("x-ratelimit-reset-requests", "1s"),
                    ("x-ratelimit-reset-tokens", "6m0s")
                ]),
                ""
            ),
            Some(Duration::from_mins(6))
        );
        let body = r#"{"error":{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"34s"}]}}"#;
        assert_eq!(hint(&headers(&[]), body), Some(Duration::from_secs(34)));
        assert_eq!(hint(&headers(&[]), "{}"), None);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("12ms"), Some(Duration::from_millis(12)));
        assert_eq!(go_duration("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(go_duration("soon"), None);
    }

    /// Found by `cargo fuzz run replies`: a wait longer than a `Duration` can hold
    /// panicked in `Duration::from_secs_f64`.
    #[test]
    fn waits_too_long_for_a_duration_are_the_longest_wait() {
        let huge = "4444444444444444444500";
        assert_eq!(
            hint(&headers(&[("retry-after", huge)]), ""),
            Some(Duration::MAX)
        );
        assert_eq!(
            hint(&headers(&[("retry-after-ms", &format!("{huge}000"))]), ""),
            Some(Duration::MAX)
        );
        assert_eq!(go_duration(&format!("{huge}h")), Some(Duration::MAX));
        let body = format!(r#"{{"error":{{"details":[{{"retryDelay":"{huge}s"}}]}}}}"#);
        assert_eq!(hint(&headers(&[]), &body), Some(Duration::MAX));
    }

    #[test]
    fn backoff_grows_with_full_jitter_and_respects_hints() {
        let p = Policy {
            retries: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(1),
            max_retry_after: Duration::from_mins(2),
            scale: 1.0,
        };
        for attempt in 0..8 {
            let ceiling =
                Duration::from_millis(100 * 2u64.pow(attempt)).min(Duration::from_secs(1));
            assert!(p.delay(attempt, None) <= ceiling);
        }
        assert_eq!(
            p.delay(3, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
    }
}
