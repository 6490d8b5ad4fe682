//! Answers that leave the request body unread close the connection, and say so.
//!
//! A route can answer before reading the body (an unknown path, a missing session or proxy
//! token, a rate limit, a body over the limit, no service for the host). hyper cannot reuse
//! such an HTTP/1 connection and closes it once the response is out, but the response did not
//! say so: a client kept the connection in its pool and its next request failed on the closed
//! socket (reqwest: `IncompleteMessage`; curl retried). Such a response now carries
//! `Connection: close`. (HTTP/2 ends just that stream; nothing to say there.)

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};

use http::{HeaderValue, Request, Response, StatusCode, Version, header};
use hyper::body::{Body, Frame, SizeHint};

/// A request body that notes when it has been read to its end.
pub struct Watched<B> {
    inner: B,
    read: Option<Arc<AtomicBool>>,
}

/// Whether a watched body was read to its end; `None` for a request without a body.
pub struct ReadToEnd(Option<Arc<AtomicBool>>);

/// Wraps the body of `request` so that [`ReadToEnd::close_if_unread`] can tell, once the
/// response is ready, whether the route read it. A request without a body (most of them) or
/// over HTTP/2 is not watched, and costs nothing.
pub fn watch<B: Body>(request: Request<B>) -> (Request<Watched<B>>, ReadToEnd) {
    let watched = request.version() < Version::HTTP_2 && !request.body().is_end_stream();
    let read = watched.then(|| Arc::new(AtomicBool::new(false)));
    let unread = ReadToEnd(read.clone());
    (request.map(|inner| Watched { inner, read }), unread)
}

impl ReadToEnd {
    pub fn close_if_unread<T>(&self, response: &mut Response<T>) {
        let unread = self
            .0
            .as_ref()
            .is_some_and(|read| !read.load(Ordering::Acquire));
        // A switch of protocols keeps its own `Connection: upgrade`.
        if unread && response.status() != StatusCode::SWITCHING_PROTOCOLS {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
    }
}

impl<B: Body + Unpin> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(read) = &self.read
            && (frame.is_none() || self.inner.is_end_stream())
        {
            read.store(true, Ordering::Release);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};

    use super::*;

    fn closes(read: &ReadToEnd) -> bool {
        let mut response = Response::new(());
        read.close_if_unread(&mut response);
        response.headers().get(header::CONNECTION) == Some(&HeaderValue::from_static("close"))
    }

    #[tokio::test]
    async fn only_an_unread_http1_body_closes_the_connection() {
        let (_, read) = watch(Request::new(Empty::<Bytes>::new()));
        assert!(!closes(&read), "no body");
        let full = || Request::new(Full::new(Bytes::from_static(b"{}")));
        let (request, read) = watch(full());
        assert!(closes(&read), "not read");
        request.into_body().collect().await.unwrap();
        assert!(!closes(&read), "read to its end");
        let mut http2 = full();
        *http2.version_mut() = Version::HTTP_2;
        assert!(!closes(&watch(http2).1), "HTTP/2 ends the stream alone");
    }
}
