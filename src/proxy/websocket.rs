//! WebSockets through the broker: the upgrade request is an ordinary request (credential
//! injected, placeholders replaced), sent upstream on an HTTP/1.1 connection of its own; on
//! `101 Switching Protocols` both sides are upgraded and frames are relayed until either
//! side closes. An HTTP/2 agent opens one with an extended CONNECT (RFC 8441, `:protocol
//! websocket`): the broker sends the upstream the HTTP/1.1 upgrade it expects and answers the
//! agent `200`, and the HTTP/2 stream carries the same frames.
//!
//! Frames are forwarded as they arrive, each write awaited, so a slow reader slows the
//! writer (back-pressure) instead of filling memory. Without rewriting they pass untouched.
//!
//! - **Scrubbing** (server to client, on unless the service opts out) reads every text
//!   message as one stream, across its fragments and within frames of any size — the scan
//!   holds back at most a possible start of a secret, and a long frame goes out as fragments,
//!   which RFC 6455 (5.4) lets an intermediary do when no extension is negotiated — and the
//!   payload of every control frame (a close reason; a ping the client would echo back).
//!   Binary messages are scanned the same way, a value replaced by a filler of its own
//!   length, like binary response bodies. The broker removes
//!   `Sec-WebSocket-Extensions` from the upgrade, so a compressed frame (RSV bits) from the
//!   upstream is a protocol error that ends the connection rather than a way past the scan.
//! - **Substitution** (client to server, surface `ws`) replaces placeholders in text frames
//!   that are whole (FIN set), uncompressed and at most [`MAX_REWRITTEN_FRAME`] bytes; others
//!   pass unchanged (the placeholder then reaches the upstream, never a secret the agent).
//!   A frame its substitutions would grow past [`MAX_SUBSTITUTED_FRAME`] ends the connection.

use std::sync::Arc;

use base64::Engine;
use bytes::{Buf, BufMut, BytesMut};
use http::{HeaderMap, HeaderValue, Method, header};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::broker::ResolvedSubstitution;
use crate::broker::scrub::{BodyScrub, Scrubber};
use crate::services::Surface;

/// Frames larger than this are relayed without placeholder substitution.
pub const MAX_REWRITTEN_FRAME: u64 = 1024 * 1024;
/// The most a frame may hold once its placeholders are credential values (up to 64 KiB
/// each): a frame of placeholders would otherwise grow thousands of times over.
pub const MAX_SUBSTITUTED_FRAME: usize = 2 * 1024 * 1024;

const OPCODE_CONTINUATION: u8 = 0;
const OPCODE_TEXT: u8 = 1;
const OPCODE_BINARY: u8 = 2;
const OPCODE_CLOSE: u8 = 8;
/// Control frames (close, ping, pong) carry at most this much.
const MAX_CONTROL_PAYLOAD: usize = 125;

/// Whether the request asks to switch to WebSocket (`Connection: upgrade`,
/// `Upgrade: websocket`).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has_token(header::CONNECTION, "upgrade") && has_token(header::UPGRADE, "websocket")
}

/// How the agent asked for the WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// HTTP/1.1 `Upgrade: websocket`, answered `101`.
    Upgrade,
    /// HTTP/2 `CONNECT` with `:protocol websocket` (RFC 8441), answered `200`.
    ExtendedConnect,
}

impl Opening {
    /// Whether `parts` opens a WebSocket, and how.
    pub fn of(parts: &http::request::Parts) -> Option<Self> {
        if parts.method == Method::CONNECT {
            let protocol = parts.extensions.get::<hyper::ext::Protocol>()?;
            return protocol
                .as_str()
                .eq_ignore_ascii_case("websocket")
                .then_some(Self::ExtendedConnect);
        }
        is_upgrade(&parts.headers).then_some(Self::Upgrade)
    }
}

/// RFC 6455's suffix of the value hashed into `Sec-WebSocket-Accept`.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Makes an RFC 8441 CONNECT the HTTP/1.1 upgrade an upstream expects: `GET` with a fresh
/// `Sec-WebSocket-Key` (returned, for [`accepts`]) and version 13 unless the agent named one.
pub fn connect_to_upgrade(parts: &mut http::request::Parts) -> String {
    parts.method = Method::GET;
    parts.extensions.remove::<hyper::ext::Protocol>();
    let key = base64::engine::general_purpose::STANDARD.encode(crate::crypto::random_bytes::<16>());
    // Base64 is always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&key) {
        parts.headers.insert(header::SEC_WEBSOCKET_KEY, value);
    }
    parts
        .headers
        .entry(header::SEC_WEBSOCKET_VERSION)
        .or_insert(HeaderValue::from_static("13"));
    key
}

/// Whether a `101` answer proves the upstream took the upgrade made with `key` (RFC 6455's
/// `Sec-WebSocket-Accept`): the check an HTTP/1.1 agent's own client would have made.
pub fn accepts(headers: &HeaderMap, key: &str) -> bool {
    let mut hash = Sha1::new();
    hash.update(key.as_bytes());
    hash.update(ACCEPT_GUID);
    let expected = base64::engine::general_purpose::STANDARD.encode(hash.finalize());
    headers
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .is_some_and(|v| v.as_bytes() == expected.as_bytes())
}

