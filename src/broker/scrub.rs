//! Response scrubbing: the credential values a vault's services send (and the encoded forms
//! they take on the way out: basic-auth base64, percent-, query- and JSON-escaped, with the
//! escapes other encoders add — `\/`, Go's `\u0026` — or escaped twice, and HTML entities;
//! for a non-ASCII value, also its UTF-8 bytes read as Latin-1) are replaced by
//! [`MARKER`] in response headers and bodies, so an upstream that reflects a request header,
//! or stores and returns a substituted placeholder, cannot hand the secret to the agent. In a
//! text body the marker replaces the value; in a binary one a filler of the value's own
//! length does (see [`BodyScrub::same_length`]), so the body's length and framing hold.
//!
//! Bodies are scanned as they stream, with `memchr::memmem`: a chunk goes out at once except
//! for its last line (at most the longest needle's length less one byte), held until the
//! next chunk so that a value split across chunks is still caught. Server-sent events still
//! arrive one by one: an event ends with a line break. What is held never depends on
//! whether it begins a secret (see [`Scrubber::held_back`]). Nothing is buffered beyond it.
//!
//! Stance: values shorter than [`MIN_LEN`] bytes are not scrubbed (they would rewrite
//! ordinary text, and are not credentials worth the name); a compressed body cannot be read,
//! which is why the proxy asks upstreams for identity encoding when scrubbing applies.

use std::sync::Arc;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use http::HeaderValue;
use memchr::memmem::Finder;

/// What replaces a credential value.
pub const MARKER: &str = "[agent-vault:redacted]";

/// Shorter values are left alone.
pub const MIN_LEN: usize = 6;

/// What replaces a credential value in a header *name* (the marker's brackets and colon are
/// not allowed there).
pub const NAME_MARKER: &str = "agent-vault-redacted";

/// The secrets of one service, ready to search for.
pub struct Scrubber {
    finders: Vec<Finder<'static>>,
    /// Shorter text cannot hold a secret (most header values are).
    shortest: usize,
    /// The most line breaks in one needle (a PEM key has many; most have none).
    line_breaks: usize,
    longest: usize,
    /// The needles that could stand in a header name, lower-cased as hyper gives names,
    /// longest first (a secret sent back as a name, `x-seen-<secret>: 1`).
    name_needles: Vec<String>,
}

impl std::fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubber")
            .field("needles", &self.finders.len())
            .finish()
    }
}

impl Scrubber {
    /// From the raw credential values a service uses and the basic-auth pairs it sends;
    /// `None` when nothing is long enough to scrub.
    pub fn new<'a>(
        values: impl IntoIterator<Item = &'a str>,
        basic_pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<Self> {
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for value in values {
            push_forms(value, &mut needles);
            // An upstream that reads the bytes as Latin-1 (Python's http.server and WSGI do
            // with headers) and writes them back as UTF-8 returns each byte as a character.
            if !value.is_ascii() {
                let latin1: String = value.bytes().map(char::from).collect();
                push_forms(&latin1, &mut needles);
            }
        }
        for (user, pass) in basic_pairs {
            let blob = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
            needles.push(blob.into_bytes());
        }
        needles.retain(|n| n.len() >= MIN_LEN);
        // Longest first, so a value that contains another is replaced whole.
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        needles.dedup();
        if needles.is_empty() {
            return None;
        }
        let mut name_needles: Vec<String> = needles
            .iter()
            .filter(|n| n.iter().all(|&b| is_token_byte(b)))
            .map(|n| String::from_utf8_lossy(n).to_ascii_lowercase())
            .collect();
        name_needles.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
        name_needles.dedup();
        Some(Self {
            longest: needles.iter().map(Vec::len).max().unwrap_or(0),
            shortest: needles.iter().map(Vec::len).min().unwrap_or(0),
            line_breaks: needles
                .iter()
                .map(|n| memchr::memchr_iter(b'\n', n).count())
                .max()
                .unwrap_or(0),
            finders: needles
                .into_iter()
                .map(|n| Finder::new(&n).into_owned())
                .collect(),
            name_needles,
        })
    }

