//! A response body passed through the broker's [`BodyScrub`]: data frames are scanned as
//! they arrive and forwarded at once (less a possible partial secret at the end of a chunk);
//! trailers (scrubbed too) and the end of the body flush what was held back.
//!
//! A body the upstream compressed although the broker asked for none is decoded first
//! ([`Inflate`]: gzip and deflate) and goes to the agent decoded: a compressed body cannot be
//! scanned, and passing it on would hand a reflected credential to the agent.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use flate2::write::{DeflateDecoder, MultiGzDecoder, ZlibDecoder};
use hyper::body::{Body, Frame, SizeHint};

use super::upstream::{BoxError, ProxyBody};
use crate::broker::scrub::BodyScrub;

/// Compressed input is decoded this much at a time, so that one chunk of a highly
/// compressed body (deflate reaches about 1000:1) never becomes one large allocation.
const INFLATE_STEP: usize = 1024;

/// The decoder of a compressed response body; for `deflate`, `None` until its first two
/// bytes tell zlib (what RFC 9110 means) from the raw deflate some servers send.
pub struct Inflate(Option<Decoder>);

enum Decoder {
    Gzip(MultiGzDecoder<Vec<u8>>),
    Zlib(ZlibDecoder<Vec<u8>>),
    Raw(DeflateDecoder<Vec<u8>>),
}

impl Decoder {
    fn write(&mut self, input: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Gzip(d) => d.write(input),
            Self::Zlib(d) => d.write(input),
            Self::Raw(d) => d.write(input),
        }
    }

    fn try_finish(&mut self) -> std::io::Result<()> {
        match self {
            Self::Gzip(d) => d.try_finish(),
            Self::Zlib(d) => d.try_finish(),
            Self::Raw(d) => d.try_finish(),
        }
    }

    fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(match self {
            Self::Gzip(d) => d.get_mut(),
            Self::Zlib(d) => d.get_mut(),
            Self::Raw(d) => d.get_mut(),
        })
    }
}

impl Inflate {
    /// For a `Content-Encoding` the broker can decode: `gzip` (or `x-gzip`) or `deflate`.
    pub fn for_encoding(encoding: &[u8]) -> Option<Self> {
        let encoding = std::str::from_utf8(encoding).ok()?.trim();
        if encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip") {
            Some(Self(Some(Decoder::Gzip(MultiGzDecoder::new(Vec::new())))))
        } else {
            encoding
                .eq_ignore_ascii_case("deflate")
                .then_some(Self(None))
        }
    }

    /// Decodes the start of `input`: how much it took (0 when it needs more than there is)
    /// and what came out.
    fn feed(&mut self, input: &[u8]) -> std::io::Result<(usize, Vec<u8>)> {
        let input = &input[..input.len().min(INFLATE_STEP)];
        let decoder = match &mut self.0 {
            Some(decoder) => decoder,
            None => {
                let [first, second, ..] = *input else {
                    return Ok((0, Vec::new()));
                };
                let zlib =
                    first & 0x0f == 8 && (u16::from(first) << 8 | u16::from(second)) % 31 == 0;
                self.0.insert(if zlib {
                    Decoder::Zlib(ZlibDecoder::new(Vec::new()))
                } else {
                    Decoder::Raw(DeflateDecoder::new(Vec::new()))
                })
            }
        };
        let taken = decoder.write(input)?;
        if taken == 0 && !input.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "data after the end of the compressed body",
            ));
        }
        Ok((taken, decoder.take_output()))
    }

    /// What is left once the input has ended; an error if the stream was cut short.
    fn finish(&mut self) -> std::io::Result<Vec<u8>> {
        match &mut self.0 {
            Some(decoder) => {
                decoder.try_finish()?;
                Ok(decoder.take_output())
            }
            None => Ok(Vec::new()),
        }
    }
}

