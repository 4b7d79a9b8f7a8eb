//! The HTTP application: routes, middleware, the OpenAPI document, background jobs, serving.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use tokio_util::sync::CancellationToken;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::api;
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(title = "cip", description = "Customer Identification Program engine for IaaS providers (EO 13984). All /v1 routes need `Authorization: Bearer <API key>`, except `POST /v1/vendor-callbacks/{vendor}`, which is authenticated by its HMAC signature.", license(name = "Apache-2.0")),
    modifiers(&SecurityAddon),
    tags((name = "customers", description = "Identity records of customers and their beneficial owners"),
         (name = "accounts", description = "IaaS accounts"),
         (name = "webhooks", description = "Signed notifications of account changes"),
         (name = "audit", description = "The tamper-evident audit trail"),
         (name = "access", description = "The access record: IP addresses and times of every access"),
         (name = "verification", description = "Verification evidence (documents, one-time codes, payment confirmations, external vendors) and unverified cases"),
         (name = "screening", description = "Screening lists (versioned snapshots) and screening against them"),
         (name = "policy", description = "The provider's risk-based verification policy"),
         (name = "special measures", description = "Special measures under EO 13984 §2: prohibitions and conditions on accounts tied to a designated foreign jurisdiction or designated foreign persons"),
         (name = "system", description = "Health, readiness, metrics")),
)]
struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("cip_<id>_<secret>")
                        .build(),
                ),
            );
        }
    }
}

/// The routes and the OpenAPI document they generate.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(api::system::healthz))
        .routes(routes!(api::system::readyz))
        .routes(routes!(api::system::metrics_endpoint))
        .routes(routes!(
            api::customers::create_customer,
            api::customers::list_customers
        ))
        .routes(routes!(
            api::customers::get_customer,
            api::customers::update_customer
        ))
        .routes(routes!(api::customers::lookup_customers))
        .routes(routes!(api::determination::get_determination))
        .routes(routes!(api::documents::mrz_check))
        .routes(routes!(
            api::accounts::create_account,
            api::accounts::list_accounts
        ))
        .routes(routes!(
            api::accounts::get_account,
            api::accounts::update_account
        ))
        .routes(routes!(
            api::lifecycle::transition_account,
            api::lifecycle::list_transitions
        ))
        .routes(routes!(api::lifecycle::account_decision))
        .routes(routes!(
            api::lifecycle::create_webhook,
            api::lifecycle::list_webhooks
        ))
        .routes(routes!(api::lifecycle::delete_webhook))
        .routes(routes!(api::lifecycle::list_deliveries))
        .routes(routes!(api::access::ingest_access_events))
        .routes(routes!(api::access::account_access_events))
        .routes(routes!(api::access::export_access_events))
        .routes(routes!(api::access::account_ips))
        .routes(routes!(api::access::account_countries))
        .routes(routes!(api::access::ip_accounts))
        .routes(routes!(api::access::set_legal_hold))
        .routes(routes!(api::audit::list_audit))
        .routes(routes!(api::audit::verify_audit))
        .routes(routes!(api::screening::list_lists))
        .routes(routes!(
            api::screening::import_list,
            api::screening::list_versions
        ))
        .routes(routes!(api::screening::version_diff))
        .routes(routes!(
            api::screening::screen_post,
            api::screening::screen_get
        ))
        .routes(routes!(api::reviews::list_reviews))
        .routes(routes!(api::reviews::get_review))
        .routes(routes!(api::reviews::decide_review))
        .routes(routes!(
            api::special_measures::create_measure,
            api::special_measures::list_measures
        ))
        .routes(routes!(api::special_measures::get_measure))
        .routes(routes!(api::special_measures::extend_measure))
        .routes(routes!(api::special_measures::revoke_measure))
        .routes(routes!(api::special_measures::measure_report))
        .routes(routes!(
            api::verification::list_evidence,
            api::verification::post_evidence
        ))
        .routes(routes!(api::verification::post_document))
        .routes(routes!(api::verification::create_otp))
        .routes(routes!(api::verification::verify_otp))
        .routes(routes!(api::verification::create_verification_request))
        .routes(routes!(api::verification::vendor_callback))
        .routes(routes!(api::verification::list_cases))
        .routes(routes!(api::verification::get_case))
        .routes(routes!(api::verification::resolve_case))
        .routes(routes!(api::policy::get_policy, api::policy::put_policy))
        .routes(routes!(api::notices::get_notice))
        .routes(routes!(api::notices::get_notice_version))
        .routes(routes!(
            api::notices::record_notice,
            api::notices::list_notices
        ))
        .routes(routes!(api::determination::get_determination_history))
        .routes(routes!(api::consistency::post_consistency))
        .split_for_parts()
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().1
}