    /// Every match in `haystack`, in order and not overlapping: (start, length).
    fn matches<'h>(&'h self, haystack: &'h [u8]) -> Matches<'h> {
        Matches {
            next: self.finders.iter().map(|f| f.find(haystack)).collect(),
            scrubber: self,
            haystack,
            pos: 0,
        }
    }

    /// `text` with every secret replaced; `None` when there was nothing to replace.
    pub fn replace(&self, text: &[u8]) -> Option<Vec<u8>> {
        if text.len() < self.shortest {
            return None;
        }
        let mut out = Vec::new();
        let mut pos = 0;
        for (at, len) in self.matches(text) {
            out.extend_from_slice(text.get(pos..at)?);
            out.extend_from_slice(&replacement(len, false));
            pos = at + len;
        }
        if pos == 0 {
            return None;
        }
        out.extend_from_slice(text.get(pos..)?);
        Some(out)
    }

    /// A header value with secrets replaced, or `None` when it holds none.
    pub fn header(&self, value: &HeaderValue) -> Option<HeaderValue> {
        let replaced = self.replace(value.as_bytes())?;
        // The marker is plain ASCII and the rest came from a valid value.
        HeaderValue::from_bytes(&replaced).ok()
    }

    /// Replaces credential values in every header (or trailer) that carries one, in its
    /// value or its name.
    pub fn scrub_headers(&self, headers: &mut http::HeaderMap) {
        self.scrub_header_names(headers);
        let dirty: Vec<http::HeaderName> = headers
            .iter()
            .filter(|(_, value)| self.header(value).is_some())
            .map(|(name, _)| name.clone())
            .collect();
        for name in dirty {
            let values: Vec<HeaderValue> = headers
                .get_all(&name)
                .iter()
                .map(|v| self.header(v).unwrap_or_else(|| v.clone()))
                .collect();
            headers.remove(&name);
            for value in values {
                headers.append(name.clone(), value);
            }
        }
    }

    /// Renames each header whose name holds a secret, the secret replaced by [`NAME_MARKER`].
    fn scrub_header_names(&self, headers: &mut http::HeaderMap) {
        let shortest = self.name_needles.last().map_or(usize::MAX, String::len);
        let holds_secret = |name: &str| {
            name.len() >= shortest && self.name_needles.iter().any(|n| name.contains(n.as_str()))
        };
        let dirty: Vec<http::HeaderName> = headers
            .keys()
            .filter(|name| holds_secret(name.as_str()))
            .cloned()
            .collect();
        for name in dirty {
            let mut renamed = name.as_str().to_owned();
            for needle in &self.name_needles {
                renamed = renamed.replace(needle.as_str(), NAME_MARKER);
            }
            // Token characters replaced by token characters: still a valid name.
            let Ok(renamed) = http::HeaderName::from_bytes(renamed.as_bytes()) else {
                headers.remove(&name);
                continue;
            };
            if let http::header::Entry::Occupied(entry) = headers.entry(&name) {
                let (_, values) = entry.remove_entry_mult();
                let values: Vec<HeaderValue> = values.collect();
                for value in values {
                    headers.append(renamed.clone(), value);
                }
            }
        }
    }

    /// How many trailing bytes of `tail` to hold until the next chunk, so that a secret the
    /// next chunk completes is still caught. The count depends on where `tail`'s line breaks
    /// fall and on the needles' lengths, never on whether `tail` begins a secret: a hold that
    /// did would tell an agent, by where its echoed guesses come back cut, how much of a
    /// credential it had guessed right, and guessing on byte by byte gives the whole value.
    fn held_back(&self, tail: &[u8]) -> usize {
        let window = self.longest.saturating_sub(1).min(tail.len());
        let recent = tail.get(tail.len() - window..).unwrap_or_default();
        // A secret's proper prefix holds at most `line_breaks` line breaks, so it starts after
        // the one before them; text up to that one goes out now (an event's final newline).
        match memchr::memrchr_iter(b'\n', recent).nth(self.line_breaks) {
            Some(at) => recent.len() - at - 1,
            None => recent.len(),
        }
    }
}

