//! The run's redactor: every secret this process has read (each API key, from a
//! key file or an `env:` variable, and a proxy's password), and the one function
//! that takes them out of any text before it is kept or shown.
//!
//! Every byte a server sends back is untrusted and may quote the key: a 401 that
//! echoes it, a proxy's error page, a model asked to repeat its headers. So the
//! text is searched not only for the key itself but for the forms it takes on the
//! way: JSON-escaped (`\/`, `\u002f`), URL-encoded (`%2F` or `%2f`, any mix),
//! HTML entities (`&#x2F;`, `&amp;`), and base64 (standard or URL-safe; inside a larger
//! blob, such as a `Basic` header, the key starts at one of three alignments, so
//! the part of the encoding that depends on the key alone is looked for at each),
//! and any run of [`PIECE_LEN`] of its characters in the clear (an echo a server
//! cut short). A match becomes `[redacted key NAME]`.
//!
//! [`text`] and [`in_place`] use the process-wide set that [`register`] fills: the
//! provider client calls them on everything a server sends, and the outputs call
//! them again as a last guard (the event bus, the log writer, the cache, the
//! final error). [`Redactor`] is the same thing as a value, for tests.

use std::borrow::Cow;
use std::sync::{PoisonError, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use secrecy::ExposeSecret;
use secrecy::zeroize::Zeroizing;

use super::secret::ApiKey;

/// Secrets shorter than this are not redacted: a few characters are a
/// placeholder (a local server's `key: env:` that takes anything), not a secret,
/// and replacing them everywhere would garble every output.
pub const MIN_SECRET_LEN: usize = 8;

/// A run of this many characters of a secret, in the clear, is redacted too: a
/// server or a gateway that cuts its text (an echo cut at 40 characters, a quote
/// that starts inside a key) leaves a piece that is as good as secret. Shorter
/// runs are left: they may be a provider's common prefix (`sk-ant-api03-`) or a
/// masked echo (OpenAI's `sk-proj-abcd****wxyz`), which say nothing of the key.
pub const PIECE_LEN: usize = 16;

/// One secret and the forms it is looked for in.
struct Secret {
    marker: String,
    /// The secret's bytes (ASCII: keys with anything else are refused when read).
    raw: Zeroizing<Vec<u8>>,
    /// The parts of its base64 encodings that depend on the secret alone.
    base64: Vec<Zeroizing<Vec<u8>>>,
    /// Which rolling hashes its [`PIECE_LEN`]-byte runs have, a bit each (see
    /// [`Pieces`]); `None` for a secret shorter than that.
    pieces: Option<Pieces>,
}

/// A set of secrets to take out of text.
#[derive(Default)]
pub struct Redactor {
    /// Longest first, so a secret that contains another is replaced whole.
    secrets: Vec<Secret>,
}

impl Redactor {
    pub const fn new() -> Self {
        Redactor {
            secrets: Vec::new(),
        }
    }

    /// Adds a secret, shown as `[redacted key NAME]` wherever it is found.
    /// Secrets shorter than [`MIN_SECRET_LEN`] and repeats are ignored.
    pub fn add(&mut self, name: &str, secret: &str) {
        let raw = secret.as_bytes();
        if raw.len() < MIN_SECRET_LEN || self.secrets.iter().any(|s| s.raw.as_slice() == raw) {
            return;
        }
        let secret = Secret {
            marker: format!("[redacted key {name}]"),
            raw: Zeroizing::new(raw.to_vec()),
            base64: base64_cores(raw),
            pieces: Pieces::of(raw),
        };
        let at = self
            .secrets
            .partition_point(|s| s.raw.len() >= secret.raw.len());
        self.secrets.insert(at, secret);
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The part `range` (byte offsets) of `text`, with every secret that occurs in
    /// the whole of `text` and overlaps the part replaced by its marker: a quote
    /// cut out of a longer text (a citation's span of a reply) may hold only a
    /// piece of a key, which the part alone would not show to be one.
    pub fn redact_part(&self, text: &str, range: std::ops::Range<usize>) -> String {
        let mut hits: Vec<(usize, usize, &str)> = Vec::new();
        for secret in &self.secrets {
            for (start, end) in secret.find(text) {
                if start < range.end && end > range.start {
                    hits.push((start.max(range.start), end.min(range.end), &secret.marker));
                }
            }
        }
        hits.sort_unstable_by_key(|h| h.0);
        let mut out = String::with_capacity(range.len());
        let mut copied = range.start;
        for (start, end, marker) in hits {
            if end <= copied {
                continue;
            }
            out.push_str(&text[copied..start.max(copied)]);
            out.push_str(marker);
            copied = end;
        }
        out.push_str(&text[copied..range.end]);
        out
    }

    /// `text` with every secret, in any of its forms, replaced by its marker.
    /// Borrowed when there was nothing to replace.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for secret in &self.secrets {
            if let Some(replaced) = secret.replace(&out) {
                out = Cow::Owned(replaced);
            }
        }
        out
    }
}