/// Puts the request id where errors can find it, and counts requests.
async fn request_context(req: Request, next: Next) -> Response {
    let rid = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_string();
    let method = req.method().clone();
    let has_body = req
        .headers()
        .contains_key(axum::http::header::TRANSFER_ENCODING)
        || req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0");
    let started = std::time::Instant::now();
    let mut response = crate::error::REQUEST_ID
        .scope(rid.clone(), next.run(req))
        .await;
    let status = response.status().as_u16();
    if has_body && status >= 400 {
        // A refused request's body may be left unread (auth and size checks come first);
        // closing the connection keeps the client from sending its next request into it.
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            HeaderValue::from_static("close"),
        );
    }
    metrics::counter!("cip_http_requests_total", "status" => status.to_string()).increment(1);
    metrics::histogram!("cip_http_request_seconds").record(started.elapsed().as_secs_f64());
    // Paths are not logged: they carry record ids only, but queries could carry more.
    tracing::info!(request_id = %rid, method = %method, status, elapsed_ms = started.elapsed().as_millis() as u64, "request");
    response
}

async fn not_found() -> crate::error::ApiError {
    crate::error::ApiError::NotFound("route")
}

pub fn router(state: AppState, request_timeout: Duration) -> Router {
    let (api_router, spec) = routes();
    let x_request_id = HeaderName::from_static("x-request-id");
    api_router
        .merge(SwaggerUi::new("/docs").url("/openapi.json", spec))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(request_context))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            request_timeout,
        ))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(tower_http::set_header::SetResponseHeaderLayer::overriding(
            axum::http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

/// Background work owned by the server: audit checkpoints, keyring refresh and re-encryption
/// after a data key rotation, the screening index refresh and the re-screen after a list
/// change. Each job is a `run_once` that tests call directly; the loop here
/// only schedules it.
pub fn spawn_jobs(
    state: AppState,
    checkpoint_every: Duration,
    list_refresh: Duration,
    cancel: CancellationToken,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut handles = Vec::new();
    handles.push(tokio::spawn(
        state
            .last_access
            .clone()
            .run(state.store.clone(), cancel.clone()),
    ));
    {
        let state = state.clone();
        let cancel = cancel.clone();
        handles.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(checkpoint_every);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = crate::audit::checkpoint(state.store.as_ref(), &state.checkpoint_key).await {
                            tracing::warn!(error = %e, "audit checkpoint failed; will retry");
                        }
                    }
                }
            }
        }));
    }
    {
        // Re-screen stored customers after each list change, as soon as one is queued.
        let state = state.clone();
        let cancel = cancel.clone();
        handles.push(tokio::spawn(async move {
            loop {
                match crate::reviews::rescreen_run_once(&state).await {
                    Ok(crate::jobs::Ran::Did(n)) => {
                        tracing::info!(customers = n, "re-screened after a list change");
                        continue;
                    }
                    Ok(crate::jobs::Ran::Idle) => {}
                    Err(e) => tracing::warn!(error = %e, "re-screen failed"),
                }
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = state.screening.changed.notified() => {}
                    // A change another instance holds stays queued: look at it again.
                    _ = tokio::time::sleep(Duration::from_secs(30)) => {}
                }
            }
        }));
    }
    {
        // Another process (the CLI, another instance) may activate a list version: pick it up.
        // `serve` loaded the lists just before this, so the first look is one period later.
        let state = state.clone();
        let cancel = cancel.clone();
        handles.push(tokio::spawn(async move {
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + list_refresh, list_refresh);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = state.screening.refresh(state.store.as_ref()).await {
                            tracing::warn!(error = %e, "screening index refresh failed; will retry");
                        }
                    }
                }
            }
        }));
    }
    {
        // A policy applied (here or on another instance) re-evaluates every open account,
        // once across instances (docs/design/0013-policy.md). Looked for at the same period.
        let state = state.clone();
        let cancel = cancel.clone();
        handles.push(tokio::spawn(async move {
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + list_refresh, list_refresh);
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        if let Err(e) = crate::policy::reevaluate_run_once(&state).await {
                            tracing::warn!(error = %e, "policy re-evaluation failed; will retry");
                        }
                    }
                }
            }
        }));
    }
    {
        let state = state.clone();
        let cancel = cancel.clone();
        handles.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        match crate::jobs::rotation_run_once(&state, 500).await {
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "re-encryption pass failed; will retry"),
                        }
                    }
                }
            }
        }));
    }
    {
        // Records without screening keys of the current generation (written before they
        // existed, or keyed under an earlier derivation) are keyed in the background; until
        // then a list change re-screens every customer (docs/design/0008, "Keyed re-screen").
        let state = state.clone();
        let cancel = cancel.clone();
        handles.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        match crate::screen_keys::backfill_run_once(&state, 500).await {
                            Ok(crate::jobs::Ran::Did(n)) => tracing::info!(customers = n, "screening keys derived"),
                            Ok(crate::jobs::Ran::Idle) => {}
                            Err(e) => tracing::warn!(error = %e, "deriving screening keys failed; will retry"),
                        }
                    }
                }
            }
        }));
    }
    {
        // Access-record retention: whole segments, once an hour.
        let state = state.clone();
        let cancel = cancel.clone();
        handles.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        match crate::access::retention_run_once(state.store.as_ref(), state.access.as_ref(), crate::time::now_micros()).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(segments = n, "access retention dropped expired segments"),
                            Err(e) => tracing::warn!(error = %e, "access retention failed; will retry"),
                        }
                    }
                }
            }
        }));
    }
    {
        // The lifecycle's due work under the policy in force (deadlines per risk tier,
        // closing, re-verification, reminders), once an hour: the rules count in days, and
        // one pass walks every candidate.
        let state = state.clone();
        let cancel = cancel.clone();
        handles.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        match crate::jobs::lifecycle_run_once(&state, crate::time::now_micros(), 500).await {
                            Ok(crate::jobs::Ran::Did(n)) => {
                                tracing::info!(done = n, "lifecycle: accounts moved or reminded by policy");
                            }
                            Ok(crate::jobs::Ran::Idle) => {}
                            Err(e) => tracing::warn!(error = %e, "lifecycle pass failed; will retry"),
                        }
                    }
                }
            }
        }));
    }
    {
        // Special measures taking effect: apply each to the accounts that exist then. Every
        // minute, so a measure whose effective date arrives applies within a minute of it.
        let state = state.clone();
        let cancel = cancel.clone();
        handles.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        match crate::measures::measures_run_once(&state, crate::time::now_micros(), 10).await {
                            Ok(crate::jobs::Ran::Did(n)) => tracing::info!(actions = n, "special measures applied to existing accounts"),
                            Ok(crate::jobs::Ran::Idle) => {}
                            Err(e) => tracing::warn!(error = %e, "special-measures pass failed; will retry"),
                        }
                    }
                }
            }
        }));
    }
    {
        // The determination history: customers whose accounts were accessed since the last
        // pass are looked at again (a new access country changes the determination). The
        // first pass runs one period after start.
        let state = state.clone();
        let cancel = cancel.clone();
        handles.push(tokio::spawn(async move {
            let every = Duration::from_secs(300);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            let holder = state.screening.instance.clone();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        loop {
                            match crate::history::access_run_once(&state, &holder, 500).await {
                                Ok(crate::jobs::Ran::Did(_)) => continue,
                                Ok(crate::jobs::Ran::Idle) => break,
                                Err(e) => {
                                    tracing::warn!(error = %e, "determination history pass failed; will retry");
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        }));
    }
    {
        // Webhook deliveries: claim what is due, send, record. An idle pass costs one small
        // query; a busy one goes straight on to the next.
        let cancel = cancel.clone();
        handles.push(tokio::spawn(async move {
            let client = crate::webhooks::client();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tick.tick() => {
                        loop {
                            match crate::webhooks::deliver_run_once(&state, &client, crate::time::now_micros(), 50).await {
                                Ok(crate::jobs::Ran::Did(_)) => continue,
                                Ok(crate::jobs::Ran::Idle) => break,
                                Err(e) => {
                                    tracing::warn!(error = %e, "webhook delivery pass failed; will retry");
                                    break;
                                }
                            }
                        }
                    }
                }
            }
        }));
    }
    handles
}

