//! The access-event stream: `cip serve` consuming a NATS JetStream stream (127.0.0.1:4222).
//! Each test makes its own uniquely named stream and subject, publishes good and bad
//! messages, and watches them be stored exactly once, bad ones terminated and counted, and
//! redelivered or re-published events not stored twice. With CI set an unreachable NATS fails
//! the test (like PostgreSQL).

use std::time::{Duration, Instant};

use async_nats::jetstream;
use cip_server::access_stream::AccessStream;
use cip_server::config::{ConfigLayer, NatsConfig};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::*;

macro_rules! nats_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !$crate::helpers::nats_available().await { return; }
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if !$crate::helpers::nats_available().await { return; }
                    if !$crate::helpers::postgres_available().await { return; }
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

nats_both_backends!(
    served_stream_stores_once_and_terminates_bad_messages,
    instances_sharing_the_durable_consumer_share_the_work
);

struct TestStream {
    js: jetstream::Context,
    name: String,
    subject: String,
}

impl TestStream {
    async fn create() -> Self {
        let tag = Uuid::new_v4().simple().to_string();
        let client = async_nats::connect(NATS_URL).await.unwrap();
        let js = jetstream::new(client);
        let name = format!("CIPTEST_{tag}");
        let subject = format!("cip.test.{tag}.access");
        js.create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            storage: jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .unwrap();
        TestStream { js, name, subject }
    }