/// Puts back the hop-by-hop headers an upgrade needs (they were stripped with the rest).
/// Without extensions when frames will be opened: a compressed frame cannot be rewritten.
pub fn restore_upgrade_headers(headers: &mut HeaderMap, opens_frames: bool) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if opens_frames {
        headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }
}

/// What happens to text frames in one direction.
#[derive(Clone)]
pub enum Rewrite {
    /// Client to server: placeholders become credential values (JSON-escaped in a payload
    /// that looks like JSON).
    Substitute(Arc<Vec<ResolvedSubstitution>>),
    /// Server to client: credential values become the marker.
    Scrub(Arc<Scrubber>),
}

/// Placeholders replaced in one text frame (JSON-escaped in a payload that looks like JSON);
/// `None` when it holds none.
fn substitute(text: &[u8], subs: &[ResolvedSubstitution]) -> std::io::Result<Option<Vec<u8>>> {
    let json = text
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'{' || *b == b'[');
    let content_type = json.then_some("application/json");
    let room = |len| match len <= MAX_SUBSTITUTED_FRAME {
        true => Ok(()),
        false => Err(protocol_error(
            "the agent's text frame would be over 2 MiB with its credentials substituted",
        )),
    };
    let replaced =
        crate::broker::rewrite::rewrite_text(Surface::Ws, text, content_type, subs, room)?;
    Ok((replaced != text).then_some(replaced))
}

/// Relays frames both ways until both directions end. An error on either side ends both.
pub async fn relay<C, U>(
    client: C,
    upstream: U,
    to_upstream: Option<Rewrite>,
    to_client: Option<Rewrite>,
) where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (client_read, client_write) = tokio::io::split(client);
    let (upstream_read, upstream_write) = tokio::io::split(upstream);
    let up = pump(client_read, upstream_write, to_upstream);
    let down = pump(upstream_read, client_write, to_client);
    // `try_join`: the first failure drops the other direction too.
    let _ = tokio::try_join!(up, down);
}

/// A parsed frame header.
struct FrameHeader {
    first: u8,
    masked: bool,
    mask: [u8; 4],
    len: u64,
    /// Bytes the header took on the wire.
    size: usize,
}

impl FrameHeader {
    fn fin(&self) -> bool {
        self.first & 0x80 != 0
    }
    fn rsv(&self) -> u8 {
        self.first & 0x70
    }
    fn opcode(&self) -> u8 {
        self.first & 0x0f
    }

    /// The payload's length as the peer claims it, capped at what a `usize` holds.
    fn payload_len(&self) -> usize {
        usize::try_from(self.len).unwrap_or(usize::MAX)
    }

    /// Parses a header at the start of `buf`, or `None` if more bytes are needed.
    fn parse(buf: &[u8]) -> Option<Self> {
        let (&first, rest) = buf.split_first()?;
        let (&second, rest) = rest.split_first()?;
        let masked = second & 0x80 != 0;
        let (len, rest, ext) = match second & 0x7f {
            126 => {
                let bytes: [u8; 2] = rest.get(..2)?.try_into().ok()?;
                (u64::from(u16::from_be_bytes(bytes)), rest.get(2..)?, 2)
            }
            127 => {
                let bytes: [u8; 8] = rest.get(..8)?.try_into().ok()?;
                (u64::from_be_bytes(bytes), rest.get(8..)?, 8)
            }
            n => (u64::from(n), rest, 0),
        };
        let mut mask = [0u8; 4];
        if masked {
            mask.copy_from_slice(rest.get(..4)?);
        }
        Some(Self {
            first,
            masked,
            mask,
            len,
            size: 2 + ext + if masked { 4 } else { 0 },
        })
    }

    /// Writes a header for a payload of `len` bytes, keeping FIN, RSV, opcode and mask.
    fn encode(&self, len: usize, out: &mut BytesMut) {
        out.put_u8(self.first);
        let mask_bit = if self.masked { 0x80 } else { 0 };
        match len {
            0..=125 => out.put_u8(mask_bit | len as u8),
            126..=0xffff => {
                out.put_u8(mask_bit | 126);
                out.put_u16(len as u16);
            }
            _ => {
                out.put_u8(mask_bit | 127);
                out.put_u64(len as u64);
            }
        }
        if self.masked {
            out.put_slice(&self.mask);
        }
    }
}

/// Output is gathered and written in one go once this much is pending, or before waiting
/// for input: many small frames then cost one write, not one each.
const WRITE_BATCH: usize = 64 * 1024;

/// One direction's bytes: what was read and not yet handled, what waits to be written, and
/// how much of a frame passed through unopened is still to come.
struct Frames<R, W> {
    reader: R,
    writer: W,
    buf: BytesMut,
    out: BytesMut,
    passing: u64,
}

impl<R: AsyncRead + Unpin, W: AsyncWrite + Unpin> Frames<R, W> {
    fn new(reader: R, writer: W) -> Self {
        Self {
            reader,
            writer,
            buf: BytesMut::with_capacity(16 * 1024),
            out: BytesMut::with_capacity(16 * 1024),
            passing: 0,
        }
    }