impl Secret {
    /// The text with this secret replaced, or `None` if it does not occur.
    fn replace(&self, text: &str) -> Option<String> {
        let found = self.find(text);
        if found.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut copied = 0;
        for (start, end) in found {
            out.push_str(&text[copied..start]);
            out.push_str(&self.marker);
            copied = end;
        }
        out.push_str(&text[copied..]);
        Some(out)
    }

    /// Where this secret occurs in `text`, in any of its forms: byte ranges, in
    /// order, overlapping ones merged.
    fn find(&self, text: &str) -> Vec<(usize, usize)> {
        let bytes = text.as_bytes();
        let mut found: Vec<(usize, usize)> = Vec::new();
        // The plain and escaped forms: every escape starts with `%`, `\` or `&`,
        // so only those bytes and the secret's first byte can start a match.
        let first = self.raw[0];
        let mut at = 0;
        while at < bytes.len() {
            let b = bytes[at];
            if b != first && b != b'%' && b != b'\\' && b != b'&' {
                at += 1;
                continue;
            }
            match match_encoded(bytes, at, &self.raw, 0) {
                Some(end) => {
                    found.push((at, end));
                    at = end;
                }
                None => at += 1,
            }
        }
        for core in &self.base64 {
            for start in memchr::memmem::find_iter(bytes, core.as_slice()) {
                found.push((start, start + core.len()));
            }
        }
        if let Some(pieces) = &self.pieces {
            pieces.find(bytes, &self.raw, &mut found);
        }
        found.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(found.len());
        for (start, end) in found {
            match merged.last_mut() {
                // Overlaps a match already found: extend it.
                Some(last) if start < last.1 => last.1 = last.1.max(end),
                _ => merged.push((start, end)),
            }
        }
        merged
    }
}

/// The [`PIECE_LEN`]-byte runs of a secret, as a filter of their rolling hashes:
/// one pass over a text finds every run of the secret it holds, and only a
/// window whose hash is in the filter is compared with the secret.
struct Pieces {
    bits: Zeroizing<Vec<u64>>,
}

/// The rolling hash's base, and the filter's size in bits (a power of two).
const PIECE_BASE: u64 = 0x100_0000_01b3;
const PIECE_BITS: usize = 1 << 16;

impl Pieces {
    fn of(raw: &[u8]) -> Option<Pieces> {
        if raw.len() < PIECE_LEN {
            return None;
        }
        let mut bits = Zeroizing::new(vec![0u64; PIECE_BITS / 64]);
        Self::windows(raw, |_, hash| {
            let bit = Self::bit(hash);
            bits[bit / 64] |= 1 << (bit % 64);
        });
        Some(Pieces { bits })
    }

    fn bit(hash: u64) -> usize {
        // The high bits mix every byte of the window.
        usize::try_from(hash >> 48).unwrap_or(0) % PIECE_BITS
    }