    async fn publish(&self, payload: impl Into<Vec<u8>>) {
        self.js
            .publish(self.subject.clone(), payload.into().into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// Waits until the durable consumer has answered every message published (acked or
    /// terminated): JetStream's own account of the consumer, not a guess at timing.
    async fn drained(&self, consumer: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let stream = self.js.get_stream(&self.name).await.unwrap();
        loop {
            let mut c: jetstream::consumer::PullConsumer =
                stream.get_consumer(consumer).await.unwrap();
            let info = c.info().await.unwrap().clone();
            if info.num_pending == 0 && info.num_ack_pending == 0 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the consumer did not drain: {} pending, {} unanswered",
                info.num_pending,
                info.num_ack_pending
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn config(&self, consumer: &str, batch: usize) -> NatsConfig {
        NatsConfig {
            url: NATS_URL.into(),
            stream: self.name.clone(),
            subject: self.subject.clone(),
            consumer: consumer.into(),
            batch,
        }
    }

    async fn delete(self) {
        self.js.delete_stream(&self.name).await.unwrap();
    }
}

fn ev(account: &str, ip: &str, time: &str, id: &str) -> Value {
    json!({"account": account, "principal": "svc-deploy", "ip": ip, "time": time, "action": "api", "event_id": id})
}

async fn account(app: &TestApp, external: &str) -> String {
    let (cid, _) = app.create_customer(&individual(external)).await;
    let v: Value = app
        .post(
            "/v1/accounts",
            &app.admin,
            &json!({"customer_id": cid, "external_id": external, "product": "compute", "account_type": "standard"}),
        )
        .await
        .json()
        .await
        .unwrap();
    v["id"].as_str().unwrap().to_string()
}

async fn event_ids(app: &TestApp, account: &str) -> Vec<String> {
    let v: Value = app
        .get(
            &format!("/v1/accounts/{account}/access-events?from=2026-01-01T00:00:00Z&limit=1000"),
            &app.admin,
        )
        .await
        .json()
        .await
        .unwrap();
    let mut ids: Vec<String> = v["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .map(|e| e["event_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

async fn served_stream_stores_once_and_terminates_bad_messages(b: Backend) {
    let stream = TestStream::create().await;
    let nats = stream.config("cip-test", 100);
    let app = spawn_app_with(
        b,
        ConfigLayer {
            access_nats_url: Some(nats.url.clone()),
            access_nats_stream: Some(nats.stream.clone()),
            access_nats_subject: Some(nats.subject.clone()),
            access_nats_consumer: Some(nats.consumer.clone()),
            ..Default::default()
        },
    )
    .await;
    let a = account(&app, "nats-a").await;
    let head = app.audit_head().await;

    let one = serde_json::to_vec(&ev(&a, "192.0.2.1", "2026-03-01T10:00:00Z", "s1")).unwrap();
    let ndjson = format!(
        "{}\n{}\n",
        ev("nats-a", "192.0.2.2", "2026-03-01T11:00:00Z", "s2"),
        ev(&a, "2001:db8::2", "2026-03-01T12:00:00+01:00", "s3")
    );
    let array = serde_json::to_vec(&json!([
        ev(&a, "192.0.2.4", "2026-03-01T13:00:00Z", "s4"),
        ev(&a, "192.0.2.999", "2026-03-01T13:00:00Z", "bad-ip"),
    ]))
    .unwrap();
    stream.publish(one.clone()).await;
    stream.publish(ndjson.clone()).await;
    stream.publish(array.clone()).await;
    // Bad messages: not JSON, unknown account, a time without offset, empty.
    stream.publish("this is not json").await;
    stream
        .publish(
            serde_json::to_vec(&ev(
                "no-such-account",
                "192.0.2.5",
                "2026-03-01T10:00:00Z",
                "x1",
            ))
            .unwrap(),
        )
        .await;
    stream
        .publish(serde_json::to_vec(&ev(&a, "192.0.2.6", "2026-03-01T10:00:00", "x2")).unwrap())
        .await;
    stream.publish("").await;
    stream.drained(&nats.consumer).await;

    assert_eq!(
        event_ids(&app, &a).await,
        vec!["s1", "s2", "s3", "s4"],
        "good lines stored, bad ones not"
    );
    // The account's last access moved with the stream.
    let acct: Value = app
        .get(&format!("/v1/accounts/{a}"), &app.admin)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        acct["last_accessed_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("2026-03-01T13:00:00")),
        "{acct}"
    );
    // Every refusal is counted with its reason.
    let metrics = app.get("/metrics", &app.admin).await.text().await.unwrap();
    for reason in ["ip", "account", "time", "malformed", "empty"] {
        assert!(
            metrics.contains(&format!(
                "cip_access_stream_rejected_total{{reason=\"{reason}\"}}"
            )),
            "{reason} not counted:\n{metrics}"
        );
    }
    assert!(metrics.contains("cip_access_stream_messages_total{outcome=\"terminated\"}"));
    // The stream's batches are in the audit trail under the system actor.
    let entries = app.state.store.audit_range(head + 1, 1000).await.unwrap();
    assert!(
        entries
            .iter()
            .any(|e| e.draft.actor == "system:access-stream"
                && e.draft.action == "access_events.ingest"),
        "{entries:?}"
    );

    // The same events again (a producer's retry, a redelivery): stored once.
    stream.publish(one).await;
    stream.publish(ndjson).await;
    stream.publish(array).await;
    stream.drained(&nats.consumer).await;
    assert_eq!(event_ids(&app, &a).await, vec!["s1", "s2", "s3", "s4"]);

    app.cleanup().await;
    stream.delete().await;
}

async fn instances_sharing_the_durable_consumer_share_the_work(b: Backend) {
    // The server itself consumes nothing here: two consumers made by the test, on one
    // durable, take turns at batches of 10, as two `cip serve` instances would.
    let stream = TestStream::create().await;
    let app = spawn_app(b).await;
    let a = account(&app, "nats-b").await;
    let nats = stream.config("cip-shared", 10);
    let first = AccessStream::connect(&nats).await.unwrap();
    let second = AccessStream::connect(&nats).await.unwrap();
    for i in 0..30 {
        let t = format!("2026-04-01T10:{i:02}:00Z");
        stream
            .publish(serde_json::to_vec(&ev(&a, "198.51.100.1", &t, &format!("e{i:02}"))).unwrap())
            .await;
    }
    let wait = Duration::from_secs(2);
    let o1 = first.run_once(&app.state, wait).await.unwrap();
    let o2 = second.run_once(&app.state, wait).await.unwrap();
    let o3 = first.run_once(&app.state, wait).await.unwrap();
    assert_eq!((o1.messages, o2.messages, o3.messages), (10, 10, 10));
    assert_eq!(o1.accepted + o2.accepted + o3.accepted, 30);
    assert_eq!((o1.acked, o2.acked, o3.acked), (10, 10, 10));
    stream.drained("cip-shared").await;
    let idle = second
        .run_once(&app.state, Duration::from_millis(200))
        .await
        .unwrap();
    assert_eq!(idle.messages, 0, "nothing is delivered twice once acked");
    let ids = event_ids(&app, &a).await;
    assert_eq!(ids.len(), 30);
    assert_eq!(ids.first().map(String::as_str), Some("e00"));

    // A redelivery: an instance takes a message and hands it back unanswered (as after a
    // crash between commit and ack); the next delivery stores nothing twice.
    stream
        .publish(
            serde_json::to_vec(&ev(&a, "198.51.100.1", "2026-04-01T10:00:00Z", "e00")).unwrap(),
        )
        .await;
    {
        use futures_util::StreamExt;
        let raw: jetstream::consumer::PullConsumer = stream
            .js
            .get_stream(&stream.name)
            .await
            .unwrap()
            .get_consumer("cip-shared")
            .await
            .unwrap();
        let mut batch = raw
            .batch()
            .max_messages(1)
            .expires(wait)
            .messages()
            .await
            .unwrap();
        let m = batch.next().await.unwrap().unwrap();
        m.ack_with(jetstream::AckKind::Nak(None)).await.unwrap();
    }
    let o = first.run_once(&app.state, wait).await.unwrap();
    assert_eq!(
        (o.messages, o.accepted, o.duplicates, o.acked),
        (1, 0, 1, 1),
        "{o:?}"
    );
    stream.drained("cip-shared").await;
    assert_eq!(event_ids(&app, &a).await.len(), 30);

    app.cleanup().await;
    stream.delete().await;
}