    /// Reads more, first sending what is pending (the other side may be waiting for it before
    /// it sends anything); `false` at the end of the input.
    async fn fill(&mut self) -> std::io::Result<bool> {
        self.drain().await?;
        Ok(self.reader.read_buf(&mut self.buf).await? > 0)
    }

    /// Writes and flushes what is pending (a TLS writer may hold a record until flushed).
    async fn drain(&mut self) -> std::io::Result<()> {
        if !self.out.is_empty() {
            self.writer.write_all(&self.out).await?;
            self.out.clear();
        }
        self.writer.flush().await
    }

    /// The next frame's header, once whatever frame passes unopened has gone through; `None`
    /// at the end of the input (a truncated header there goes out as it came).
    async fn next_header(&mut self) -> std::io::Result<Option<FrameHeader>> {
        loop {
            if self.out.len() >= WRITE_BATCH {
                self.drain().await?;
            }
            if self.passing > 0 {
                if self.buf.is_empty() && !self.fill().await? {
                    return Ok(None);
                }
                let take = self
                    .buf
                    .len()
                    .min(usize::try_from(self.passing).unwrap_or(usize::MAX));
                self.out.extend_from_slice(&self.buf.split_to(take));
                self.passing -= take as u64;
                continue;
            }
            if let Some(frame) = FrameHeader::parse(&self.buf) {
                return Ok(Some(frame));
            }
            if !self.fill().await? {
                let rest = self.buf.split();
                self.out.extend_from_slice(&rest);
                return Ok(None);
            }
        }
    }

    /// Sends `frame` on unopened: its header now, its payload as it arrives.
    fn pass(&mut self, frame: &FrameHeader) {
        self.out.extend_from_slice(&self.buf.split_to(frame.size));
        self.passing = frame.len;
    }

    /// The whole of `frame` (header included) once it is here; `None` if the input ends first.
    async fn whole(&mut self, frame: &FrameHeader) -> std::io::Result<Option<BytesMut>> {
        let total = frame.size.saturating_add(frame.payload_len());
        while self.buf.len() < total {
            if !self.fill().await? {
                return Ok(None);
            }
        }
        Ok(Some(self.buf.split_to(total)))
    }

    /// Sends what is pending and ends this direction.
    async fn finish(mut self) -> std::io::Result<()> {
        self.drain().await?;
        self.writer.shutdown().await
    }
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    unmask_from(payload, mask, 0);
}

/// Unmasks bytes that start `offset` bytes into a frame's payload.
fn unmask_from(payload: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[(offset + i) % 4];
    }
}

fn protocol_error(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// One direction: frames from `reader` to `writer`, rewritten as `rewrite` says.
async fn pump<R, W>(mut reader: R, mut writer: W, rewrite: Option<Rewrite>) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match rewrite {
        None => {
            // Nothing to open: plain byte relay.
            tokio::io::copy(&mut reader, &mut writer).await?;
            writer.shutdown().await
        }
        Some(Rewrite::Substitute(subs)) => pump_substituting(reader, writer, &subs).await,
        Some(Rewrite::Scrub(scrubber)) => pump_scrubbing(reader, writer, scrubber).await,
    }
}

/// Client to server: placeholders replaced in whole, uncompressed text frames.
async fn pump_substituting<R, W>(
    reader: R,
    writer: W,
    subs: &[ResolvedSubstitution],
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut io = Frames::new(reader, writer);
    while let Some(frame) = io.next_header().await? {
        let opens = frame.opcode() == OPCODE_TEXT
            && frame.fin()
            && frame.rsv() == 0
            && frame.len <= MAX_REWRITTEN_FRAME;
        if !opens {
            io.pass(&frame);
            continue;
        }
        let Some(mut payload) = io.whole(&frame).await? else {
            // Cut off mid-frame: what came goes out as it came.
            let rest = io.buf.split();
            io.out.extend_from_slice(&rest);
            break;
        };
        payload.advance(frame.size);
        if frame.masked {
            unmask(&mut payload, frame.mask);
        }
        let mut payload = substitute(&payload, subs)?.unwrap_or_else(|| payload.to_vec());
        if frame.masked {
            unmask(&mut payload, frame.mask);
        }
        frame.encode(payload.len(), &mut io.out);
        io.out.put_slice(&payload);
    }
    io.finish().await
}