/// What must be in place before a server says it is ready: the screening lists loaded
/// and, when configured, the access-event stream connected. [`prepare`] makes it; `cip
/// serve` calls it before announcing that it listens, so a configured NATS that cannot be
/// reached stops the start with an error naming `access_nats_url` instead of a "listening"
/// line followed by a failure.
pub struct Prepared {
    stream: Option<crate::access_stream::AccessStream>,
}

/// Loads the screening lists and connects the access-event stream (when configured).
pub async fn prepare(
    state: &AppState,
    config: &crate::config::Config,
) -> std::io::Result<Prepared> {
    // Screening must not answer from an empty index while lists are stored: load them first.
    state
        .screening
        .refresh(state.store.as_ref())
        .await
        .map_err(|e| std::io::Error::other(format!("loading the screening lists: {e}")))?;
    // The access-event stream, when configured: connected before serving, so a wrong URL
    // stops the start instead of events silently piling up.
    let stream = match &config.access_nats {
        Some(n) => Some(
            crate::access_stream::AccessStream::connect(n)
                .await
                .map_err(|e| {
                    std::io::Error::other(format!(
                        "{e} (set by access_nats_url / CIP_ACCESS_NATS_URL; remove it to run without the access-event stream)"
                    ))
                })?,
        ),
        None => None,
    };
    Ok(Prepared { stream })
}