pub struct ScrubbedBody {
    /// A frame already read from `inner`, taken first.
    first: Option<Result<Frame<Bytes>, BoxError>>,
    inner: ProxyBody,
    /// For a compressed body: its decoder, and what came that it has not taken yet.
    inflate: Option<(Inflate, BytesMut)>,
    scrub: BodyScrub,
    /// `inner` has ended (its trailers, if any, wait here until the data is out).
    input_done: bool,
    trailers: Option<http::HeaderMap>,
    /// Everything but the trailers is out.
    done: bool,
}

impl ScrubbedBody {
    pub fn new(
        first: Option<Result<Frame<Bytes>, BoxError>>,
        inner: ProxyBody,
        scrub: BodyScrub,
    ) -> Self {
        Self {
            first,
            inner,
            inflate: None,
            scrub,
            input_done: false,
            trailers: None,
            done: false,
        }
    }

    /// A body compressed by the upstream: decoded, then scanned.
    pub fn inflating(inner: ProxyBody, inflate: Inflate, scrub: BodyScrub) -> Self {
        Self {
            inflate: Some((inflate, BytesMut::new())),
            ..Self::new(None, inner, scrub)
        }
    }

    /// The next piece of decoded data, if compressed input is waiting and is enough.
    fn decode_pending(&mut self) -> Result<Option<Bytes>, BoxError> {
        let Some((inflate, pending)) = self.inflate.as_mut().filter(|(_, p)| !p.is_empty()) else {
            return Ok(None);
        };
        let (taken, out) = inflate.feed(pending)?;
        if taken == 0 {
            if self.input_done {
                return Err("the compressed body was cut short".into());
            }
            return Ok(None);
        }
        pending.advance(taken);
        Ok(Some(Bytes::from(out)))
    }
}