    /// Calls `each(start, hash)` for every [`PIECE_LEN`]-byte window of `bytes`.
    fn windows(bytes: &[u8], mut each: impl FnMut(usize, u64)) {
        if bytes.len() < PIECE_LEN {
            return;
        }
        let outgoing = PIECE_BASE.wrapping_pow(u32::try_from(PIECE_LEN).unwrap_or(0));
        let mut hash = 0u64;
        for (i, &b) in bytes.iter().enumerate() {
            hash = hash.wrapping_mul(PIECE_BASE).wrapping_add(u64::from(b) + 1);
            if i >= PIECE_LEN {
                hash =
                    hash.wrapping_sub(outgoing.wrapping_mul(u64::from(bytes[i - PIECE_LEN]) + 1));
            }
            if i + 1 >= PIECE_LEN {
                each(i + 1 - PIECE_LEN, hash.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            }
        }
    }

    /// Adds the byte ranges of `text` that are runs of `raw`.
    fn find(&self, text: &[u8], raw: &[u8], found: &mut Vec<(usize, usize)>) {
        Self::windows(text, |start, hash| {
            let bit = Self::bit(hash);
            if self.bits[bit / 64] & (1 << (bit % 64)) == 0 {
                return;
            }
            let window = &text[start..start + PIECE_LEN];
            if memchr::memmem::find(raw, window).is_some() {
                match found.last_mut() {
                    // The next window of a run already found: extend it.
                    Some(last) if last.1 >= start + PIECE_LEN - 1 && last.0 <= start => {
                        last.1 = start + PIECE_LEN;
                    }
                    _ => found.push((start, start + PIECE_LEN)),
                }
            }
        });
    }
}

/// Where the secret `want[i..]` ends if it is spelled at `text[at..]`, each
/// byte either as itself or escaped. Both readings of an escape-looking byte are
/// tried, since a secret may hold `%` or `\` itself.
fn match_encoded(text: &[u8], at: usize, want: &[u8], i: usize) -> Option<usize> {
    let Some(&byte) = want.get(i) else {
        return Some(at);
    };
    let here = text.get(at..)?;
    if let Some((decoded, len)) = escaped(here)
        && decoded == byte
        && let Some(end) = match_encoded(text, at + len, want, i + 1)
    {
        return Some(end);
    }
    if here.first() == Some(&byte) {
        return match_encoded(text, at + 1, want, i + 1);
    }
    None
}

/// The ASCII byte an escape at the start of `text` stands for, and its length:
/// `%2F`, `\/`, `\"`, `\u002F`, `\x2F`, `&#47;`, `&#x2F;` (hex in either case),
/// and the named entities `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;`.
fn escaped(text: &[u8]) -> Option<(u8, usize)> {
    let hex = |digits: &[u8]| -> Option<u32> {
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    };
    let ascii = |value: u32| u8::try_from(value).ok().filter(u8::is_ascii);
    match text {
        [b'%', rest @ ..] => Some((ascii(hex(rest.get(..2)?)?)?, 3)),
        [b'\\', b'u', rest @ ..] => Some((ascii(hex(rest.get(..4)?)?)?, 6)),
        [b'\\', b'x', rest @ ..] => Some((ascii(hex(rest.get(..2)?)?)?, 4)),
        [b'\\', c @ (b'"' | b'\\' | b'/' | b'\''), ..] => Some((*c, 2)),
        [b'&', rest @ ..] if rest.first() != Some(&b'#') => {
            // The named entities HTML escapers write (`&amp;`, `&lt;`, ...).
            const NAMED: [(&[u8], u8); 5] = [
                (b"amp;", b'&'),
                (b"lt;", b'<'),
                (b"gt;", b'>'),
                (b"quot;", b'"'),
                (b"apos;", b'\''),
            ];
            NAMED
                .iter()
                .find(|(name, _)| rest.starts_with(name))
                .map(|(name, byte)| (*byte, name.len() + 1))
        }
        [b'&', b'#', rest @ ..] => {
            let end = rest.iter().take(8).position(|&b| b == b';')?;
            let value = match &rest[..end] {
                [b'x' | b'X', digits @ ..] => hex(digits)?,
                digits if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) => {
                    std::str::from_utf8(digits).ok()?.parse().ok()?
                }
                _ => return None,
            };
            Some((ascii(value)?, end + 3))
        }
        _ => None,
    }
}

/// The base64 characters that depend on `raw` alone, for `raw` starting at each
/// of the three byte alignments of a larger encoded blob, in the standard and the
/// URL-safe alphabets.
fn base64_cores(raw: &[u8]) -> Vec<Zeroizing<Vec<u8>>> {
    let mut cores: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    for offset in 0..3usize {
        let mut padded = Zeroizing::new(vec![0u8; offset]);
        padded.extend_from_slice(raw);
        // Character c covers bits [6c, 6c + 6); the secret has bits
        // [8 * offset, 8 * (offset + len)).
        let first = (8 * offset).div_ceil(6);
        let last = 8 * (offset + raw.len()) / 6;
        for engine in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let encoded = Zeroizing::new(engine.encode(padded.as_slice()));
            let core = Zeroizing::new(encoded.as_bytes()[first..last].to_vec());
            if core.len() >= MIN_SECRET_LEN && !cores.contains(&core) {
                cores.push(core);
            }
        }
    }
    cores
}

static GLOBAL: RwLock<Redactor> = RwLock::new(Redactor::new());

/// Adds a key this process has read to the redactor, shown as `[redacted key NAME]`.
pub fn register(name: &str, key: &ApiKey) {
    register_text(name, key.expose_secret());
}

