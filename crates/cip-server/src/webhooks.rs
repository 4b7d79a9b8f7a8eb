//! Webhook delivery: the outbox the store fills in the same transaction as each change, and
//! the job that claims due deliveries (a lease, so exactly one instance sends each attempt),
//! signs them and records the outcome. Delivery is at least once: a receiver deduplicates
//! on `Cip-Event-Id`.

use std::time::Duration;

use cip_store::{ClaimedDelivery, DeliveryOutcome, EventDraft};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::jobs::Ran;
use crate::state::AppState;
use crate::time::{now_micros, to_rfc3339};

/// Event types a provider can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "account.created",
    "account.status_changed",
    "account.special_measure",
    "account.verification_reminder",
    "account.reverification_reminder",
];

/// Attempts before a delivery is given up (`failed`): about 41 hours of back-off.
pub const MAX_ATTEMPTS: i64 = 18;
/// How long a claimed attempt is reserved for the instance that claimed it.
const LEASE_MICROS: i64 = 60_000_000;
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Delay before attempt `attempts + 1`: 10 s doubling per attempt, at most 6 hours.
pub fn backoff_micros(attempts: i64) -> i64 {
    let exp = attempts.clamp(1, 20) - 1;
    (10_000_000i64 << exp).min(6 * 3600 * 1_000_000)
}

/// The associated data a webhook secret is sealed under.
pub fn secret_aad(endpoint_id: Uuid) -> String {
    format!("webhook/{endpoint_id}")
}

/// An event draft with the standard envelope `{id, type, created_at, data}`.
pub fn event(event_type: &str, data: Value) -> EventDraft {
    let id = Uuid::now_v7();
    let at = now_micros();
    let body = json!({
        "id": id,
        "type": event_type,
        "created_at": to_rfc3339(at),
        "data": data,
    });
    EventDraft {
        id,
        event_type: event_type.into(),
        payload: serde_json::to_vec(&body).unwrap_or_default(),
        created_at: at,
    }
}

/// The HTTP client deliveries go out through.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("cip-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// One pass: claims up to `batch` deliveries due at `now` (Unix micros) and sends each once.
pub async fn deliver_run_once(
    state: &AppState,
    client: &reqwest::Client,
    now: i64,
    batch: u32,
) -> Result<Ran, String> {
    let claimed = state
        .store
        .claim_deliveries(now, now + LEASE_MICROS, batch)
        .await
        .map_err(|e| e.to_string())?;
    if claimed.is_empty() {
        return Ok(Ran::Idle);
    }
    let n = claimed.len() as u64;
    // One after another: a pass is small (the batch), and a slow receiver is bounded by the
    // send timeout, well inside the lease.
    for d in claimed {
        let outcome = send(state, client, &d, now).await;
        if outcome.state != "delivered" {
            tracing::warn!(
                event_id = %d.event_id,
                endpoint_id = %d.endpoint_id,
                attempts = d.attempts,
                state = %outcome.state,
                status = ?outcome.status,
                "webhook delivery did not succeed"
            );
        }
        state
            .store
            .finish_delivery(d.event_id, d.endpoint_id, outcome)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(Ran::Did(n))
}

async fn send(
    state: &AppState,
    client: &reqwest::Client,
    d: &ClaimedDelivery,
    now: i64,
) -> DeliveryOutcome {
    let retry_or_fail = |status: Option<i64>, error: String| DeliveryOutcome {
        state: if d.attempts >= MAX_ATTEMPTS {
            "failed".into()
        } else {
            "pending".into()
        },
        status,
        error: Some(error),
        at: now,
        next_attempt_at: now + backoff_micros(d.attempts),
    };
    let secret = match state
        .keyring()
        .open_str(secret_aad(d.endpoint_id).as_bytes(), &d.secret)
    {
        Ok(s) => s,
        Err(e) => return retry_or_fail(None, format!("cannot open the endpoint's secret: {e}")),
    };
    let t = now / 1_000_000;
    let signature = cip_vault::webhook_signature(&secret, t, &d.payload);
    let result = client
        .post(&d.url)
        .header("content-type", "application/json")
        .header("cip-event-id", d.event_id.to_string())
        .header("cip-event-type", &d.event_type)
        .header("cip-signature", format!("t={t},v1={signature}"))
        .body(d.payload.clone())
        .send()
        .await;
    match result {
        Ok(resp) if resp.status().is_success() => DeliveryOutcome {
            state: "delivered".into(),
            status: Some(i64::from(resp.status().as_u16())),
            error: None,
            at: now,
            next_attempt_at: now,
        },
        Ok(resp) => retry_or_fail(
            Some(i64::from(resp.status().as_u16())),
            format!("receiver answered {}", resp.status()),
        ),
        Err(e) => retry_or_fail(None, delivery_error(&e)),
    }
}

/// A transport error in words, without the URL (it may carry credentials in its query).
fn delivery_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "could not connect".into()
    } else {
        "request failed".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff_micros(1), 10_000_000);
        assert_eq!(backoff_micros(2), 20_000_000);
        assert_eq!(backoff_micros(3), 40_000_000);
        assert_eq!(backoff_micros(MAX_ATTEMPTS), 6 * 3600 * 1_000_000);
        let total: i64 = (1..MAX_ATTEMPTS).map(backoff_micros).sum();
        assert!(
            total > 24 * 3600 * 1_000_000,
            "retries span more than a day"
        );
    }
}
