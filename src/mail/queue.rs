//! The mail queue: callers hand a message to [`Mailer::send_later`] and return at once; a
//! background task delivers it with bounded retries and keeps the status the owner sees.
//!
//! Stance: a failure never reaches the caller's request; it is logged (recipient, kind and
//! the server's answer, never a body) and kept as the last error. Only `owner email test`
//! waits for the server, through [`Mailer::send_now`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use super::MailError;
use super::config::SmtpConfig;
use super::message::{Email, Kind};
use super::transport::{SendFailure, Transport};

/// Messages waiting at most; beyond this a message is dropped and counted as failed.
const QUEUE_CAPACITY: usize = 1000;
/// Deliveries in progress at once (each opens its own connection).
const CONCURRENCY: usize = 4;
/// Pauses between attempts: three attempts over about half a minute, for a server that is
/// restarting or answers 4xx. Permanent failures (5xx, TLS) are not retried.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_secs(5), Duration::from_secs(30)];
/// How long shutdown waits for deliveries in progress.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What became of a queued message, for callers that record it (verification codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Sent,
    Failed,
}

/// Called once with the outcome, on the mail task: keep it short (spawn blocking work).
pub type Report = Box<dyn FnOnce(Outcome) + Send>;

struct Job {
    email: Email,
    report: Option<Report>,
}

/// The last failed attempt.
#[derive(Debug, Clone)]
pub struct LastError {
    /// Unix seconds.
    pub at: i64,
    pub kind: Kind,
    pub recipient: String,
    pub message: String,
}

/// Delivery counters since the server started.
#[derive(Debug, Clone, Default)]
pub struct Status {
    /// Messages accepted by the SMTP server.
    pub sent: u64,
    /// Messages given up on (after their last attempt).
    pub failed: u64,
    /// Queued or being sent now.
    pub pending: usize,
    pub last_sent_at: Option<i64>,
    pub last_error: Option<LastError>,
}

struct Shared {
    config: SmtpConfig,
    transport: Transport,
    status: Mutex<Status>,
    pending: AtomicUsize,
}

impl Shared {
    fn with_status<R>(&self, f: impl FnOnce(&mut Status) -> R) -> R {
        // A panic while holding the lock leaves plain counters behind: still usable.
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut status)
    }

    fn record_sent(&self) {
        self.with_status(|s| {
            s.sent += 1;
            s.last_sent_at = Some(now());
        });
    }

    fn record_error(&self, email: &Email, message: &str) {
        self.with_status(|s| {
            s.last_error = Some(LastError {
                at: now(),
                kind: email.kind,
                recipient: email.to.to_string(),
                message: message.to_owned(),
            });
        });
    }

    fn record_given_up(&self) {
        self.with_status(|s| s.failed += 1);
    }

    async fn attempt(&self, email: &Email) -> Result<String, SendFailure> {
        let result = self.transport.send(email).await;
        match &result {
            Ok(_) => self.record_sent(),
            Err(failure) => self.record_error(email, &failure.message),
        }
        result
    }
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The handle callers hold: cheap to clone; [`Mailer::disabled`] when no SMTP host is set.
#[derive(Clone)]
pub struct Mailer {
    active: Option<(Arc<Shared>, mpsc::Sender<Job>)>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

impl Mailer {
    /// Email off: nothing is sent, [`Mailer::is_enabled`] is false.
    pub fn disabled() -> Self {
        Self { active: None }
    }

    /// Starts the delivery task (in a tokio runtime); it ends when `stop` turns true, after
    /// giving deliveries in progress a few seconds. Returns warnings for the start-up log.
    pub fn start(
        config: SmtpConfig,
        stop: watch::Receiver<bool>,
    ) -> Result<(Self, JoinHandle<()>, Vec<String>), MailError> {
        let (transport, mut warnings) = Transport::new(&config)?;
        warnings.extend(config.warnings());
        let shared = Arc::new(Shared {
            config,
            transport,
            status: Mutex::new(Status::default()),
            pending: AtomicUsize::new(0),
        });
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let task = tokio::spawn(run_queue(shared.clone(), rx, stop));
        Ok((
            Self {
                active: Some((shared, tx)),
            },
            task,
            warnings,
        ))
    }

    pub fn is_enabled(&self) -> bool {
        self.active.is_some()
    }

    /// The settings in use, when email is on.
    pub fn config(&self) -> Option<&SmtpConfig> {
        self.active.as_ref().map(|(shared, _)| &shared.config)
    }