/// `value` and the encoded forms it takes on the way out, onto `needles`.
fn push_forms(value: &str, needles: &mut Vec<Vec<u8>>) {
    needles.push(value.as_bytes().to_vec());
    for percent in percent_forms(value) {
        needles.push(lower_hex(&percent).into_bytes());
        needles.push(percent.into_bytes());
    }
    if let Ok(json) = serde_json::to_string(value)
        && let Some(inner) = json.get(1..json.len().saturating_sub(1))
    {
        let go = inner
            .replace('&', "\\u0026")
            .replace('<', "\\u003c")
            .replace('>', "\\u003e");
        // Python's `json.dumps` writes non-ASCII characters as `\u00e9`, Jackson as
        // `\u00E9`; .NET's System.Text.Json escapes HTML-sensitive ones too.
        let dotnet = ascii_json(
            &inner
                .replace("\\\"", "\\u0022")
                .replace('&', "\\u0026")
                .replace('\'', "\\u0027")
                .replace('+', "\\u002B")
                .replace('<', "\\u003C")
                .replace('>', "\\u003E")
                .replace('`', "\\u0060"),
            true,
        );
        // A value substituted into a JSON string and echoed inside another JSON string (an
        // echo service's `"body": "…"`) is escaped twice.
        let twice = serde_json::to_string(inner)
            .ok()
            .and_then(|json| json.get(1..json.len().saturating_sub(1)).map(str::to_owned))
            .filter(|twice| twice != inner);
        let forms = [
            inner.to_owned(),
            go,
            ascii_json(inner, false),
            ascii_json(inner, true),
            dotnet,
        ];
        for escaped in forms.into_iter().chain(twice) {
            needles.push(escaped.replace('/', "\\/").into_bytes());
            needles.push(escaped.into_bytes());
        }
    }
    needles.extend(html_forms(value).map(String::into_bytes));
}

/// The percent-encoded forms encoders produce: every byte but the unreserved `-._~`, in a
/// path and, with `+` for space, in a query (as the broker encodes a substitution), and as
/// JavaScript's `encodeURIComponent` (which also leaves `!'()*`) and Python's `quote` (which
/// also leaves `/`) write it.
fn percent_forms(value: &str) -> [String; 4] {
    use super::rewrite::{NOT_UNRESERVED, encode};
    use percent_encoding::{AsciiSet, utf8_percent_encode};
    const JAVASCRIPT: &AsciiSet = &NOT_UNRESERVED
        .remove(b'!')
        .remove(b'\'')
        .remove(b'(')
        .remove(b')')
        .remove(b'*');
    const PYTHON: &AsciiSet = &NOT_UNRESERVED.remove(b'/');
    [
        encode(value, false),
        encode(value, true),
        utf8_percent_encode(value, JAVASCRIPT).to_string(),
        utf8_percent_encode(value, PYTHON).to_string(),
    ]
}

/// `%3C` as `%3c`: the hex digits of each escape in lower case, the rest as it is.
fn lower_hex(percent: &str) -> String {
    let mut out = String::with_capacity(percent.len());
    let mut hex_left = 0;
    for c in percent.chars() {
        if hex_left > 0 {
            out.push(c.to_ascii_lowercase());
            hex_left -= 1;
        } else {
            out.push(c);
            if c == '%' {
                hex_left = 2;
            }
        }
    }
    out
}

/// A JSON string's inside with every non-ASCII character as `\uXXXX` (UTF-16), in lower-
/// or upper-case hex.
fn ascii_json(escaped: &str, upper: bool) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(escaped.len());
    for c in escaped.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            for unit in c.encode_utf16(&mut [0; 2]) {
                let _ = match upper {
                    true => write!(out, "\\u{unit:04X}"),
                    false => write!(out, "\\u{unit:04x}"),
                };
            }
        }
    }
    out
}

/// HTML and XML escapes: `&amp;`, `&lt;`, `&gt;`, and quotes as `&quot;` and `&#39;` (the
/// common pair), `&quot;` and `&#x27;` (Python's `html.escape`), `&quot;` and `&#039;`
/// (PHP's `htmlspecialchars`), `&#34;` and `&#39;` (Go's templates), or left alone (XML).
fn html_forms(value: &str) -> impl Iterator<Item = String> {
    let base = value
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    [
        ("&quot;", "&#39;"),
        ("&quot;", "&#x27;"),
        ("&quot;", "&#039;"),
        ("&#34;", "&#39;"),
        ("\"", "'"),
    ]
    .into_iter()
    .map(move |(double, single)| base.replace('"', double).replace('\'', single))
}

