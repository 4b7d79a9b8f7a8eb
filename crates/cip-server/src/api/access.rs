//! The access record over HTTP: ingestion of access events, and the reads an investigator
//! makes (an account's events and addresses, the accounts behind an address or network, the
//! export of one account's history). Every read of events is audited before it is answered.

use std::io::Read;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use cip_access::parse::{ParseConfig, Rejected};
use cip_access::{IpRange, StoredEvent, ip_from_key};
use cip_core::model::Permission;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::*;
use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::time::{now_micros, parse_rfc3339, to_rfc3339};

const DAY: i64 = 24 * 3600 * 1_000_000;

use super::audit_draft as audit;

/// The outcome of an ingestion request.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IngestResult {
    /// Events stored by this request (durable when this answer is sent).
    pub accepted: u64,
    /// Events that were already stored (re-sent): stored once.
    pub duplicates: u64,
    /// Lines (or array items) refused; each is listed in `rejected_lines`.
    pub rejected: u64,
    pub rejected_lines: Vec<RejectedLine>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RejectedLine {
    /// 1-based line of the NDJSON body, or item of the JSON array.
    pub line: u64,
    pub reason: String,
}

/// Reads the body, gunzipping it when `Content-Encoding: gzip`, never holding more than
/// `limit` bytes (before or after decompression).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > limit
    {
        return Err(ApiError::PayloadTooLarge);
    }
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase())
    {
        None => Ok(raw.to_vec()),
        Some(e) if e == "identity" => Ok(raw.to_vec()),
        Some(e) if e == "gzip" => {
            let mut out = Vec::with_capacity(raw.len() * 4);
            let mut dec = flate2::read::MultiGzDecoder::new(&raw[..]).take(limit as u64 + 1);
            dec.read_to_end(&mut out)
                .map_err(|e| ApiError::BadQuery(format!("the gzip body cannot be read: {e}")))?;
            if out.len() > limit {
                return Err(ApiError::PayloadTooLarge);
            }
            Ok(out)
        }
        Some(other) => Err(ApiError::BadQuery(format!(
            "Content-Encoding `{other}` is not supported; use gzip or none"
        ))),
    }
}