impl Body for ScrubbedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        loop {
            if this.done {
                return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t))));
            }
            match this.decode_pending() {
                Err(e) => return Poll::Ready(Some(Err(e))),
                Ok(Some(decoded)) => {
                    let ready = this.scrub.push(decoded);
                    if !ready.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(ready))));
                    }
                    continue;
                }
                Ok(None) => {}
            }
            if this.input_done {
                // All input taken: the decoder's last bytes, then what the scan held back.
                let last = match this.inflate.as_mut().map(|(inflate, _)| inflate.finish()) {
                    Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                    Some(Ok(last)) => this.scrub.push(Bytes::from(last)),
                    None => Bytes::new(),
                };
                this.done = true;
                let held = [last, this.scrub.finish()].concat();
                if !held.is_empty() {
                    return Poll::Ready(Some(Ok(Frame::data(held.into()))));
                }
                continue;
            }
            let next = match this.first.take() {
                Some(first) => Some(first),
                None => ready!(Pin::new(&mut this.inner).poll_frame(cx)),
            };
            match next {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
                        if let Some((_, pending)) = &mut this.inflate {
                            pending.extend_from_slice(&data);
                            continue;
                        }
                        let ready = this.scrub.push(data);
                        if !ready.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(ready))));
                        }
                    }
                    Err(frame) => {
                        this.trailers = frame.into_trailers().ok().map(|mut trailers| {
                            this.scrub.scrubber().scrub_headers(&mut trailers);
                            trailers
                        });
                        this.input_done = true;
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => this.input_done = true,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.trailers.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // Text replacements change the length (a binary scan keeps it, and so does the
        // response's Content-Length header).
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use http_body_util::{BodyExt, StreamBody};

    use super::*;
    use crate::broker::scrub::Scrubber;

    #[tokio::test]
    async fn a_frame_read_ahead_is_scanned_with_the_rest() {
        let scrubber = Arc::new(Scrubber::new(["sk-SECRET-123"], []).unwrap());
        let rest = futures_util::stream::iter([
            Ok::<_, BoxError>(Frame::data(Bytes::from("123 and"))),
            Ok(Frame::data(Bytes::from(" sk-SECRET-123."))),
        ]);
        let first = Some(Ok(Frame::data(Bytes::from("key sk-SECRET-"))));
        let body = ScrubbedBody::new(
            first,
            StreamBody::new(rest).boxed_unsync(),
            BodyScrub::new(scrubber),
        );
        let text = body.collect().await.unwrap().to_bytes();
        let marker = crate::broker::scrub::MARKER;
        assert_eq!(text, format!("key {marker} and {marker}."));
    }
    fn compress(kind: &str, data: &[u8]) -> Vec<u8> {
        use flate2::Compression;
        use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
        match kind {
            "gzip" => {
                let mut e = GzEncoder::new(Vec::new(), Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            "zlib" => {
                let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            _ => {
                let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }

    /// `wire` in chunks cut at `cuts`, as an upstream body.
    fn chunked(wire: &[u8], cuts: &[usize]) -> ProxyBody {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        cuts.sort_unstable();
        let mut frames = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([wire.len()]) {
            frames.push(Ok::<_, BoxError>(Frame::data(Bytes::copy_from_slice(
                &wire[from..cut],
            ))));
            from = cut;
        }
        StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    }

    async fn inflated(encoding: &str, wire: &[u8], cuts: &[usize]) -> Result<Bytes, BoxError> {
        let scrubber = Arc::new(Scrubber::new(["sk-SECRET-123"], []).unwrap());
        let inflate = Inflate::for_encoding(encoding.as_bytes()).unwrap();
        let body = ScrubbedBody::inflating(chunked(wire, cuts), inflate, BodyScrub::new(scrubber));
        Ok(body.collect().await?.to_bytes())
    }

    #[tokio::test]
    async fn compressed_bodies_are_decoded_then_scrubbed() {
        let marker = crate::broker::scrub::MARKER;
        let plain = "x".repeat(5000) + "key sk-SECRET-123 end";
        let expected = "x".repeat(5000) + &format!("key {marker} end");
        for (encoding, kind) in [
            ("gzip", "gzip"),
            ("X-Gzip", "gzip"),
            ("deflate", "zlib"),
            ("deflate", "raw"),
        ] {
            let wire = compress(kind, plain.as_bytes());
            for cuts in [vec![], vec![1], vec![1, 2, 3, 700]] {
                let out = inflated(encoding, &wire, &cuts).await.unwrap();
                assert_eq!(out, expected, "{encoding} ({kind}) cut at {cuts:?}");
            }
        }
        // Two gzip members, as some servers send: both decoded.
        let two = [
            compress("gzip", b"one sk-SECRET-"),
            compress("gzip", b"123 two"),
        ]
        .concat();
        assert_eq!(
            inflated("gzip", &two, &[]).await.unwrap(),
            format!("one {marker} two")
        );
        assert!(Inflate::for_encoding(b"br").is_none());
        assert!(Inflate::for_encoding(b"gzip, br").is_none());
    }

    #[tokio::test]
    async fn broken_compressed_bodies_end_in_an_error() {
        let wire = compress("gzip", b"some text sk-SECRET-123");
        let cut_short = &wire[..wire.len() - 6];
        assert!(inflated("gzip", cut_short, &[]).await.is_err(), "cut short");
        let trailing = [&wire[..], b"garbage"].concat();
        assert!(
            inflated("gzip", &trailing, &[]).await.is_err(),
            "data after the end"
        );
        assert!(
            inflated("deflate", b"\x78", &[]).await.is_err(),
            "one byte of deflate"
        );
        assert!(
            inflated("gzip", b"not gzip at all", &[]).await.is_err(),
            "not gzip"
        );
    }

    #[tokio::test]
    async fn a_highly_compressed_body_comes_out_in_bounded_frames() {
        let wire = compress("gzip", &vec![b'a'; 8 << 20]);
        let scrubber = Arc::new(Scrubber::new(["sk-SECRET-123"], []).unwrap());
        let inflate = Inflate::for_encoding(b"gzip").unwrap();
        // The whole compressed body in one chunk.
        let mut body =
            ScrubbedBody::inflating(chunked(&wire, &[]), inflate, BodyScrub::new(scrubber));
        let (mut total, mut largest) = (0, 0);
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            total += data.len();
            largest = largest.max(data.len());
        }
        assert_eq!(total, 8 << 20);
        assert!(largest <= 1100 * INFLATE_STEP, "a frame of {largest} bytes");
    }
}