/// [`register`] for a secret that is not an API key (a proxy's password).
pub fn register_text(name: &str, secret: &str) {
    GLOBAL
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .add(name, secret);
}

/// Whether any secret has been read (when none has, there is nothing to redact).
pub fn active() -> bool {
    !GLOBAL
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .is_empty()
}

/// `text` with every secret this process has read taken out.
pub fn text(text: &str) -> Cow<'_, str> {
    let redactor = GLOBAL.read().unwrap_or_else(PoisonError::into_inner);
    match redactor.redact(text) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(clean) => Cow::Owned(clean),
    }
}

/// [`Redactor::redact_part`] with every secret this process has read.
pub fn part(text: &str, range: std::ops::Range<usize>) -> String {
    GLOBAL
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .redact_part(text, range)
}

/// Whether `text` holds a secret this process has read, in any form.
pub fn holds_secret(text: &str) -> bool {
    matches!(self::text(text), Cow::Owned(_))
}

/// Whether any string (or object key) in a JSON value holds a secret.
pub fn json_holds_secret(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => holds_secret(s),
        Value::Array(items) => items.iter().any(json_holds_secret),
        Value::Object(map) => map
            .iter()
            .any(|(k, v)| holds_secret(k) || json_holds_secret(v)),
        _ => false,
    }
}

/// Redacts `text` where it is; says whether anything was replaced.
pub fn in_place(text: &mut String) -> bool {
    if let Cow::Owned(clean) = self::text(text) {
        *text = clean;
        true
    } else {
        false
    }
}