/// Whether `byte` may stand in a header name (RFC 9110's `tchar`).
/// The matches of a [`Scrubber`] in one haystack. Each needle's next position is kept and
/// searched again only once a match has passed it, so the scan stays linear however many
/// matches there are (searching every needle again after each match was quadratic).
struct Matches<'h> {
    scrubber: &'h Scrubber,
    haystack: &'h [u8],
    /// Per needle, its first occurrence at or after the last search's start.
    next: Vec<Option<usize>>,
    pos: usize,
}

impl Iterator for Matches<'_> {
    type Item = (usize, usize);

    /// The earliest match at or after the end of the last; the longest needle wins a tie.
    fn next(&mut self) -> Option<(usize, usize)> {
        let mut best: Option<(usize, usize)> = None;
        for (finder, next) in self.scrubber.finders.iter().zip(self.next.iter_mut()) {
            if next.is_some_and(|at| at < self.pos) {
                *next = self
                    .haystack
                    .get(self.pos..)
                    .and_then(|rest| finder.find(rest))
                    .map(|at| self.pos + at);
            }
            if let Some(at) = *next
                && best.is_none_or(|(start, _)| at < start)
            {
                best = Some((at, finder.needle().len()));
            }
        }
        let (at, len) = best?;
        self.pos = at + len;
        Some((at, len))
    }
}

fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// What replaces a match `len` bytes long: the marker, or with `same_length` the marker cut
/// or padded with `*` to exactly `len` bytes.
fn replacement(len: usize, same_length: bool) -> std::borrow::Cow<'static, [u8]> {
    if !same_length {
        return MARKER.as_bytes().into();
    }
    let fill: Vec<u8> = MARKER
        .bytes()
        .chain(std::iter::repeat(b'*'))
        .take(len)
        .collect();
    fill.into()
}

/// The scanning state of one response body.
pub struct BodyScrub {
    scrubber: Arc<Scrubber>,
    /// Bytes held back from the previous chunk (a possible start of a secret).
    carry: BytesMut,
    same_length: bool,
}

impl BodyScrub {
    /// For text: a match becomes the marker.
    pub fn new(scrubber: Arc<Scrubber>) -> Self {
        Self {
            scrubber,
            carry: BytesMut::new(),
            same_length: false,
        }
    }

    /// For a binary body, whose length or framing a longer marker would break: a match
    /// becomes a filler of its own length, so the body keeps its `Content-Length`.
    pub fn same_length(scrubber: Arc<Scrubber>) -> Self {
        Self {
            same_length: true,
            ..Self::new(scrubber)
        }
    }

    /// Takes the next chunk; returns what can be sent now.
    pub fn push(&mut self, chunk: Bytes) -> Bytes {
        let data: Bytes = if self.carry.is_empty() {
            chunk
        } else {
            self.carry.extend_from_slice(&chunk);
            self.carry.split().freeze()
        };
        let mut out = BytesMut::new();
        let mut pos = 0;
        for (at, len) in self.scrubber.matches(&data) {
            out.extend_from_slice(&data[pos..at]);
            out.extend_from_slice(&replacement(len, self.same_length));
            pos = at + len;
        }
        let tail = data.slice(pos..);
        let hold = self.scrubber.held_back(&tail);
        let ready = tail.slice(..tail.len() - hold);
        self.carry.extend_from_slice(&tail[tail.len() - hold..]);
        if out.is_empty() {
            // The common case: nothing found, no copy.
            return ready;
        }
        out.extend_from_slice(&ready);
        out.freeze()
    }

    pub fn scrubber(&self) -> &Scrubber {
        &self.scrubber
    }

    /// The held-back tail once the body has ended (it never completed a secret).
    pub fn finish(&mut self) -> Bytes {
        self.carry.split().freeze()
    }
}

