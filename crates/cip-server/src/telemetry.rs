//! Metrics: a process-wide Prometheus recorder, plus gauges read from the store at scrape time.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder once per process (tests start many servers in one process).
pub fn install() {
    HANDLE.get_or_init(|| PrometheusBuilder::new().install_recorder().ok());
}

pub async fn render(store: &dyn cip_store::Store) -> String {
    if let Ok(n) = store.count_customers().await {
        metrics::gauge!("cip_customers").set(n as f64);
    }
    if let Ok((seq, _)) = store.audit_head().await {
        metrics::gauge!("cip_audit_entries").set(seq as f64);
    }
    match HANDLE.get().and_then(|h| h.as_ref()) {
        Some(h) => h.render(),
        None => String::new(),
    }
}
