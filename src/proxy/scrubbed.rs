//! A response body passed through the broker's [`BodyScrub`]: data frames are scanned as
//! they arrive and forwarded at once (less a possible partial secret at the end of a chunk);
//! trailers (scrubbed too) and the end of the body flush what was held back.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use super::upstream::{BoxError, ProxyBody};
use crate::broker::scrub::BodyScrub;

pub struct ScrubbedBody {
    /// A frame already read from `inner`, taken first.
    first: Option<Result<Frame<Bytes>, BoxError>>,
    inner: ProxyBody,
    scrub: BodyScrub,
    /// Trailers that arrived while held-back bytes still had to go out first.
    trailers: Option<http::HeaderMap>,
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
            scrub,
            trailers: None,
            done: false,
        }
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
            if let Some(trailers) = this.trailers.take() {
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
            if this.done {
                return Poll::Ready(None);
            }
            let next = match this.first.take() {
                Some(first) => Some(first),
                None => ready!(Pin::new(&mut this.inner).poll_frame(cx)),
            };
            match next {
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => {
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
                        let held = this.scrub.finish();
                        if !held.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(held))));
                        }
                    }
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    this.done = true;
                    let held = this.scrub.finish();
                    if !held.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(held))));
                    }
                }
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
}