/// Whether a response with this `Content-Type` is text worth scanning. No type: scanned.
pub fn is_text(content_type: Option<&HeaderValue>) -> bool {
    let Some(value) = content_type.and_then(|v| v.to_str().ok()) else {
        return content_type.is_none();
    };
    let media = value.split(';').next().unwrap_or("").trim().as_bytes();
    // Compared without case and without a lowered copy: this runs on every response.
    let starts = |prefix: &str| {
        media
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    let ends = |suffix: &str| {
        media
            .len()
            .checked_sub(suffix.len())
            .is_some_and(|at| media[at..].eq_ignore_ascii_case(suffix.as_bytes()))
    };
    starts("text/")
        || ends("+json")
        || ends("+xml")
        || [
            "application/json",
            "application/x-ndjson",
            "application/jsonl",
            "application/xml",
            "application/javascript",
            "application/x-www-form-urlencoded",
        ]
        .iter()
        .any(|known| media.eq_ignore_ascii_case(known.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber() -> Arc<Scrubber> {
        Arc::new(
            Scrubber::new(
                ["sk-SECRET-123", "short", "a b&c/d"],
                [("user-1", "pass-22")],
            )
            .unwrap(),
        )
    }

    fn stream(chunks: &[&str]) -> (String, Vec<String>) {
        stream_with(BodyScrub::new(scrubber()), chunks)
    }

    fn stream_with(mut scrub: BodyScrub, chunks: &[&str]) -> (String, Vec<String>) {
        let mut emitted = Vec::new();
        for chunk in chunks {
            emitted.push(
                String::from_utf8(scrub.push(Bytes::from(chunk.to_string())).to_vec()).unwrap(),
            );
        }
        emitted.push(String::from_utf8(scrub.finish().to_vec()).unwrap());
        (emitted.concat(), emitted)
    }

    #[test]
    fn many_matches_of_some_needles_beside_others_far_off_are_all_found() {
        let s = Scrubber::new(["s3cret-value", "other-v4lue"], []).unwrap();
        let text = format!("{}other-v4lue", "s3cret-value ".repeat(20_000));
        let out = String::from_utf8(s.replace(text.as_bytes()).unwrap()).unwrap();
        let marker = String::from_utf8(replacement(12, false).to_vec()).unwrap();
        let other = String::from_utf8(replacement(11, false).to_vec()).unwrap();
        assert_eq!(
            out,
            format!("{}{other}", format!("{marker} ").repeat(20_000))
        );
    }

    #[test]
    fn values_and_their_encodings_are_replaced() {
        let s = scrubber();
        let basic = base64::engine::general_purpose::STANDARD.encode("user-1:pass-22");
        let text = format!(
            "k=sk-SECRET-123 auth=Basic {basic} q=a+b%26c%2Fd p=a%20b%26c%2Fd j=a b&c/d short"
        );
        let out = String::from_utf8(s.replace(text.as_bytes()).unwrap()).unwrap();
        assert_eq!(
            out,
            format!("k={MARKER} auth=Basic {MARKER} q={MARKER} p={MARKER} j={MARKER} short")
        );
        assert!(s.replace(b"nothing here").is_none());
        assert!(Scrubber::new(["tiny"], []).is_none(), "too short to scrub");
        let header = s
            .header(&HeaderValue::from_static("Bearer sk-SECRET-123"))
            .unwrap();
        assert_eq!(header, format!("Bearer {MARKER}").as_str());
    }

    #[test]
    fn a_secret_in_a_header_name_is_replaced_there_too() {
        let s = scrubber();
        let mut headers = http::HeaderMap::new();
        headers.append("x-seen-sk-secret-123", HeaderValue::from_static("1"));
        headers.append("x-seen-sk-secret-123", HeaderValue::from_static("2"));
        headers.append("content-type", HeaderValue::from_static("text/plain"));
        s.scrub_headers(&mut headers);
        let mut names: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["content-type", "x-seen-agent-vault-redacted"]);
        let values: Vec<_> = headers
            .get_all("x-seen-agent-vault-redacted")
            .iter()
            .collect();
        assert_eq!(values, ["1", "2"]);
        // A value with characters no name may hold cannot be in one.
        assert!(s.name_needles.iter().all(|n| !n.contains(' ')));
    }

    #[test]
    fn other_encoders_escapes_and_html_entities_are_replaced() {
        let s = Scrubber::new(["SENTINEL-sub-44&x/y<z>'q"], []).unwrap();
        for form in [
            r"SENTINEL-sub-44&x\/y<z>'q",
            r"SENTINEL-sub-44\u0026x/y\u003cz\u003e'q",
            r"SENTINEL-sub-44\u0026x\/y\u003cz\u003e'q",
            "SENTINEL-sub-44&amp;x/y&lt;z&gt;&#39;q",
        ] {
            let out = s.replace(format!("[{form}]").as_bytes());
            assert_eq!(
                out.as_deref(),
                Some(format!("[{MARKER}]").as_bytes()),
                "{form}"
            );
        }
        // What a red team's reflecting upstream sent back with other encoders' escapes.
        let s = Scrubber::new([r#"Pw'd"q&r<s>t/u+v!*(x)"#, "SENTINEL-éü-91b7"], []).unwrap();
        for form in [
            "Pw&#x27;d&quot;q&amp;r&lt;s&gt;t/u+v!*(x)", // Python's html.escape
            "Pw&#39;d&#34;q&amp;r&lt;s&gt;t/u+v!*(x)",   // Go's templates
            r#"Pw'd"q&amp;r&lt;s&gt;t/u+v!*(x)"#,        // XML text
            "Pw'd%22q%26r%3Cs%3Et%2Fu%2Bv!*(x)",         // encodeURIComponent
            "Pw%27d%22q%26r%3Cs%3Et/u%2Bv%21%2A%28x%29", // Python's quote
            "Pw%27d%22q%26r%3cs%3et%2fu%2bv%21%2a%28x%29", // lower-case hex
            r"SENTINEL-\u00e9\u00fc-91b7",               // Python's json.dumps
            r"SENTINEL-\u00E9\u00FC-91b7",               // Jackson
            r"Pw\u0027d\u0022q\u0026r\u003Cs\u003Et/u\u002Bv!*(x)", // .NET's System.Text.Json
            "Pw&#039;d&quot;q&amp;r&lt;s&gt;t/u+v!*(x)", // PHP's htmlspecialchars
            r#"Pw'd\\\"q&r<s>t/u+v!*(x)"#,               // JSON in a JSON string (an echo)
            "SENTINEL-\u{c3}\u{a9}\u{c3}\u{bc}-91b7",    // UTF-8 read as Latin-1
            r"SENTINEL-\u00c3\u00a9\u00c3\u00bc-91b7",   // and then as json.dumps writes it
        ] {
            let out = s.replace(format!("[{form}]").as_bytes());
            assert_eq!(
                out.as_deref(),
                Some(format!("[{MARKER}]").as_bytes()),
                "{form}"
            );
        }
    }

    #[test]
    fn binary_bodies_keep_their_length() {
        let mut scrub = BodyScrub::same_length(scrubber());
        let mut out = scrub
            .push(Bytes::from_static(b"\x00sk-SECRET-123\x01"))
            .to_vec();
        out.extend_from_slice(&scrub.finish());
        assert_eq!(out, b"\x00[agent-vault:\x01");
        let long = "x".repeat(30);
        let s = Scrubber::new([long.as_str()], []).unwrap();
        let mut scrub = BodyScrub::same_length(Arc::new(s));
        let mut out = scrub.push(Bytes::from(format!("<{long}>"))).to_vec();
        out.extend_from_slice(&scrub.finish());
        assert_eq!(out, format!("<{MARKER}********>").as_bytes());
    }

    #[test]
    fn secrets_split_across_chunks_are_caught() {
        let whole = "data: sk-SECRET-123\n\n";
        for split in 1..whole.len() {
            let (a, b) = whole.split_at(split);
            let (out, _) = stream(&[a, b]);
            assert_eq!(out, format!("data: {MARKER}\n\n"), "split at {split}");
        }
        let (out, _) = stream(&["x sk-SEC", "RET-12", "3 y"]);
        assert_eq!(out, format!("x {MARKER} y"));
    }

    #[test]
    fn events_are_not_held_back() {
        let (_, emitted) = stream(&["data: one\n\n", "data: two\n\n"]);
        assert_eq!(emitted, ["data: one\n\n", "data: two\n\n", ""]);
        // A last line is held until the next chunk, or the end.
        let (out, emitted) = stream(&["line\nends with sk-SE"]);
        assert_eq!(emitted, ["line\n", "ends with sk-SE"]);
        assert_eq!(out, "line\nends with sk-SE");
    }

    #[test]
    fn what_is_held_back_does_not_tell_a_guess_from_a_secret() {
        // An upstream echoing the agent's guesses, cut where the agent asks: a right guess
        // and a wrong one come back cut in the same place, so no cut confirms a guess.
        for guess in ["sk-SE", "sk-SX", "xx-xx", "sk-SECRET-12"] {
            let (out, emitted) = stream(&[&format!("one\nitem: {guess}"), "\"}\n"]);
            assert_eq!(emitted, ["one\n", &format!("item: {guess}\"}}\n"), ""]);
            assert_eq!(out, format!("one\nitem: {guess}\"}}\n"));
        }
        // A secret of several lines: as many lines held back as it could span.
        let pem = "-----BEGIN KEY-----\nabcdefgh\n-----END KEY-----";
        let scrub = BodyScrub::new(Arc::new(Scrubber::new([pem], []).unwrap()));
        let (_, emitted) = stream_with(scrub, &["a\nb\nc\nd\n", "e\n"]);
        assert_eq!(emitted, ["a\nb\n", "c\n", "d\ne\n"]);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Secrets that overlap and share starts, and bodies made of their pieces, their
        /// encoded forms and filler: where a streaming scan could go wrong.
        const SECRETS: [&str; 4] = ["sk-SECRET-123", "SECRET-12x", "a b&c/d", "x y\nsk-S\n"];

        fn body() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                prop::sample::select(SECRETS.to_vec()).prop_map(|s| s.as_bytes().to_vec()),
                prop::sample::select(SECRETS.to_vec()).prop_flat_map(|s| {
                    (1..s.len()).prop_map(move |n| s.as_bytes()[..n].to_vec())
                }),
                Just(b"a+b%26c%2Fd".to_vec()),
                prop::collection::vec(prop::sample::select(b"sk-SECRET123 x\n".to_vec()), 0..8),
            ];
            prop::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
        }

        proptest! {
            /// However a body is cut into chunks, the scan sends what a scan of the whole
            /// body gives (the same length for a binary one), and no secret.
            #[test]
            fn chunking_never_changes_the_result(
                body in body(),
                cuts in prop::collection::vec(any::<usize>(), 0..6),
            ) {
                let scrubber = Arc::new(Scrubber::new(SECRETS, []).unwrap());
                let whole = scrubber.replace(&body).unwrap_or_else(|| body.clone());
                let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
                cuts.sort_unstable();
                let streamed = |mut scan: BodyScrub| {
                    let mut out = Vec::new();
                    let mut from = 0;
                    for &cut in cuts.iter().chain([&body.len()]) {
                        out.extend_from_slice(&scan.push(Bytes::copy_from_slice(&body[from..cut])));
                        from = cut;
                    }
                    out.extend_from_slice(&scan.finish());
                    out
                };
                let text = streamed(BodyScrub::new(scrubber.clone()));
                prop_assert_eq!(String::from_utf8_lossy(&text), String::from_utf8_lossy(&whole));
                // A binary body keeps its length (its Content-Length goes out unchanged).
                let binary = streamed(BodyScrub::same_length(scrubber.clone()));
                prop_assert_eq!(binary.len(), body.len());
                for secret in SECRETS {
                    prop_assert!(memchr::memmem::find(&text, secret.as_bytes()).is_none());
                    prop_assert!(memchr::memmem::find(&binary, secret.as_bytes()).is_none());
                }
            }
        }
    }

    #[test]
    fn text_types() {
        let t = |v: &'static str| is_text(Some(&HeaderValue::from_static(v)));
        assert!(t("application/json; charset=utf-8"));
        assert!(t("text/event-stream"));
        assert!(t("application/vnd.api+json"));
        assert!(
            t(" Application/JSON ; charset=utf-8"),
            "case and spaces do not matter"
        );
        assert!(t("TEXT/plain"));
        assert!(t("application/problem+XML"));
        assert!(!t("application/octet-stream"));
        assert!(!t("json"), "shorter than every suffix");
        assert!(!t("application/x-git-upload-pack-result"));
        assert!(is_text(None));
    }
}