/// Server to client: every text message scanned as one stream, every control frame's payload
/// scanned; binary messages too, with fillers of the values' own length.
async fn pump_scrubbing<R, W>(reader: R, writer: W, scrubber: Arc<Scrubber>) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut io = Frames::new(reader, writer);
    // The message in progress: its opcode, its scan, and whether a frame of it has gone out.
    let mut message: Option<(u8, BodyScrub, bool)> = None;
    while let Some(frame) = io.next_header().await? {
        if frame.rsv() != 0 {
            return Err(protocol_error(
                "the upstream sent a compressed WebSocket frame, which was not negotiated",
            ));
        }
        let opcode = frame.opcode();
        if opcode >= OPCODE_CLOSE {
            if frame.len > MAX_CONTROL_PAYLOAD as u64 || !frame.fin() {
                return Err(protocol_error(
                    "the upstream sent a malformed control frame",
                ));
            }
            let Some(mut payload) = io.whole(&frame).await? else {
                break;
            };
            payload.advance(frame.size);
            if frame.masked {
                unmask(&mut payload, frame.mask);
            }
            let mut payload = scrub_control(opcode, payload.to_vec(), &scrubber);
            if frame.masked {
                unmask(&mut payload, frame.mask);
            }
            frame.encode(payload.len(), &mut io.out);
            io.out.put_slice(&payload);
            continue;
        }
        // Only frames read as parts of a message are scanned, so whatever does not fit one
        // ends the relay rather than pass unread (RFC 6455 makes each a protocol error).
        match (opcode, message.is_some()) {
            (OPCODE_TEXT | OPCODE_BINARY, true) => {
                return Err(protocol_error(
                    "the upstream began a WebSocket message inside another",
                ));
            }
            (OPCODE_TEXT, false) => {
                message = Some((opcode, BodyScrub::new(scrubber.clone()), false));
            }
            (OPCODE_BINARY, false) => {
                message = Some((opcode, BodyScrub::same_length(scrubber.clone()), false));
            }
            (OPCODE_CONTINUATION, true) => {}
            (OPCODE_CONTINUATION, false) => {
                return Err(protocol_error(
                    "the upstream sent a WebSocket continuation frame outside a message",
                ));
            }
            _ => {
                return Err(protocol_error(
                    "the upstream sent a WebSocket frame of a reserved type",
                ));
            }
        }
        let Some((first_opcode, scan, started)) = message.as_mut() else {
            continue;
        };
        // Saturating: a length near 2^64 is the peer's to claim, never all here.
        let whole = frame.size.saturating_add(frame.payload_len());
        if opcode == OPCODE_TEXT && frame.fin() && io.buf.len() >= whole {
            // The common case, a message in one frame that is all here: scanned at once,
            // with nothing to hold back for a next chunk. (Not the last fragment of a
            // message whose earlier ones sent nothing yet: the scan holds their bytes.)
            let mut payload = io.buf.split_to(whole);
            payload.advance(frame.size);
            if frame.masked {
                unmask(&mut payload, frame.mask);
            }
            let mut clean = match scrubber.replace(&payload) {
                Some(replaced) => BytesMut::from(&replaced[..]),
                None => payload,
            };
            if frame.masked {
                unmask(&mut clean, frame.mask);
            }
            frame.encode(clean.len(), &mut io.out);
            io.out.put_slice(&clean);
            message = None;
            continue;
        }
        io.buf.advance(frame.size);
        // The payload goes through the scan as it arrives: one frame out when it is all
        // here, fragments of the same message when it comes in pieces.
        let mut left = frame.len;
        let mut offset = 0;
        loop {
            if left > 0 && io.buf.is_empty() && !io.fill().await? {
                // Cut off mid-frame: nothing unscanned goes out.
                return io.finish().await;
            }
            let take = io
                .buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let mut chunk = io.buf.split_to(take);
            if frame.masked {
                unmask_from(&mut chunk, frame.mask, offset);
            }
            offset += take;
            left -= take as u64;
            let last = left == 0 && frame.fin();
            let mut ready = scan.push(chunk.freeze());
            if last {
                let held = scan.finish();
                if !held.is_empty() {
                    ready = [ready, held].concat().into();
                }
            }
            if !ready.is_empty() || last {
                let opcode = if *started {
                    OPCODE_CONTINUATION
                } else {
                    *first_opcode
                };
                let header = FrameHeader {
                    first: (if last { 0x80 } else { 0 }) | opcode,
                    ..frame
                };
                header.encode(ready.len(), &mut io.out);
                if frame.masked {
                    let mut masked = ready.to_vec();
                    unmask(&mut masked, frame.mask);
                    io.out.put_slice(&masked);
                } else {
                    io.out.put_slice(&ready);
                }
                *started = true;
            }
            if left == 0 {
                break;
            }
            if io.out.len() >= WRITE_BATCH {
                io.drain().await?;
            }
        }
        if frame.fin() {
            message = None;
        }
    }
    io.finish().await
}

