//! The upstream's response deadline: how long the broker waits for a response head. It
//! counts from the request body's last progress, so an upload slower than the deadline is
//! not cut while its bytes still move, and an upstream that stops reading one is. The same
//! watch tells when the body has been read to the end (see [`Progress::ended`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use super::upstream::{BoxError, ProxyBody};
use crate::broker::BrokerError;
use crate::target::Target;

/// When the request body last gave the upstream connection a frame, and whether it has
/// given its last.
#[derive(Clone)]
pub struct Progress {
    start: Instant,
    seen: Arc<Seen>,
}

#[derive(Default)]
struct Seen {
    last_micros: AtomicU64,
    ended: AtomicBool,
}

impl Progress {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            seen: Arc::default(),
        }
    }

    fn touch(&self) {
        let micros = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.seen.last_micros.store(micros, Ordering::Relaxed);
    }

    fn last(&self) -> Instant {
        self.start + Duration::from_micros(self.seen.last_micros.load(Ordering::Relaxed))
    }

    fn end(&self) {
        self.seen.ended.store(true, Ordering::Release);
    }

    /// Whether the body has been read to the end (by the connection writing it upstream).
    pub fn ended(&self) -> bool {
        self.seen.ended.load(Ordering::Acquire)
    }
}

/// The body, watched for progress; `None` for a body that is already complete (most
/// requests), which costs nothing to watch.
pub fn watch(body: ProxyBody) -> (ProxyBody, Option<Progress>) {
    if body.is_end_stream() {
        return (body, None);
    }
    let progress = Progress::new();
    let watched = Watched {
        body,
        progress: progress.clone(),
    };
    (watched.boxed_unsync(), Some(progress))
}

struct Watched {
    body: ProxyBody,
    progress: Progress,
}

impl Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &frame {
            Some(Ok(_)) => {
                self.progress.touch();
                if self.body.is_end_stream() {
                    self.progress.end();
                }
            }
            None => self.progress.end(),
            Some(Err(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        // A writer that knows the length may stop asking once it has it all.
        let ended = self.body.is_end_stream();
        if ended {
            self.progress.end();
        }
        ended
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// `sent` (the wait for the response head), ended with `upstream_timeout` once `limit` has
/// passed since the request began and since the body's last progress. `sent` is pinned by
/// the caller so that the pipeline's future holds it once (it is moved per request).
pub async fn within<F: Future>(
    limit: Duration,
    target: &Target,
    what: &str,
    uploading: Option<&Progress>,
    mut sent: Pin<&mut F>,
) -> Result<F::Output, BrokerError> {
    let mut deadline = Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, sent.as_mut()).await {
            Ok(answer) => return Ok(answer),
            Err(_) => match uploading.map(|progress| progress.last() + limit) {
                Some(later) if later > Instant::now() => deadline = later,
                _ => {
                    return Err(BrokerError::upstream_timeout(format!(
                        "{} did not {what} within {} s",
                        target.host_port(),
                        limit.as_secs()
                    )));
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::upstream::BoxError;
    use bytes::Bytes;
    use http_body_util::{Full, StreamBody};

    fn target() -> Target {
        Target::connect("upstream.example:443").expect("a target")
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_upstream_times_out_after_the_limit() {
        let limit = Duration::from_secs(5);
        let started = Instant::now();
        let silent = std::pin::pin!(std::future::pending::<()>());
        let answer = within(limit, &target(), "answer", None, silent).await;
        let err = answer.expect_err("a timeout");
        assert_eq!(err.code, "upstream_timeout");
        assert!(
            err.message.contains("did not answer within 5 s"),
            "{}",
            err.message
        );
        assert_eq!(started.elapsed(), limit);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_from_the_last_body_progress() {
        let limit = Duration::from_secs(5);
        let (body, progress) = watch(
            StreamBody::new(futures_util::stream::iter((0..3).map(|_| {
                Ok::<_, BoxError>(hyper::body::Frame::data(Bytes::from_static(b"x")))
            })))
            .boxed_unsync(),
        );
        let progress = progress.expect("a streaming body is watched");
        let ended = progress.clone();
        let started = Instant::now();
        // The body moves every 4 s for 12 s: longer than the limit, never silent that long.
        let upload = async move {
            let mut body = body;
            while let Some(frame) = body.frame().await {
                frame.expect("a frame");
                tokio::time::sleep(Duration::from_secs(4)).await;
            }
            std::future::pending::<()>().await
        };
        let upload = std::pin::pin!(upload);
        let answer = within(limit, &target(), "answer", Some(&progress), upload).await;
        assert!(answer.is_err());
        // The last frame went at 8 s; the deadline is 5 s after it.
        assert_eq!(started.elapsed(), Duration::from_secs(13));
        assert!(ended.ended(), "the body was read to its end");
    }

    #[test]
    fn a_complete_body_is_not_watched() {
        let (_, progress) = watch(
            Full::new(Bytes::new())
                .map_err(|e| -> BoxError { match e {} })
                .boxed_unsync(),
        );
        assert!(progress.is_none());
    }
}
