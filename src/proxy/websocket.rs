//! WebSockets through the broker: the upgrade request is an ordinary request (credential
//! injected, placeholders replaced), sent upstream on an HTTP/1.1 connection of its own; on
//! `101 Switching Protocols` both sides are upgraded and frames are relayed until either
//! side closes. An HTTP/2 agent opens one with an extended CONNECT (RFC 8441, `:protocol
//! websocket`): the broker sends the upstream the HTTP/1.1 upgrade it expects and answers the
//! agent `200`, and the HTTP/2 stream carries the same frames.
//!
//! Frames pass through untouched — ping, pong, close and binary frames included — and are
//! forwarded as they arrive, each write awaited, so a slow reader slows the writer
//! (back-pressure) instead of filling memory. Only when a service asks for it is a frame
//! opened: client-to-server text frames get placeholder substitution (surface `ws`), and
//! server-to-client text frames get response scrubbing. Such frames must be whole (FIN set),
//! uncompressed (no RSV1; the broker removes `Sec-WebSocket-Extensions` from the upgrade so
//! permessage-deflate is not negotiated) and at most [`MAX_REWRITTEN_FRAME`] bytes; anything
//! else passes unchanged.

use std::sync::Arc;

use base64::Engine;
use bytes::{Buf, BufMut, BytesMut};
use http::{HeaderMap, HeaderValue, Method, header};
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::broker::ResolvedSubstitution;
use crate::broker::scrub::Scrubber;
use crate::services::Surface;

/// Frames larger than this are relayed without being opened.
pub const MAX_REWRITTEN_FRAME: u64 = 1024 * 1024;

const OPCODE_TEXT: u8 = 1;

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

impl Rewrite {
    fn apply(&self, text: &[u8]) -> Option<Vec<u8>> {
        match self {
            Self::Scrub(scrubber) => scrubber.replace(text),
            Self::Substitute(subs) => {
                let json = text
                    .iter()
                    .find(|b| !b.is_ascii_whitespace())
                    .is_some_and(|b| *b == b'{' || *b == b'[');
                let content_type = json.then_some("application/json");
                let replaced =
                    crate::broker::rewrite::rewrite_text(Surface::Ws, text, content_type, subs);
                (replaced != text).then_some(replaced)
            }
        }
    }
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

/// Writes and flushes what is pending (a TLS writer may hold a record until flushed).
async fn drain<W: AsyncWrite + Unpin>(writer: &mut W, out: &mut BytesMut) -> std::io::Result<()> {
    if !out.is_empty() {
        writer.write_all(out).await?;
        out.clear();
    }
    writer.flush().await
}

/// Reads more into `buf`, first sending what is pending: the other side may be waiting for
/// it before it sends anything.
async fn fill<R, W>(
    reader: &mut R,
    writer: &mut W,
    buf: &mut BytesMut,
    out: &mut BytesMut,
) -> std::io::Result<usize>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    drain(writer, out).await?;
    reader.read_buf(buf).await
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// One direction: frames from `reader` to `writer`, rewriting text frames with `rewrite`.
async fn pump<R, W>(mut reader: R, mut writer: W, rewrite: Option<Rewrite>) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Some(rewrite) = rewrite else {
        // Nothing to open: plain byte relay.
        tokio::io::copy(&mut reader, &mut writer).await?;
        return writer.shutdown().await;
    };
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    // Payload bytes of a frame being passed through unopened.
    let mut passing: u64 = 0;
    loop {
        if out.len() >= WRITE_BATCH {
            drain(&mut writer, &mut out).await?;
        }
        if passing > 0 {
            if buf.is_empty() && fill(&mut reader, &mut writer, &mut buf, &mut out).await? == 0 {
                break;
            }
            let take = buf
                .len()
                .min(usize::try_from(passing).unwrap_or(usize::MAX));
            out.extend_from_slice(&buf.split_to(take));
            passing -= take as u64;
            continue;
        }
        let Some(frame) = FrameHeader::parse(&buf) else {
            if fill(&mut reader, &mut writer, &mut buf, &mut out).await? == 0 {
                // A truncated header at the end goes out as it came.
                out.extend_from_slice(&buf);
                break;
            }
            continue;
        };
        let opens = frame.opcode() == OPCODE_TEXT
            && frame.fin()
            && frame.rsv() == 0
            && frame.len <= MAX_REWRITTEN_FRAME;
        if !opens {
            out.extend_from_slice(&buf.split_to(frame.size));
            passing = frame.len;
            continue;
        }
        let total = frame.size + frame.len as usize;
        while buf.len() < total {
            if fill(&mut reader, &mut writer, &mut buf, &mut out).await? == 0 {
                out.extend_from_slice(&buf);
                drain(&mut writer, &mut out).await?;
                return writer.shutdown().await;
            }
        }
        let mut payload = buf.split_to(total);
        payload.advance(frame.size);
        if frame.masked {
            unmask(&mut payload, frame.mask);
        }
        match rewrite.apply(&payload) {
            Some(mut replaced) => {
                if frame.masked {
                    unmask(&mut replaced, frame.mask);
                }
                frame.encode(replaced.len(), &mut out);
                out.put_slice(&replaced);
            }
            None => {
                if frame.masked {
                    unmask(&mut payload, frame.mask);
                }
                frame.encode(payload.len(), &mut out);
                out.put_slice(&payload);
            }
        }
    }
    drain(&mut writer, &mut out).await?;
    writer.shutdown().await
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
        let (mut feed, reader) = tokio::io::duplex(64);
        let (writer, mut sink) = tokio::io::duplex(4096);
        let pumping = tokio::spawn(pump(reader, writer, rewrite));
        let draining = tokio::spawn(async move {
            let mut out = Vec::new();
            sink.read_to_end(&mut out).await.unwrap();
            out
        });
        // Fed in small pieces so headers and payloads straddle reads.
        for piece in input.chunks(7) {
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

    #[tokio::test]
    async fn server_text_is_scrubbed_and_large_frames_pass_unopened() {
        let scrub = Rewrite::Scrub(Arc::new(Scrubber::new(["sk-live-123456"], []).unwrap()));
        let big = vec![b'a'; (MAX_REWRITTEN_FRAME + 10) as usize];
        let input = [
            frame(OPCODE_TEXT, true, None, b"you sent sk-live-123456"),
            frame(OPCODE_TEXT, true, None, &big),
        ]
        .concat();
        let out = run(input, Some(scrub)).await;
        let expected = [
            frame(
                OPCODE_TEXT,
                true,
                None,
                format!("you sent {}", crate::broker::scrub::MARKER).as_bytes(),
            ),
            frame(OPCODE_TEXT, true, None, &big),
        ]
        .concat();
        assert_eq!(out, expected);
        assert_eq!(run(b"plain bytes".to_vec(), None).await, b"plain bytes");
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