/// A control frame's payload with credential values replaced, kept within 125 bytes: a close
/// frame's 2-byte code stays and its reason is cut on a character boundary.
fn scrub_control(opcode: u8, payload: Vec<u8>, scrubber: &Scrubber) -> Vec<u8> {
    let keep = if opcode == OPCODE_CLOSE && payload.len() >= 2 {
        2
    } else {
        0
    };
    let Some(replaced) = scrubber.replace(&payload[keep..]) else {
        return payload;
    };
    let mut clean = payload[..keep].to_vec();
    clean.extend_from_slice(&replaced);
    let mut end = clean.len().min(MAX_CONTROL_PAYLOAD);
    while keep > 0 && end > keep && end < clean.len() && clean[end] & 0xc0 == 0x80 {
        end -= 1;
    }
    clean.truncate(end);
    clean
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SecretString;

    fn frame(opcode: u8, fin: bool, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let header = FrameHeader {
            first: (if fin { 0x80 } else { 0 }) | opcode,
            masked: mask.is_some(),
            mask: mask.unwrap_or_default(),
            len: payload.len() as u64,
            size: 0,
        };
        let mut out = BytesMut::new();
        header.encode(payload.len(), &mut out);
        let mut body = payload.to_vec();
        if let Some(mask) = mask {
            unmask(&mut body, mask);
        }
        out.put_slice(&body);
        out.to_vec()
    }

    async fn run(input: Vec<u8>, rewrite: Option<Rewrite>) -> Vec<u8> {
        run_in_pieces(input, rewrite, 7).await
    }

    async fn run_in_pieces(input: Vec<u8>, rewrite: Option<Rewrite>, piece: usize) -> Vec<u8> {
        let (mut feed, reader) = tokio::io::duplex(64.max(piece));
        let (writer, mut sink) = tokio::io::duplex(4096);
        let pumping = tokio::spawn(pump(reader, writer, rewrite));
        let draining = tokio::spawn(async move {
            let mut out = Vec::new();
            sink.read_to_end(&mut out).await.unwrap();
            out
        });
        // Fed in small pieces so headers and payloads straddle reads.
        for piece in input.chunks(piece) {
            feed.write_all(piece).await.unwrap();
        }
        drop(feed);
        pumping.await.unwrap().unwrap();
        draining.await.unwrap()
    }

    /// RFC 6455 section 1.3's example key and accept value.
    #[test]
    fn accept_value_is_checked_against_the_key() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let mut headers = HeaderMap::new();
        assert!(!accepts(&headers, key), "a 101 without the header");
        headers.insert(
            header::SEC_WEBSOCKET_ACCEPT,
            HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        );
        assert!(accepts(&headers, key));
        assert!(!accepts(&headers, "AAAAAAAAAAAAAAAAAAAAAA=="));
    }

    #[test]
    fn extended_connect_becomes_an_http1_upgrade() {
        let connect = |protocol: Option<&'static str>| {
            let mut request = http::Request::builder()
                .method(Method::CONNECT)
                .uri("https://api.example.com/chat")
                .body(())
                .unwrap();
            if let Some(protocol) = protocol {
                request
                    .extensions_mut()
                    .insert(hyper::ext::Protocol::from_static(protocol));
            }
            request.into_parts().0
        };
        assert_eq!(Opening::of(&connect(None)), None, "a plain CONNECT");
        assert_eq!(Opening::of(&connect(Some("connect-udp"))), None);
        let mut parts = connect(Some("websocket"));
        assert_eq!(Opening::of(&parts), Some(Opening::ExtendedConnect));
        let key = connect_to_upgrade(&mut parts);
        assert_eq!(parts.method, Method::GET);
        assert!(parts.extensions.get::<hyper::ext::Protocol>().is_none());
        assert_eq!(parts.headers[header::SEC_WEBSOCKET_KEY], key.as_str());
        assert_eq!(parts.headers[header::SEC_WEBSOCKET_VERSION], "13");
        assert_eq!(
            base64::engine::general_purpose::STANDARD
                .decode(&key)
                .unwrap()
                .len(),
            16
        );
        assert_ne!(key, connect_to_upgrade(&mut connect(Some("websocket"))));
    }

    fn substitution() -> Rewrite {
        Rewrite::Substitute(Arc::new(vec![ResolvedSubstitution {
            placeholder: "__token__".into(),
            value: SecretString::from("se\"cret"),
            surfaces: vec![Surface::Ws],
        }]))
    }

    #[test]
    fn a_frame_its_substitutions_would_swell_ends_the_connection() {
        let subs = [ResolvedSubstitution {
            placeholder: "__token__".into(),
            value: SecretString::from("v".repeat(64 * 1024).as_str()),
            surfaces: vec![Surface::Ws],
        }];
        let fits = "__token__".repeat(32);
        assert_eq!(
            substitute(fits.as_bytes(), &subs).unwrap().map(|v| v.len()),
            Some(MAX_SUBSTITUTED_FRAME)
        );
        let swells = "__token__".repeat(33);
        let err = substitute(swells.as_bytes(), &subs).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn text_frames_are_rewritten_and_others_pass() {
        let mask = Some([1, 2, 3, 4]);
        let long = "x".repeat(200);
        let input = [
            frame(
                OPCODE_TEXT,
                true,
                mask,
                br#"{"op":2,"d":{"token":"__token__"}}"#,
            ),
            frame(OPCODE_TEXT, true, mask, b"raw __token__"),
            frame(2, true, mask, b"binary __token__"),
            frame(9, true, mask, b"ping"),
            frame(OPCODE_TEXT, false, mask, b"fragment __token__"),
            frame(
                OPCODE_TEXT,
                true,
                mask,
                format!("{long}__token__").as_bytes(),
            ),
            frame(8, true, mask, b"\x03\xe8"),
        ]
        .concat();
        let out = run(input, Some(substitution())).await;
        let expected = [
            frame(
                OPCODE_TEXT,
                true,
                mask,
                br#"{"op":2,"d":{"token":"se\"cret"}}"#,
            ),
            frame(OPCODE_TEXT, true, mask, b"raw se\"cret"),
            frame(2, true, mask, b"binary __token__"),
            frame(9, true, mask, b"ping"),
            frame(OPCODE_TEXT, false, mask, b"fragment __token__"),
            // 209 bytes: the length switches to the 16-bit form, the mask is kept.
            frame(
                OPCODE_TEXT,
                true,
                mask,
                format!("{long}se\"cret").as_bytes(),
            ),
            frame(8, true, mask, b"\x03\xe8"),
        ]
        .concat();
        assert_eq!(out, expected);
    }

    /// The messages and control frames in `wire`, in order: (opcode, unmasked payload), a
    /// fragmented message joined; checks that every frame is well formed.
    fn messages(wire: &[u8]) -> Vec<(u8, Vec<u8>)> {
        let mut buf = BytesMut::from(wire);
        let mut all = Vec::new();
        let mut open: Option<(u8, Vec<u8>)> = None;
        while let Some(frame) = FrameHeader::parse(&buf) {
            assert_eq!(frame.rsv(), 0);
            let mut payload = buf.split_to(frame.size + frame.len as usize);
            payload.advance(frame.size);
            if frame.masked {
                unmask(&mut payload, frame.mask);
            }
            if frame.opcode() >= OPCODE_CLOSE {
                assert!(payload.len() <= MAX_CONTROL_PAYLOAD && frame.fin());
                all.push((frame.opcode(), payload.to_vec()));
                continue;
            }
            match (&mut open, frame.opcode()) {
                (None, OPCODE_CONTINUATION) => panic!("a continuation without a message"),
                (None, opcode) => open = Some((opcode, payload.to_vec())),
                (Some((_, data)), OPCODE_CONTINUATION) => data.extend_from_slice(&payload),
                (Some(_), _) => panic!("a new message inside a fragmented one"),
            }
            if frame.fin() {
                all.extend(open.take());
            }
        }
        assert!(buf.is_empty() && open.is_none(), "a frame left incomplete");
        all
    }

    fn scrub() -> Rewrite {
        Rewrite::Scrub(Arc::new(Scrubber::new(["sk-live-123456"], []).unwrap()))
    }

    #[tokio::test]
    async fn every_text_message_and_control_payload_is_scrubbed() {
        use crate::broker::scrub::MARKER;
        let mut big = vec![b'a'; (MAX_REWRITTEN_FRAME + 10) as usize];
        big.extend_from_slice(b"sk-live-123456");
        let mut close = b"\x03\xe8bye ".to_vec();
        close.extend_from_slice(b"sk-live-123456");
        close.extend_from_slice("é".repeat(50).as_bytes());
        let input = [
            frame(OPCODE_TEXT, true, None, b"you sent sk-live-123456"),
            // A secret split across fragments, a ping (with one) between them.
            frame(OPCODE_TEXT, false, None, b"key sk-li"),
            frame(9, true, None, b"ping sk-live-123456"),
            frame(OPCODE_CONTINUATION, true, None, b"ve-123456 end"),
            frame(OPCODE_TEXT, true, None, &big),
            frame(2, true, None, b"binary sk-live-123456"),
            frame(
                OPCODE_TEXT,
                true,
                Some([9, 8, 7, 6]),
                b"masked sk-live-123456",
            ),
            frame(OPCODE_CLOSE, true, None, &close),
        ]
        .concat();
        let got = messages(&run(input, Some(scrub())).await);
        let mut big_clean = vec![b'a'; (MAX_REWRITTEN_FRAME + 10) as usize];
        big_clean.extend_from_slice(MARKER.as_bytes());
        let text = |s: String| (OPCODE_TEXT, s.into_bytes());
        assert_eq!(got[0], text(format!("you sent {MARKER}")));
        assert_eq!(got[1], (9, format!("ping {MARKER}").into_bytes()));
        assert_eq!(got[2], text(format!("key {MARKER} end")));
        assert!(got[3] == (OPCODE_TEXT, big_clean), "the large frame");
        assert_eq!(
            got[4],
            (2, b"binary [agent-vault:r".to_vec()),
            "binary keeps its length"
        );
        assert_eq!(got[5], text(format!("masked {MARKER}")));
        let (opcode, close) = &got[6];
        assert_eq!(*opcode, OPCODE_CLOSE);
        assert_eq!(&close[..2], b"\x03\xe8", "the close code stays");
        let reason = std::str::from_utf8(&close[2..]).expect("cut on a character boundary");
        assert!(reason.starts_with(&format!("bye {MARKER}é")), "{reason}");
        assert_eq!(got.len(), 7);
    }

    #[tokio::test]
    async fn whole_frames_are_scrubbed_at_once_and_keep_their_shape() {
        use crate::broker::scrub::MARKER;
        let input = [
            frame(OPCODE_TEXT, true, None, b"you sent sk-live-123456"),
            frame(
                OPCODE_TEXT,
                true,
                Some([1, 2, 3, 4]),
                b"and sk-live-123456 again",
            ),
            frame(OPCODE_TEXT, true, None, b"nothing here"),
        ]
        .concat();
        let out = run_in_pieces(input.clone(), Some(scrub()), input.len()).await;
        let expected = [
            frame(
                OPCODE_TEXT,
                true,
                None,
                format!("you sent {MARKER}").as_bytes(),
            ),
            frame(
                OPCODE_TEXT,
                true,
                Some([1, 2, 3, 4]),
                format!("and {MARKER} again").as_bytes(),
            ),
            frame(OPCODE_TEXT, true, None, b"nothing here"),
        ]
        .concat();
        assert_eq!(out, expected, "one frame out for each whole frame in");
    }

    #[tokio::test]
    async fn a_compressed_frame_from_the_upstream_ends_the_relay() {
        let (mut feed, reader) = tokio::io::duplex(64);
        let (writer, _sink) = tokio::io::duplex(4096);
        let mut compressed = frame(OPCODE_TEXT, true, None, b"deflated");
        compressed[0] |= 0x40;
        feed.write_all(&compressed).await.unwrap();
        drop(feed);
        let ended = pump(reader, writer, Some(scrub())).await;
        assert_eq!(ended.unwrap_err().kind(), std::io::ErrorKind::InvalidData);
    }

    /// Frames that fit no message would pass unscanned: each ends the relay, and nothing of
    /// the secret they carry goes out.
    #[tokio::test]
    async fn frames_outside_a_message_end_the_relay() {
        let secret = b"sk-live-123456";
        let cases = [
            ("reserved type", frame(3, true, None, secret)),
            (
                "orphan continuation",
                frame(OPCODE_CONTINUATION, true, None, secret),
            ),
            (
                "a message inside another",
                [
                    frame(OPCODE_TEXT, false, None, b"a"),
                    frame(OPCODE_TEXT, true, None, secret),
                ]
                .concat(),
            ),
            (
                "a continuation after a reserved frame",
                [
                    frame(OPCODE_TEXT, false, None, b"a"),
                    frame(5, true, None, b"b"),
                    frame(OPCODE_CONTINUATION, true, None, secret),
                ]
                .concat(),
            ),
        ];
        for (case, input) in cases {
            let (ended, out) = pump_all(input, scrub(), 7).await;
            let err = ended.expect_err(case);
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidData, "{case}");
            assert!(memchr::memmem::find(&out, secret).is_none(), "{case}");
        }
    }

    #[tokio::test]
    async fn a_last_fragment_completes_what_the_scan_held_back() {
        use crate::broker::scrub::MARKER;
        // The first fragment is all a possible start of the secret, so nothing of it goes
        // out before the last one, which arrives whole.
        let input = [
            frame(OPCODE_TEXT, false, None, b"sk-live-1234"),
            frame(OPCODE_CONTINUATION, true, None, b"56 tail"),
        ]
        .concat();
        let out = run_in_pieces(input.clone(), Some(scrub()), input.len()).await;
        assert_eq!(
            messages(&out),
            [(OPCODE_TEXT, format!("{MARKER} tail").into_bytes())]
        );
    }

    #[tokio::test]
    async fn a_text_frame_claiming_an_impossible_length_is_cut_off_not_a_panic() {
        // 2^64 - 1 bytes: the header's size plus that overflowed when checked for the
        // one-frame fast path, and the payload was then split before its header's end.
        let mut input = vec![0x81, 127];
        input.extend_from_slice(&u64::MAX.to_be_bytes());
        input.extend_from_slice(b"sk-live-123456 and more");
        let out = run_in_pieces(input.clone(), Some(scrub()), input.len()).await;
        assert!(
            !String::from_utf8_lossy(&out).contains("sk-live-123456"),
            "nothing unscanned goes out"
        );
    }

    #[tokio::test]
    async fn unscrubbed_bytes_pass_as_they_are() {
        assert_eq!(run(b"plain bytes".to_vec(), None).await, b"plain bytes");
    }

    /// Every frame of `input` through `pump`, fed `piece` bytes at a time: what it ended with
    /// and what it wrote. Unlike [`run_in_pieces`], a pump that stops early is an answer.
    async fn pump_all(
        input: Vec<u8>,
        rewrite: Rewrite,
        piece: usize,
    ) -> (std::io::Result<()>, Vec<u8>) {
        let (mut feed, reader) = tokio::io::duplex(64.max(piece));
        let (writer, mut sink) = tokio::io::duplex(4096);
        let pumping = tokio::spawn(pump(reader, writer, Some(rewrite)));
        let draining = tokio::spawn(async move {
            let mut out = Vec::new();
            let _ = sink.read_to_end(&mut out).await;
            out
        });
        for piece in input.chunks(piece) {
            if feed.write_all(piece).await.is_err() {
                break;
            }
        }
        drop(feed);
        (pumping.await.unwrap(), draining.await.unwrap())
    }

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(future)
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Text made of the secret, pieces of it and filler, so that it falls across
        /// fragments and reads in every way.
        fn text() -> impl Strategy<Value = Vec<u8>> {
            let piece = prop_oneof![
                Just(b"sk-live-123456".to_vec()),
                Just(b"sk-li".to_vec()),
                Just(b"ve-123456".to_vec()),
                Just("é".as_bytes().to_vec()),
                prop::collection::vec(b'a'..=b'z', 0..40),
            ];
            prop::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
        }

        /// A message as a sender frames it: its opcode (text, binary or ping), its payload,
        /// where the payload is cut into fragments, whether a ping goes between them, and
        /// the mask.
        #[derive(Debug, Clone)]
        struct Message {
            opcode: u8,
            payload: Vec<u8>,
            cuts: Vec<usize>,
            ping_between: bool,
            mask: Option<[u8; 4]>,
        }

        fn message() -> impl Strategy<Value = Message> {
            (
                prop_oneof![Just(OPCODE_TEXT), Just(2u8), Just(9u8)],
                text(),
                prop::collection::vec(any::<usize>(), 0..4),
                any::<bool>(),
                any::<Option<[u8; 4]>>(),
            )
                .prop_map(|(opcode, mut payload, cuts, ping_between, mask)| {
                    if opcode == 9 {
                        payload.truncate(MAX_CONTROL_PAYLOAD);
                    }
                    Message {
                        opcode,
                        payload,
                        cuts,
                        ping_between,
                        mask,
                    }
                })
        }

        const PING: &[u8] = b"between";

        impl Message {
            fn wire(&self) -> Vec<u8> {
                if self.opcode == 9 {
                    return frame(9, true, self.mask, &self.payload);
                }
                let mut cuts: Vec<usize> = self
                    .cuts
                    .iter()
                    .map(|c| c % (self.payload.len() + 1))
                    .collect();
                cuts.sort_unstable();
                let mut bounds = vec![0];
                bounds.extend(cuts);
                bounds.push(self.payload.len());
                let last = bounds.len() - 2;
                let mut out = Vec::new();
                for (i, pair) in bounds.windows(2).enumerate() {
                    let opcode = if i == 0 {
                        self.opcode
                    } else {
                        OPCODE_CONTINUATION
                    };
                    out.extend(frame(
                        opcode,
                        i == last,
                        self.mask,
                        &self.payload[pair[0]..pair[1]],
                    ));
                    if self.ping_between && i < last {
                        out.extend(frame(9, true, self.mask, PING));
                    }
                }
                out
            }

            /// What the client must get, in order: the pings sent between fragments, then
            /// the message with its text scrubbed.
            fn expected(&self, scrubber: &Arc<Scrubber>) -> Vec<(u8, Vec<u8>)> {
                let scrubbed = || {
                    scrubber
                        .replace(&self.payload)
                        .unwrap_or(self.payload.clone())
                };
                let mut out = Vec::new();
                if self.opcode != 9 && self.ping_between {
                    let fragments = self.cuts.len() + 1;
                    out.extend(std::iter::repeat_n((9, PING.to_vec()), fragments - 1));
                }
                out.push(match self.opcode {
                    OPCODE_TEXT => (self.opcode, scrubbed()),
                    9 => (9, scrub_control(9, self.payload.clone(), scrubber)),
                    _ => {
                        let mut scan = BodyScrub::same_length(scrubber.clone());
                        let mut payload = scan.push(self.payload.clone().into()).to_vec();
                        payload.extend_from_slice(&scan.finish());
                        (self.opcode, payload)
                    }
                });
                out
            }
        }

        proptest! {
            /// Whatever the framing and however the bytes arrive, the client gets the same
            /// messages with every payload scrubbed (a binary one keeping its length).
            #[test]
            fn scrubbing_keeps_messages_and_removes_the_secret(
                sent in prop::collection::vec(message(), 1..6),
                piece in 1usize..200,
            ) {
                let scrubber = Arc::new(Scrubber::new(["sk-live-123456"], []).unwrap());
                let wire: Vec<u8> = sent.iter().flat_map(Message::wire).collect();
                let (ended, out) = block_on(pump_all(wire, scrub(), piece));
                prop_assert!(ended.is_ok(), "{ended:?}");
                let expected: Vec<_> = sent.iter().flat_map(|m| m.expected(&scrubber)).collect();
                prop_assert_eq!(messages(&out), expected);
            }

            /// Any bytes at all, in either direction: the relay ends (with an error or not)
            /// and never panics, whatever lengths the headers claim.
            #[test]
            fn any_bytes_end_the_relay_without_a_panic(
                mut input in prop::collection::vec(any::<u8>(), 0..400),
                huge_length in any::<bool>(),
                piece in 1usize..100,
            ) {
                if huge_length && input.len() >= 10 {
                    input[1] |= 127;
                    input[2..10].copy_from_slice(&u64::MAX.to_be_bytes());
                }
                for rewrite in [scrub(), substitution()] {
                    let _ = block_on(pump_all(input.clone(), rewrite, piece));
                }
            }
        }
    }

    #[test]
    fn upgrade_detection() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, Upgrade".parse().unwrap());
        h.insert(header::UPGRADE, "WebSocket".parse().unwrap());
        assert!(is_upgrade(&h));
        h.insert(header::UPGRADE, "h2c".parse().unwrap());
        assert!(!is_upgrade(&h));
    }
}