/// Redacts every string (and object key) in a JSON value; says whether anything
/// was replaced.
pub fn json(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => in_place(s),
        Value::Array(items) => items.iter_mut().fold(false, |any, v| json(v) | any),
        Value::Object(map) => {
            let needs = map.keys().any(|k| matches!(self::text(k), Cow::Owned(_)));
            if needs {
                let old = std::mem::take(map);
                for (mut k, mut v) in old {
                    in_place(&mut k);
                    json(&mut v);
                    map.insert(k, v);
                }
                return true;
            }
            map.values_mut().fold(false, |any, v| json(v) | any)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk-ant-CANARY/b+c=d_7f3a";

    fn redactor() -> Redactor {
        let mut r = Redactor::new();
        r.add("anthropic", KEY);
        r
    }

    fn clean(text: &str) -> String {
        redactor().redact(text).into_owned()
    }

    #[test]
    fn the_key_itself_and_its_escaped_forms() {
        let marker = "[redacted key anthropic]";
        let json = serde_json::to_string(KEY).unwrap();
        let cases = [
            format!("Incorrect API key provided: {KEY}."),
            format!("{{\"message\": {json}}}"),
            // PHP's json_encode escapes `/`; some encoders escape everything.
            format!("key={}", KEY.replace('/', "\\/")),
            KEY.chars().fold(String::new(), |mut s, c| {
                s.push_str(&format!("\\u{:04x}", c as u32));
                s
            }),
            format!("x-api-key={}", "sk-ant-CANARY%2Fb%2Bc%3Dd_7f3a"),
            format!("k={}", "sk-ant-CANARY%2fb%2bc%3dd_7f3a"),
            KEY.chars().fold(String::new(), |mut s, c| {
                s.push_str(&format!("%{:02X}", c as u32));
                s
            }),
            format!(
                "<p>{}</p>",
                KEY.replace('/', "&#x2F;").replace('=', "&#61;")
            ),
        ];
        for case in cases {
            let out = clean(&case);
            assert!(out.contains(marker), "{case} -> {out}");
            assert!(!out.contains("CANARY"), "{case} -> {out}");
        }
        assert_eq!(
            clean(&format!("a {KEY} b {KEY}")),
            format!("a {marker} b {marker}")
        );
    }

    #[test]
    fn base64_at_every_alignment_and_in_both_alphabets() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE};
        for prefix in ["", "u", "us", "user:", "Bearer "] {
            for engine in [&STANDARD, &URL_SAFE] {
                let blob = engine.encode(format!("{prefix}{KEY} and more"));
                let out = clean(&format!("Authorization: Basic {blob}"));
                assert!(
                    out.contains("[redacted key anthropic]"),
                    "{prefix:?}: {out}"
                );
                // All of the blob's characters that encode the key alone are gone:
                // what is left holds at most a few bits of its ends.
                let left = out.replace("[redacted key anthropic]", "").len();
                let removed = "Authorization: Basic ".len() + blob.len() - left;
                assert!(removed >= KEY.len() * 4 / 3 - 2, "{out}");
            }
        }
    }

    #[test]
    fn clean_text_is_borrowed_and_short_secrets_are_ignored() {
        let r = redactor();
        assert!(matches!(
            r.redact("nothing here %41 \\u0041 &#65;"),
            Cow::Borrowed(_)
        ));
        let mut short = Redactor::new();
        short.add("ollama", "ollama");
        assert!(short.is_empty());
        assert_eq!(short.redact("ollama says hi"), "ollama says hi");
    }

    #[test]
    fn a_part_of_a_text_shows_no_piece_of_a_key_it_cuts_through() {
        let r = redactor();
        let text = format!("one {KEY} two {KEY} three");
        let marker = "[redacted key anthropic]";
        let at = text.find("CANARY").unwrap();
        // From inside the first key to inside the second.
        let end = text.rfind("CANARY").unwrap();
        assert_eq!(
            r.redact_part(&text, at..end),
            format!("{marker} two {marker}")
        );
        assert_eq!(r.redact_part(&text, 0..4), "one ");
        assert_eq!(r.redact_part(&text, at..at + 3), marker);
        assert_eq!(r.redact_part(&text, 0..text.len()), r.redact(&text));
    }

    #[test]
    fn a_run_of_sixteen_characters_of_a_key_is_redacted_and_a_shorter_one_is_not() {
        let r = redactor();
        let marker = "[redacted key anthropic]";
        // A prefix, as an echo cut at 20 characters leaves it.
        assert_eq!(
            r.redact(&format!("bad key {}...", &KEY[..20])),
            format!("bad key {marker}...")
        );
        // A suffix, and a piece from the middle.
        assert_eq!(r.redact(&format!("({})", &KEY[5..])), format!("({marker})"));
        assert_eq!(
            r.redact(&format!("x{}y", &KEY[3..19])),
            format!("x{marker}y")
        );
        // Two pieces with text between them.
        assert_eq!(
            r.redact(&format!("{} and {}", &KEY[..16], &KEY[8..])),
            format!("{marker} and {marker}")
        );
        // Fifteen characters, a common prefix or a masked echo: left as they are.
        for kept in [
            &KEY[..15],
            "sk-ant-api03-...",
            "sk-ant-C****************7f3a",
        ] {
            assert_eq!(r.redact(kept), kept);
        }
        // Text of no key, however long, is borrowed.
        let long = "abcdefghijklmnopqrstuvwxyz0123456789".repeat(100);
        assert!(matches!(r.redact(&long), Cow::Borrowed(_)));
    }

    #[test]
    fn a_secret_holding_html_characters_is_found_escaped_by_name() {
        let mut r = Redactor::new();
        r.add("odd", "sk-<a>&\"b'-7f3a");
        for case in [
            "sk-&lt;a&gt;&amp;&quot;b&apos;-7f3a",
            "sk-&lt;a&gt;&amp;&quot;b&#x27;-7f3a",
            "sk-&lt;a>&amp;\"b'-7f3a",
        ] {
            assert_eq!(r.redact(case), "[redacted key odd]", "{case}");
        }
        assert_eq!(r.redact("&amp;&lt; &unknown;"), "&amp;&lt; &unknown;");
    }

    #[test]
    fn a_secret_holding_escape_characters_is_found_as_written() {
        let mut r = Redactor::new();
        r.add("odd", "pct%41and\\u0041x");
        assert_eq!(r.redact("[pct%41and\\u0041x]"), "[[redacted key odd]]");
        assert_eq!(r.redact("pct%2541and%5Cu0041x"), "[redacted key odd]");
    }

    #[test]
    fn the_longer_secret_wins_and_overlaps_merge() {
        let mut r = Redactor::new();
        r.add("short", "abcdefgh");
        r.add("long", "abcdefgh-ijklmnop");
        assert_eq!(
            r.redact("abcdefgh-ijklmnop abcdefgh"),
            "[redacted key long] [redacted key short]"
        );
    }

    #[test]
    fn json_values_are_walked() {
        let mut value = serde_json::json!({"a": [KEY, {"b": format!("x{KEY}")}], KEY: 1});
        // `json` uses the process-wide set.
        register_text("anthropic", KEY);
        assert!(json(&mut value));
        assert!(!value.to_string().contains("CANARY"), "{value}");
        assert!(!json(&mut value));
    }
}