/// Serves until `cancel` fires, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    config: &crate::config::Config,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    crate::telemetry::install();
    let prepared = prepare(&state, config).await?;
    serve_prepared(listener, state, config, prepared, cancel).await
}

/// [`serve`] after [`prepare`].
pub async fn serve_prepared(
    listener: tokio::net::TcpListener,
    state: AppState,
    config: &crate::config::Config,
    prepared: Prepared,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    crate::telemetry::install();
    let stream = prepared.stream;
    let mut jobs = spawn_jobs(
        state.clone(),
        Duration::from_secs(config.audit_checkpoint_secs),
        Duration::from_secs(config.list_refresh_secs),
        cancel.clone(),
    );
    if let Some(stream) = stream {
        jobs.push(tokio::spawn(stream.run(state.clone(), cancel.clone())));
    }
    let app = router(
        state.clone(),
        Duration::from_secs(config.request_timeout_secs),
    );
    let shutdown = cancel.clone();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    cancel.cancel();
    for j in jobs {
        let _ = j.await;
    }
    // Requests have drained: the advances they queued are written before the process ends.
    if let Err(e) = state.last_access.flush(state.store.as_ref()).await {
        tracing::warn!(error = %e, "final last_accessed_at advance failed");
    }
    // Seal what was written in this run.
    if let Err(e) = crate::audit::checkpoint(state.store.as_ref(), &state.checkpoint_key).await {
        tracing::warn!(error = %e, "final audit checkpoint failed");
    }
    result
}

pub fn state_from(inst: &crate::install::Installation, config: &crate::config::Config) -> AppState {
    AppState {
        store: inst.store.clone(),
        access: inst.access.clone(),
        access_ingest: Arc::new(tokio::sync::Semaphore::new(4)),
        access_max_body_bytes: config.access_max_body_bytes,
        access_future_skew_micros: config.access_future_skew_secs as i64 * 1_000_000,
        geoip: inst.geoip.clone(),
        keyring: inst.keyring.clone(),
        master: inst.master.clone(),
        checkpoint_key: inst.checkpoint_key.clone(),
        max_body_bytes: config.max_body_bytes,
        ownership_threshold_bp: 2500,
        screening: Arc::new(crate::screening::Screening::default()),
        screening_threshold: config.screening_threshold,
        verification: Arc::new(crate::verification::Verification::from_config(
            &config.verification,
            &config.data_dir,
        )),
        access_accounts: Default::default(),
        last_access: Default::default(),
    }
}

pub type SharedStore = Arc<dyn cip_store::Store>;
