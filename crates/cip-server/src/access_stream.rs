//! The access-event stream: a NATS JetStream pull consumer that `cip serve` runs when
//! `access_nats_url` is set, the way a provider's control plane publishes events in
//! production.
//!
//! A message's payload has the shape of a `POST /v1/access-events` body: one event object,
//! NDJSON, or a JSON array. Messages are fetched in batches; a batch's events go through the
//! same ingestion path as HTTP (`crate::access::ingest`: resolve accounts, store durably,
//! advance `last_accessed_at`) in one call, and only then is each message answered:
//! - every event stored (or already stored): **ack**;
//! - some or all of its lines refused (bad JSON, bad IP, unknown account, …): the good lines
//!   are stored, then the message is **terminated** (`AckKind::Term`: never redelivered) and
//!   each refused line is counted in `cip_access_stream_rejected_total{reason}` and logged
//!   with its line number;
//! - the batch could not be stored (database down, disk full): every message of the batch is
//!   **nak**ed with a delay and comes back; nothing is acknowledged that is not durable.
//!
//! A redelivered message (an ack lost, a crash between commit and ack) is stored once: the
//! event's identity is the record's primary key. Several instances sharing the durable
//! consumer name share the work: JetStream hands each message to one puller at a time.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use cip_access::parse::{ParseConfig, ParsedEvent, Rejected};
use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::config::NatsConfig;
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
#[error("access_nats_url: {0}")]
pub struct StreamError(pub String);

fn err(what: &str, e: impl std::fmt::Display) -> StreamError {
    StreamError(format!("{what}: {e}"))
}

/// A connected consumer.
pub struct AccessStream {
    client: async_nats::Client,
    consumer: PullConsumer,
    config: NatsConfig,
}

/// What one batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BatchOutcome {
    pub messages: u64,
    pub acked: u64,
    pub terminated: u64,
    /// Messages handed back for redelivery because the batch could not be stored.
    pub retried: u64,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected_lines: u64,
}

/// Batches in flight at once: while one is being stored, the next is fetched, parsed and its
/// accounts resolved; batches stored at the same moment share a transaction (the access
/// writer's group commit).
pub const WORKERS: usize = 2;

/// Line numbers of a batch: message index in the high half, line within it in the low half,
/// so refusals by the ingestion path (unknown accounts) find their message again.
const LINE_BITS: u32 = 32;

/// The metric label of a refusal: the field it names, or its kind.
fn reason_label(reason: &str) -> &'static str {
    const FIELDS: [&str; 9] = [
        "account",
        "principal",
        "ip",
        "time",
        "action",
        "user_agent",
        "session",
        "resource",
        "event_id",
    ];
    if let Some((head, _)) = reason.split_once(':')
        && let Some(f) = FIELDS.iter().find(|f| **f == head)
    {
        return f;
    }
    if reason.contains("UTF-8") {
        "utf8"
    } else if reason.contains("longer than the limit") {
        "too_long"
    } else {
        "malformed"
    }
}