/// Store access events: a JSON array of events, or NDJSON (one event per line), optionally
/// gzip-compressed (`Content-Encoding: gzip`). Each event:
/// `{account, principal, ip, time, action, user_agent?, session?, resource?, event_id?}` where
/// `account` is a cip account id or the provider's external id, `time` is RFC 3339 with an
/// offset, and `action` one of login, logout, console, api, ssh, rdp, admin, billing, support.
/// Good lines are stored and bad ones listed; a 200 means the accepted events are durable.
/// Re-sent events (same event id, or same account, principal, ip, time and action) are stored
/// once, so retrying a batch is safe.
#[utoipa::path(post, path = "/v1/access-events", tag = "access",
    request_body(content = String, description = "JSON array or NDJSON of access events", content_type = "application/x-ndjson"),
    responses((status = 200, body = IngestResult),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 507, description = "Disk full: not acknowledged", body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn ingest_access_events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestResult>, ApiError> {
    principal.require(Permission::WriteRecords)?;
    let _permit = state
        .access_ingest
        .acquire()
        .await
        .map_err(|_| ApiError::Unavailable("ingestion is shutting down".into()))?;
    let raw = read_body(&headers, body, state.access_max_body_bytes).await?;
    let mut cfg = ParseConfig::new(now_micros());
    cfg.future_skew_micros = state.access_future_skew_micros;
    let (good, mut bad) =
        tokio::task::spawn_blocking(move || cip_access::parse::parse_body(&raw, &cfg))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(ApiError::MalformedJson)?;
    let mut resolver = crate::access::Resolver::with_known(state.access_accounts.clone());
    let outcome = crate::access::ingest(
        state.store.as_ref(),
        state.access.as_ref(),
        &state.last_access,
        &mut resolver,
        good,
        &mut bad,
        None,
    )
    .await?;
    bad.sort_by_key(|r| r.line);
    metrics::counter!("cip_access_events_rejected_total").increment(bad.len() as u64);
    state
        .store
        .append_audit(vec![audit(
            &principal,
            &headers,
            "access_events.ingest",
            "access_event",
            None,
            vec![
                format!("accepted={}", outcome.accepted),
                format!("duplicates={}", outcome.duplicates),
                format!("rejected={}", bad.len()),
            ],
            None,
        )])
        .await?;
    Ok(Json(IngestResult {
        accepted: outcome.accepted,
        duplicates: outcome.duplicates,
        rejected: bad.len() as u64,
        rejected_lines: bad
            .into_iter()
            .map(|Rejected { line, reason }| RejectedLine { line, reason })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RangeQuery {
    /// RFC 3339 with offset; inclusive.
    pub from: Option<String>,
    /// RFC 3339 with offset; exclusive. Default: now.
    pub to: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// RFC 3339 with offset; inclusive. Default: the beginning of the record.
    pub from: Option<String>,
    /// RFC 3339 with offset; exclusive. Default: now.
    pub to: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// 1 to 1000, default 100.
    pub limit: Option<u32>,
}

/// `[from, to)` from the query, with defaults: `to` = now (plus the accepted clock skew, so
/// events stamped a little ahead are included), `from` = `to` minus `default_span`.
fn range(
    from: &Option<String>,
    to: &Option<String>,
    default_span: i64,
    skew: i64,
) -> Result<(i64, i64), ApiError> {
    let t = |name: &str, v: &str| {
        parse_rfc3339(v).map_err(|m| ApiError::BadQuery(format!("{name}: {m}")))
    };
    let to = match to {
        Some(v) => t("to", v)?,
        None => now_micros() + skew + 1,
    };
    let from = match from {
        Some(v) => t("from", v)?,
        None => to.saturating_sub(default_span),
    };
    if from >= to {
        return Err(ApiError::BadQuery("from must be before to".into()));
    }
    Ok((from, to))
}

async fn require_account(state: &AppState, id: Uuid) -> Result<(), ApiError> {
    state
        .store
        .get_account(id)
        .await?
        .ok_or(ApiError::NotFound("account"))?;
    Ok(())
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessEventOut {
    /// RFC 3339, UTC.
    pub time: String,
    pub ip: String,
    pub principal: String,
    pub action: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

fn event_out(e: &StoredEvent) -> AccessEventOut {
    let ev = &e.event;
    AccessEventOut {
        time: to_rfc3339(ev.at),
        ip: ip_from_key(ev.ip).to_string(),
        principal: ev.principal.clone(),
        action: ev.action.as_str().into(),
        user_agent: ev.user_agent.clone(),
        session: ev.session.clone(),
        resource: ev.resource.clone(),
        event_id: ev.event_id.clone(),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessEventPage {
    pub items: Vec<AccessEventOut>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// An account's access events in a time range, oldest first. Audited (with `X-Purpose`).
#[utoipa::path(get, path = "/v1/accounts/{id}/access-events", tag = "access",
    params(("id" = Uuid, Path), EventsQuery,
        ("X-Purpose" = Option<String>, Header, description = "Why the events are read; kept in the audit trail.")),
    responses((status = 200, body = AccessEventPage), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn account_access_events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<AccessEventPage>, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    let purpose = purpose(&headers)?;
    let (from, to) = range(
        &q.from,
        &q.to,
        i64::MAX / 2,
        state.access_future_skew_micros,
    )?;
    let from = if q.from.is_none() { 0 } else { from };
    let limit = match q.limit {
        None => 100,
        Some(n) if (1..=1000).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::BadQuery(
                "limit must be between 1 and 1000".into(),
            ));
        }
    };
    require_account(&state, id).await?;
    let page = state
        .access
        .account_events(id, from, to, q.cursor.as_deref(), limit)
        .await?;
    state
        .store
        .append_audit(vec![audit(
            &principal,
            &headers,
            "access_events.read",
            "account",
            Some(id.to_string()),
            vec!["/access_events".into(), format!("count={}", page.len())],
            purpose,
        )])
        .await?;
    let next_cursor = super::next_cursor(&page, limit, |e| e.cursor.clone());
    Ok(Json(AccessEventPage {
        items: page.iter().map(event_out).collect(),
        next_cursor,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IpUseOut {
    pub ip: String,
    /// ISO 3166-1 alpha-2 country the address geolocates to (`geoip_db`); null when unknown
    /// or when no database is configured (see `geolocation`).
    pub country: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountIps {
    /// Where the countries come from (or that there is no database).
    pub geolocation: crate::geoip::GeoSource,
    pub items: Vec<IpUseOut>,
}

/// The distinct IP addresses an account used in a range (default: the last 90 days), with
/// first/last seen, the number of events and the country each geolocates to. Audited.
#[utoipa::path(get, path = "/v1/accounts/{id}/ips", tag = "access",
    params(("id" = Uuid, Path), RangeQuery, ("X-Purpose" = Option<String>, Header)),
    responses((status = 200, body = AccountIps), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn account_ips(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Query(q): Query<RangeQuery>,
) -> Result<Json<AccountIps>, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    let purpose = purpose(&headers)?;
    let (from, to) = range(&q.from, &q.to, 90 * DAY, state.access_future_skew_micros)?;
    require_account(&state, id).await?;
    let ips = state.access.account_ips(id, from, to).await?;
    state
        .store
        .append_audit(vec![audit(
            &principal,
            &headers,
            "access_ips.read",
            "account",
            Some(id.to_string()),
            vec!["/ips".into(), format!("count={}", ips.len())],
            purpose,
        )])
        .await?;
    let geo = state.geoip.as_ref();
    Ok(Json(AccountIps {
        geolocation: geo.source(),
        items: ips
            .into_iter()
            .map(|u| IpUseOut {
                ip: ip_from_key(u.ip).to_string(),
                country: geo
                    .country(ip_from_key(u.ip))
                    .map(|c| c.as_str().to_string()),
                first_seen: to_rfc3339(u.first_seen),
                last_seen: to_rfc3339(u.last_seen),
                count: u.count,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CountryUseOut {
    /// ISO 3166-1 alpha-2; null for the addresses whose country is unknown.
    pub country: Option<String>,
    /// Whether the country counts as the United States (U.S. territories do).
    pub united_states: bool,
    pub first_seen: String,
    pub last_seen: String,
    /// Events from this country.
    pub count: u64,
    /// Distinct addresses in this country.
    pub ips: u64,
    /// The address the account was first accessed from in this country.
    pub first_ip: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountCountries {
    /// Where the countries come from (or that there is no database: then one item, country
    /// null, holds every address).
    pub geolocation: crate::geoip::GeoSource,
    /// First accessed from first; the unknown country last.
    pub items: Vec<CountryUseOut>,
}

/// The countries an account was accessed from in a range (default: the whole record), from
/// the geolocation of its distinct addresses: first and last access from each, events,
/// addresses. Feeds the U.S./foreign determination ("located in the United States").
/// Audited.
#[utoipa::path(get, path = "/v1/accounts/{id}/countries", tag = "access",
    params(("id" = Uuid, Path), RangeQuery, ("X-Purpose" = Option<String>, Header)),
    responses((status = 200, body = AccountCountries), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn account_countries(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Query(q): Query<RangeQuery>,
) -> Result<Json<AccountCountries>, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    let purpose = purpose(&headers)?;
    let (from, to) = range(
        &q.from,
        &q.to,
        i64::MAX / 2,
        state.access_future_skew_micros,
    )?;
    let from = if q.from.is_none() { 0 } else { from };
    require_account(&state, id).await?;
    let ips = state.access.account_ips(id, from, to).await?;
    let by = crate::access::countries(state.geoip.as_ref(), &ips);
    state
        .store
        .append_audit(vec![audit(
            &principal,
            &headers,
            "access_countries.read",
            "account",
            Some(id.to_string()),
            vec!["/countries".into(), format!("count={}", by.len())],
            purpose,
        )])
        .await?;
    Ok(Json(AccountCountries {
        geolocation: state.geoip.source(),
        items: by
            .into_iter()
            .map(|c| CountryUseOut {
                united_states: c.country.is_some_and(cip_core::determination::is_us),
                country: c.country.map(|c| c.as_str().to_string()),
                first_seen: to_rfc3339(c.first_seen),
                last_seen: to_rfc3339(c.last_seen),
                count: c.count,
                ips: c.ips,
                first_ip: ip_from_key(c.first_ip).to_string(),
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountUseOut {
    pub account_id: Uuid,
    pub ip: String,
    pub first_seen: String,
    pub last_seen: String,
    pub count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IpAccounts {
    pub items: Vec<AccountUseOut>,
}

/// Which accounts used this IP address or network (CIDR; write `/` as `%2F`) in a range
/// (default: the last 365 days)? One item per account and address. A search across accounts:
/// admin, analyst and auditor keys only. Audited.
#[utoipa::path(get, path = "/v1/access/ips/{network}/accounts", tag = "access",
    params(("network" = String, Path, description = "An address (192.0.2.7, 2001:db8::1) or a network (192.0.2.0%2F24)"),
        RangeQuery, ("X-Purpose" = Option<String>, Header)),
    responses((status = 200, body = IpAccounts), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn ip_accounts(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(network): Path<String>,
    Query(q): Query<RangeQuery>,
) -> Result<Json<IpAccounts>, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    principal.require(Permission::ListRecords)?;
    let purpose = purpose(&headers)?;
    let net =
        IpRange::parse(network.trim()).map_err(|m| ApiError::BadQuery(format!("network: {m}")))?;
    let (from, to) = range(&q.from, &q.to, 366 * DAY, state.access_future_skew_micros)?;
    let found = state.access.ip_accounts(net, from, to).await?;
    state
        .store
        .append_audit(vec![audit(
            &principal,
            &headers,
            "access_ip.lookup",
            "access_ip",
            None,
            vec![format!("matches={}", found.len())],
            purpose,
        )])
        .await?;
    Ok(Json(IpAccounts {
        items: found
            .into_iter()
            .map(|u| AccountUseOut {
                account_id: u.account,
                ip: ip_from_key(u.ip).to_string(),
                first_seen: to_rfc3339(u.first_seen),
                last_seen: to_rfc3339(u.last_seen),
                count: u.count,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// `ndjson` (default) or `csv`.
    pub format: Option<String>,
}

const EXPORT_PAGE: u32 = 5_000;

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn export_line(e: &StoredEvent, csv: bool) -> String {
    let o = event_out(e);
    if csv {
        let opt = |v: &Option<String>| v.as_deref().map(csv_field).unwrap_or_default();
        format!(
            "{},{},{},{},{},{},{},{}\n",
            o.time,
            o.ip,
            csv_field(&o.principal),
            o.action,
            opt(&o.user_agent),
            opt(&o.session),
            opt(&o.resource),
            opt(&o.event_id)
        )
    } else {
        let mut line = serde_json::to_string(&o).unwrap_or_default();
        line.push('\n');
        line
    }
}

/// One account's whole access history, for a legal request, streamed as NDJSON or CSV
/// (oldest first). A bulk export: admin, analyst and auditor keys only. Audited before the
/// first byte is sent.
#[utoipa::path(get, path = "/v1/accounts/{id}/access-events/export", tag = "access",
    params(("id" = Uuid, Path), ExportQuery, ("X-Purpose" = Option<String>, Header)),
    responses((status = 200, description = "NDJSON or CSV", content_type = "application/x-ndjson"),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export_access_events(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, ApiError> {
    principal.require(Permission::ReadPersonalData)?;
    principal.require(Permission::ListRecords)?;
    let purpose = purpose(&headers)?;
    let csv = match q.format.as_deref().unwrap_or("ndjson") {
        "ndjson" => false,
        "csv" => true,
        _ => return Err(ApiError::BadQuery("format must be csv or ndjson".into())),
    };
    require_account(&state, id).await?;
    state
        .store
        .append_audit(vec![audit(
            &principal,
            &headers,
            "access_events.export",
            "account",
            Some(id.to_string()),
            vec!["/access_events".into()],
            purpose,
        )])
        .await?;
    let access = state.access.clone();
    let header_line =
        csv.then(|| "time,ip,principal,action,user_agent,session,resource,event_id\n".to_string());
    // State: (header still to send, cursor, finished).
    let stream = futures_util::stream::unfold(
        (header_line, None::<String>, false),
        move |(header_line, cursor, done)| {
            let access = access.clone();
            async move {
                if let Some(h) = header_line {
                    return Some((Ok::<_, std::io::Error>(h), (None, cursor, done)));
                }
                if done {
                    return None;
                }
                match access
                    .account_events(id, 0, i64::MAX, cursor.as_deref(), EXPORT_PAGE)
                    .await
                {
                    Err(e) => {
                        tracing::error!(error = %e, "access export failed mid-stream");
                        Some((
                            Err(std::io::Error::other("export failed")),
                            (None, None, true),
                        ))
                    }
                    Ok(page) => {
                        if page.is_empty() {
                            return None;
                        }
                        let last = page.len() < EXPORT_PAGE as usize;
                        let next = page.last().map(|e| e.cursor.clone());
                        let mut chunk = String::new();
                        for e in &page {
                            chunk.push_str(&export_line(e, csv));
                        }
                        Some((Ok(chunk), (None, next, last)))
                    }
                }
            }
        },
    );
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    let ext = if csv { "csv" } else { "ndjson" };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"access-{id}.{ext}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegalHoldIn {
    /// true sets the hold, false lifts it.
    pub held: bool,
}

/// Set or lift a legal hold on an account's access events: held events are never deleted by
/// retention. Recorded in the audit trail.
#[utoipa::path(put, path = "/v1/accounts/{id}/legal-hold", tag = "access", request_body = LegalHoldIn,
    params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn set_legal_hold(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    body: crate::extract::JsonBody<LegalHoldIn>,
) -> Result<axum::http::StatusCode, ApiError> {
    principal.require(Permission::WriteRecords)?;
    principal.require(Permission::ListRecords)?;
    require_account(&state, id).await?;
    let held = body.value.held;
    // The hold lives in the access record, the audit trail in the identity store: the entry
    // is written first, so a hold never exists without its entry.
    state
        .store
        .append_audit(vec![audit(
            &principal,
            &headers,
            if held {
                "legal_hold.set"
            } else {
                "legal_hold.lift"
            },
            "account",
            Some(id.to_string()),
            vec!["/legal_hold".into()],
            None,
        )])
        .await?;
    state.access.set_legal_hold(id, held, now_micros()).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