    /// Queues `email` and returns at once. `false` when it could not be queued (email off,
    /// queue full); `report` then hears [`Outcome::Failed`] right away.
    pub fn send_later(&self, email: Email, report: Option<Report>) -> bool {
        let Some((shared, tx)) = &self.active else {
            if let Some(report) = report {
                report(Outcome::Failed);
            }
            return false;
        };
        shared.pending.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(Job { email, report }) {
            Ok(()) => true,
            Err(err) => {
                shared.pending.fetch_sub(1, Ordering::SeqCst);
                let job = match err {
                    mpsc::error::TrySendError::Full(job)
                    | mpsc::error::TrySendError::Closed(job) => job,
                };
                let message = "the mail queue is full (or the server is stopping); message dropped";
                tracing::warn!(
                    kind = job.email.kind.as_str(),
                    to = %job.email.to,
                    "email not queued: {message}"
                );
                shared.record_error(&job.email, message);
                shared.record_given_up();
                if let Some(report) = job.report {
                    report(Outcome::Failed);
                }
                false
            }
        }
    }

    /// Sends now and waits for the server (`owner email test`): the server's answer, or why
    /// it failed. Counts in the status like any delivery.
    pub async fn send_now(&self, email: Email) -> Result<String, MailError> {
        let Some((shared, _)) = &self.active else {
            return Err(MailError::Disabled);
        };
        match shared.attempt(&email).await {
            Ok(reply) => {
                tracing::info!(kind = email.kind.as_str(), to = %email.to, "email sent");
                Ok(reply)
            }
            Err(failure) => {
                shared.record_given_up();
                tracing::warn!(
                    kind = email.kind.as_str(),
                    to = %email.to,
                    "email failed: {}",
                    failure.message
                );
                Err(MailError::Send(failure))
            }
        }
    }

    /// Counters and the last error; `None` when email is off.
    pub fn status(&self) -> Option<Status> {
        let (shared, _) = self.active.as_ref()?;
        let mut status = shared.with_status(|s| s.clone());
        status.pending = shared.pending.load(Ordering::SeqCst);
        Some(status)
    }
}

async fn run_queue(
    shared: Arc<Shared>,
    mut jobs: mpsc::Receiver<Job>,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    loop {
        let job = tokio::select! {
            job = jobs.recv() => job,
            _ = stop.wait_for(|stop| *stop) => None,
        };
        let Some(job) = job else { break };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            deliver(&shared, job).await;
            shared.pending.fetch_sub(1, Ordering::SeqCst);
            drop(slot);
        });
    }
    jobs.close();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(CONCURRENCY as u32)).await;
}

/// Tries a message up to `RETRY_DELAYS.len() + 1` times, then reports the outcome.
async fn deliver(shared: &Shared, job: Job) {
    let Job { email, report } = job;
    let mut attempt = 0;
    let outcome = loop {
        attempt += 1;
        match shared.attempt(&email).await {
            Ok(reply) => {
                tracing::info!(
                    kind = email.kind.as_str(),
                    to = %email.to,
                    attempt,
                    "email sent: {reply}"
                );
                break Outcome::Sent;
            }
            Err(failure) => {
                let delay = RETRY_DELAYS.get(attempt - 1).filter(|_| !failure.permanent);
                match delay {
                    Some(delay) => {
                        tracing::warn!(
                            kind = email.kind.as_str(),
                            to = %email.to,
                            attempt,
                            "email failed, retrying in {} s: {}",
                            delay.as_secs(),
                            failure.message
                        );
                        tokio::time::sleep(*delay).await;
                    }
                    None => {
                        tracing::warn!(
                            kind = email.kind.as_str(),
                            to = %email.to,
                            attempt,
                            "email failed, giving up: {}",
                            failure.message
                        );
                        shared.record_given_up();
                        break Outcome::Failed;
                    }
                }
            }
        }
    };
    if let Some(report) = report {
        report(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::message;

    #[test]
    fn a_disabled_mailer_reports_failure_at_once() {
        let mailer = Mailer::disabled();
        assert!(!mailer.is_enabled() && mailer.status().is_none());
        let heard = Arc::new(Mutex::new(None));
        let sink = heard.clone();
        let email = message::test("o@example.com", "o@example.com", "http://x").unwrap();
        let queued = mailer.send_later(
            email,
            Some(Box::new(move |outcome| {
                *sink.lock().unwrap() = Some(outcome);
            })),
        );
        assert!(!queued);
        assert_eq!(*heard.lock().unwrap(), Some(Outcome::Failed));
    }
}