impl AccessStream {
    /// Connects, and creates the stream (capturing `access_nats_subject`) and the durable
    /// pull consumer when they do not exist yet. Fails when NATS cannot be reached: a
    /// configured stream that is not consumed must stop the start, not be noticed later.
    pub async fn connect(config: &NatsConfig) -> Result<Self, StreamError> {
        let client = async_nats::ConnectOptions::new()
            .name("cip")
            .connection_timeout(Duration::from_secs(5))
            .connect(config.url.as_str())
            .await
            .map_err(|e| {
                err(
                    &format!(
                        "cannot connect to {}",
                        crate::config::redact_url(&config.url)
                    ),
                    e,
                )
            })?;
        let js = jetstream::new(client.clone());
        let stream = js
            .get_or_create_stream(jetstream::stream::Config {
                name: config.stream.clone(),
                subjects: vec![config.subject.clone()],
                storage: jetstream::stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| err(&format!("stream {}", config.stream), e))?;
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                &config.consumer,
                jetstream::consumer::pull::Config {
                    durable_name: Some(config.consumer.clone()),
                    filter_subject: config.subject.clone(),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    // A batch of 10,000 events commits in well under a second; a message
                    // not answered in a minute is redelivered (and deduplicated).
                    ack_wait: Duration::from_secs(60),
                    // Room for every worker's batch and the next: at JetStream's default
                    // (1,000) a fetch of more messages than that waited out its expiry.
                    max_ack_pending: (config.batch * 2 * WORKERS).max(1000) as i64,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| err(&format!("consumer {}", config.consumer), e))?;
        Ok(AccessStream {
            client,
            consumer,
            config: config.clone(),
        })
    }

    /// Fetches one batch (waiting at most `wait` for it to fill), stores it, answers each
    /// message. An idle stream returns an empty outcome after `wait`.
    pub async fn run_once(
        &self,
        state: &AppState,
        wait: Duration,
    ) -> Result<BatchOutcome, StreamError> {
        let mut batch = self
            .consumer
            .batch()
            .max_messages(self.config.batch)
            .expires(wait)
            .messages()
            .await
            .map_err(|e| err("fetching a batch", e))?;
        let mut messages = Vec::new();
        while let Some(m) = batch.next().await {
            match m {
                Ok(m) => messages.push(m),
                Err(e) => {
                    // Messages already taken stay unanswered: JetStream redelivers them.
                    tracing::warn!(error = %e, "access stream: batch cut short");
                    break;
                }
            }
        }
        self.handle(state, messages).await
    }

    async fn handle(
        &self,
        state: &AppState,
        messages: Vec<jetstream::Message>,
    ) -> Result<BatchOutcome, StreamError> {
        let mut out = BatchOutcome {
            messages: messages.len() as u64,
            ..Default::default()
        };
        if messages.is_empty() {
            return Ok(out);
        }
        let mut cfg = ParseConfig::new(crate::time::now_micros());
        cfg.future_skew_micros = state.access_future_skew_micros;
        let mut good: Vec<(u64, ParsedEvent)> = Vec::new();
        let mut bad: Vec<Rejected> = Vec::new();
        let mut whole_refused: Vec<Option<String>> = vec![None; messages.len()];
        for (i, m) in messages.iter().enumerate() {
            let base = (i as u64) << LINE_BITS;
            if m.payload.iter().all(u8::is_ascii_whitespace) {
                whole_refused[i] = Some("empty".into());
                continue;
            }
            match cip_access::parse::parse_body(&m.payload, &cfg) {
                Ok((g, b)) => {
                    good.extend(g.into_iter().map(|(l, e)| (base | l, e)));
                    bad.extend(b.into_iter().map(|r| Rejected {
                        line: base | r.line,
                        reason: r.reason,
                    }));
                }
                Err(reason) => whole_refused[i] = Some(reason),
            }
        }
        let mut resolver = crate::access::Resolver::with_known(state.access_accounts.clone());
        let stored = crate::access::ingest(
            state.store.as_ref(),
            state.access.as_ref(),
            &state.last_access,
            &mut resolver,
            good,
            &mut bad,
            None,
        )
        .await;
        let outcome = match stored {
            Ok(o) => o,
            Err(e) => {
                tracing::error!(error = %e, messages = messages.len(), "access stream: the batch could not be stored; handed back for redelivery");
                for m in &messages {
                    if let Err(e) = m.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await {
                        tracing::warn!(error = %e, "access stream: nak not sent (the message comes back after ack_wait)");
                    }
                }
                metrics::counter!("cip_access_stream_messages_total", "outcome" => "retried")
                    .increment(messages.len() as u64);
                out.retried = messages.len() as u64;
                return Ok(out);
            }
        };
        out.accepted = outcome.accepted;
        out.duplicates = outcome.duplicates;
        // Refusals per message.
        let mut refused: Vec<Vec<Rejected>> = (0..messages.len()).map(|_| Vec::new()).collect();
        for r in bad {
            let i = (r.line >> LINE_BITS) as usize;
            let line = r.line & ((1u64 << LINE_BITS) - 1);
            if let Some(v) = refused.get_mut(i) {
                v.push(Rejected {
                    line,
                    reason: r.reason,
                });
            }
        }
        for (i, whole) in whole_refused.iter().enumerate() {
            if let Some(reason) = whole {
                refused[i].push(Rejected {
                    line: 0,
                    reason: reason.clone(),
                });
            }
        }
        let rejected_lines: u64 = refused.iter().map(|v| v.len() as u64).sum();
        out.rejected_lines = rejected_lines;
        metrics::counter!("cip_access_events_rejected_total").increment(rejected_lines);
        state
            .store
            .append_audit(vec![cip_store::AuditDraft {
                at: crate::time::now_micros(),
                actor: "system:access-stream".into(),
                role: "system".into(),
                action: "access_events.ingest".into(),
                record_type: "access_event".into(),
                record_id: None,
                fields: vec![
                    format!("accepted={}", outcome.accepted),
                    format!("duplicates={}", outcome.duplicates),
                    format!("rejected={rejected_lines}"),
                ],
                request_id: Some(format!(
                    "nats:{}/{}",
                    self.config.stream, self.config.consumer
                )),
                purpose: None,
            }])
            .await
            .map_err(|e| {
                // Stored but not acknowledged: the messages come back and are duplicates.
                err("recording the batch in the audit trail", e)
            })?;
        // Durable and recorded: answer each message.
        for (m, refusals) in messages.iter().zip(&refused) {
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
            if refusals.is_empty() {
                if let Err(e) = m.ack().await {
                    tracing::warn!(error = %e, seq, "access stream: ack not sent (redelivery is deduplicated)");
                }
                out.acked += 1;
                continue;
            }
            for r in refusals {
                let label = if r.line == 0 {
                    if r.reason == "empty" {
                        "empty"
                    } else {
                        "malformed"
                    }
                } else {
                    reason_label(&r.reason)
                };
                metrics::counter!("cip_access_stream_rejected_total", "reason" => label)
                    .increment(1);
                tracing::warn!(seq, line = r.line, reason = %r.reason, "access stream: line refused");
            }
            if let Err(e) = m.ack_with(AckKind::Term).await {
                tracing::warn!(error = %e, seq, "access stream: term not sent");
            }
            out.terminated += 1;
        }
        // Acks are fire-and-forget publishes: push them out before the next fetch.
        if let Err(e) = self.client.flush().await {
            tracing::warn!(error = %e, "access stream: flushing acks failed (redelivery is deduplicated)");
        }
        metrics::counter!("cip_access_stream_messages_total", "outcome" => "acked")
            .increment(out.acked);
        metrics::counter!("cip_access_stream_messages_total", "outcome" => "terminated")
            .increment(out.terminated);
        Ok(out)
    }

    /// Consumes until `cancel` fires, with [`WORKERS`] batches in flight. Errors (NATS away,
    /// the audit write failing) are logged and retried after a pause; the client reconnects
    /// by itself.
    pub async fn run(self, state: AppState, cancel: CancellationToken) {
        tracing::info!(stream = %self.config.stream, consumer = %self.config.consumer, "access stream: consuming");
        let me = std::sync::Arc::new(self);
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..WORKERS {
            let (me, state, cancel) = (me.clone(), state.clone(), cancel.clone());
            workers.spawn(async move { me.work(state, cancel).await });
        }
        while workers.join_next().await.is_some() {}
    }

    async fn work(&self, state: AppState, cancel: CancellationToken) {
        loop {
            let next = tokio::select! {
                _ = cancel.cancelled() => break,
                r = self.run_once(&state, Duration::from_secs(1)) => r,
            };
            match next {
                Ok(o) if o.messages > 0 => {
                    tracing::debug!(
                        messages = o.messages,
                        accepted = o.accepted,
                        duplicates = o.duplicates,
                        terminated = o.terminated,
                        "access stream: batch"
                    );
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "access stream: will retry");
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_labelled_by_field_or_kind() {
        assert_eq!(reason_label("ip: `x` is not an IPv4 or IPv6 address"), "ip");
        assert_eq!(
            reason_label("account: no account has this cip id or external id"),
            "account"
        );
        assert_eq!(reason_label("time: required; action: required"), "time");
        assert_eq!(reason_label("not UTF-8 (invalid byte at column 3)"), "utf8");
        assert_eq!(
            reason_label("line of 20000 bytes is longer than the limit of 16384 bytes"),
            "too_long"
        );
        assert_eq!(
            reason_label("expected value at line 1 column 1"),
            "malformed"
        );
    }
}
