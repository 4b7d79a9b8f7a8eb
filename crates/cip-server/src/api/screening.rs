//! Screening lists (`/v1/lists`) and screening queries (`/v1/screen`).
//!
//! A screening query carries personal data (a name, a birth date): it is never logged, and
//! its audit entry lists which fields were given and how many candidates came back, never
//! the values.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use cip_core::model::Permission;
use cip_screen::{EntryKind, IdentifierKind, PreparedQuery, QueryIdentifier, ScreenError};
use cip_store::ListVersionMeta;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Principal;
use crate::error::{ApiError, ErrorBody, FieldProblem};
use crate::extract::JsonBody;
use crate::screening::{self, ImportError, ImportRequest, ListFile, ListFormat};
use crate::state::AppState;
use crate::time::to_rfc3339;

/// The largest list upload accepted (the full SDN set is about 3.5 MB).
pub const MAX_LIST_BYTES: usize = 256 * 1024 * 1024;
/// Candidates returned at most per query.
const MAX_LIMIT: u32 = 100;

fn coded(status: StatusCode, code: &'static str, message: String) -> ApiError {
    ApiError::Coded {
        status,
        code,
        message,
        details: Vec::new(),
    }
}

fn import_error(e: ImportError) -> ApiError {
    let code = e.code();
    match e {
        ImportError::Request(m) => coded(StatusCode::BAD_REQUEST, code, m),
        ImportError::Parse(p) => ApiError::Coded {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code,
            message: format!("The list file does not parse; nothing was stored: {p}"),
            details: vec![FieldProblem {
                field: format!(
                    "{}{}",
                    p.file,
                    p.location
                        .as_deref()
                        .map(|l| format!(" {l}"))
                        .unwrap_or_default()
                ),
                code: serde_json::to_value(&p.problem)
                    .ok()
                    .and_then(|v| {
                        v.get("problem")
                            .and_then(|k| k.as_str())
                            .map(str::to_string)
                    })
                    .unwrap_or_else(|| "invalid_file".into()),
                message: p.problem.to_string(),
            }],
        },
        ImportError::Refused(s) => coded(
            StatusCode::CONFLICT,
            code,
            format!("{s}; nothing was stored. Send force=true to replace the list anyway."),
        ),
        ImportError::Conflict { current } => ApiError::VersionConflict { current },
        ImportError::Store(s) => ApiError::from(s),
        ImportError::Internal(m) => ApiError::Internal(m),
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportParams {
    /// `ofac_legacy`, `un_xml`, `ftm_jsonl`, `own_csv` or `own_json`.
    pub format: String,
    /// Replace the list even when the new version is empty or more than 20 % smaller.
    pub force: Option<bool>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiffCounts {
    pub added: i64,
    pub changed: i64,
    pub removed: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListVersionDto {
    pub list: String,
    pub version: i64,
    pub content_hash: String,
    pub entry_count: i64,
    pub imported_at: String,
    pub source_format: String,
    /// Against the version this one replaced.
    pub diff: DiffCounts,
}

impl From<ListVersionMeta> for ListVersionDto {
    fn from(m: ListVersionMeta) -> Self {
        ListVersionDto {
            list: m.list_id,
            version: m.version,
            content_hash: m.content_hash,
            entry_count: m.entry_count,
            imported_at: to_rfc3339(m.imported_at),
            source_format: m.source_format,
            diff: DiffCounts {
                added: m.added,
                changed: m.changed,
                removed: m.removed,
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportResult {
    /// False when the files had exactly the active version's content (nothing was stored).
    pub created: bool,
    pub previous_version: Option<i64>,
    #[serde(flatten)]
    pub version: ListVersionDto,
}

/// Reads the upload: a `multipart/form-data` body (one part per file; for `ofac_legacy` the
/// parts are named `sdn` (or `cons_prim`), `alt`, `add`, `comments`, or carry those file
/// names) or the bare file as the body.
async fn read_files(req: Request, state: &AppState) -> Result<Vec<ListFile>, ApiError> {
    if let Some(len) = req
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        && len > MAX_LIST_BYTES
    {
        return Err(ApiError::PayloadTooLarge);
    }
    let multipart = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/form-data"));
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_LIST_BYTES)
        .await
        .map_err(|_| ApiError::PayloadTooLarge)?;
    if !multipart {
        return Ok(vec![ListFile {
            name: "body".into(),
            part: None,
            bytes: bytes.to_vec(),
        }]);
    }
    let req = Request::from_parts(parts, axum::body::Body::from(bytes));
    let mut form = Multipart::from_request(req, state).await.map_err(|e| {
        coded(
            StatusCode::BAD_REQUEST,
            "CIP-LIST-0001",
            format!("the multipart body is malformed: {e}"),
        )
    })?;
    let mut files = Vec::new();
    loop {
        let field = form.next_field().await.map_err(|e| {
            coded(
                StatusCode::BAD_REQUEST,
                "CIP-LIST-0001",
                format!("the multipart body is malformed: {e}"),
            )
        })?;
        let Some(field) = field else { break };
        // The part name says which file it is; the file name is the fallback.
        let part = field.name().filter(|n| !n.is_empty()).map(str::to_string);
        let name = match (field.file_name(), &part) {
            (Some(f), _) if !f.is_empty() => f.to_string(),
            (_, Some(p)) => p.clone(),
            _ => format!("part {}", files.len() + 1),
        };
        let bytes = field.bytes().await.map_err(|e| {
            coded(
                StatusCode::BAD_REQUEST,
                "CIP-LIST-0001",
                format!("reading part `{name}` failed: {e}"),
            )
        })?;
        files.push(ListFile {
            name,
            part,
            bytes: bytes.to_vec(),
        });
    }
    Ok(files)
}

/// Load a new version of a screening list (admin). The body is the list file itself, or a
/// `multipart/form-data` body with one part per file; OFAC's legacy set is sent as parts
/// named `sdn` (or `cons_prim`), `alt`, `add` and `comments` (`curl -F sdn=@sdn.csv -F
/// alt=@alt.csv …`). The reply gives the new version and its diff against the previous one.
/// An empty list, or one more than 20 % smaller than the active version, is refused (409)
/// unless `force=true`. The version and its entries are stored in one transaction; the
/// server's screening index switches to it when the reply is sent.
#[utoipa::path(post, path = "/v1/lists/{list}/versions", tag = "screening",
    params(("list" = String, Path, description = "List id, e.g. `ofac-sdn`"), ImportParams),
    request_body(content = Vec<u8>, description = "The list file, or multipart/form-data with one part per file", content_type = "application/octet-stream"),
    responses((status = 201, body = ImportResult, description = "New version stored and active"),
              (status = 200, body = ImportResult, description = "Same content as the active version: nothing stored"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "Refused replacement (empty or shrunk), or a concurrent import"),
              (status = 413, body = ErrorBody), (status = 422, body = ErrorBody, description = "The file does not parse; the error names file, line and problem")),
    security(("bearer" = [])))]
pub async fn import_list(
    State(state): State<AppState>,
    principal: Principal,
    Path(list): Path<String>,
    params: Result<Query<ImportParams>, QueryRejection>,
    headers: HeaderMap,
    req: Request,
) -> Result<(StatusCode, Json<ImportResult>), ApiError> {
    principal.require(Permission::ManageLists)?;
    let Query(params) = params.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let list = screening::parse_list_id(&list)
        .map_err(|m| coded(StatusCode::BAD_REQUEST, "CIP-LIST-0001", m))?;
    let format = ListFormat::parse(&params.format).ok_or_else(|| {
        coded(
            StatusCode::BAD_REQUEST,
            "CIP-LIST-0001",
            "format must be one of ofac_legacy, un_xml, ftm_jsonl, own_csv, own_json".into(),
        )
    })?;
    let files = read_files(req, &state).await?;
    let _guard = state.screening.import_lock.lock().await;
    let outcome = screening::import(
        state.store.as_ref(),
        ImportRequest {
            list,
            format,
            files,
            force: params.force.unwrap_or(false),
            actor: principal.key_id.clone(),
            role: principal.role.as_str().into(),
            request_id: super::request_id(&headers),
        },
        &|_| {},
    )
    .await
    .map_err(import_error)?;
    let loaded = state
        .screening
        .current()
        .versions
        .get(&outcome.meta.list_id)
        == Some(&outcome.meta.version);
    if !loaded {
        match state
            .screening
            .replace_list(&outcome.meta.list_id, outcome.meta.version, outcome.entries)
            .await
        {
            // Stored customers are re-screened against the added and changed entries only.
            Ok(()) => state.screening.queue_change(crate::reviews::ListChange {
                list_id: outcome.meta.list_id.clone(),
                version: outcome.meta.version,
                added_or_changed: outcome.added_or_changed,
                removed: outcome.removed,
            }),
            // The version is stored; the refresh job will load it (and queue the re-screen).
            Err(e) => tracing::error!(error = %e, "screening index update failed"),
        }
    }
    let status = if outcome.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(ImportResult {
            created: outcome.created,
            previous_version: outcome.previous_version,
            version: outcome.meta.into(),
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListsPage {
    /// Every list with its active version.
    pub items: Vec<ListVersionDto>,
}

/// The loaded screening lists and their active versions (public list data; any role).
#[utoipa::path(get, path = "/v1/lists", tag = "screening",
    responses((status = 200, body = ListsPage), (status = 401, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_lists(
    State(state): State<AppState>,
    _principal: Principal,
) -> Result<Json<ListsPage>, ApiError> {
    let items = state.store.list_lists().await?;
    Ok(Json(ListsPage {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionsPage {
    /// Every stored version of the list, oldest first.
    pub items: Vec<ListVersionDto>,
}

/// Every stored version of one list (any role).
#[utoipa::path(get, path = "/v1/lists/{list}/versions", tag = "screening",
    params(("list" = String, Path, description = "List id")),
    responses((status = 200, body = VersionsPage), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_versions(
    State(state): State<AppState>,
    _principal: Principal,
    Path(list): Path<String>,
) -> Result<Json<VersionsPage>, ApiError> {
    let items = state.store.list_versions(&list).await?;
    if items.is_empty() {
        return Err(ApiError::NotFound("list"));
    }
    Ok(Json(VersionsPage {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EntrySummary {
    pub entry_id: String,
    /// person, entity, vessel, aircraft or unknown.
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListDiffDto {
    pub list: String,
    pub version: i64,
    /// The version this one is compared with (none for a list's first version).
    pub previous_version: Option<i64>,
    pub added: Vec<EntrySummary>,
    /// The new content of entries that changed.
    pub changed: Vec<EntrySummary>,
    pub removed: Vec<String>,
}

fn kind_str(k: EntryKind) -> String {
    match k {
        EntryKind::Person => "person",
        EntryKind::Entity => "entity",
        EntryKind::Vessel => "vessel",
        EntryKind::Aircraft => "aircraft",
        EntryKind::Unknown => "unknown",
    }
    .into()
}

fn summary(e: &cip_screen::ListEntry) -> EntrySummary {
    EntrySummary {
        entry_id: e.entry_id.clone(),
        kind: kind_str(e.kind),
        name: e.primary_name().to_string(),
    }
}

/// What changed from the previous version to version `version` (any role).
#[utoipa::path(get, path = "/v1/lists/{list}/versions/{version}/diff", tag = "screening",
    params(("list" = String, Path, description = "List id"), ("version" = i64, Path, description = "Version number")),
    responses((status = 200, body = ListDiffDto), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn version_diff(
    State(state): State<AppState>,
    _principal: Principal,
    Path((list, version)): Path<(String, i64)>,
) -> Result<Json<ListDiffDto>, ApiError> {
    let new = state
        .store
        .get_list_version(&list, version)
        .await?
        .ok_or(ApiError::NotFound("list version"))?;
    let old = if version > 1 {
        state.store.get_list_version(&list, version - 1).await?
    } else {
        None
    };
    let previous_version = old.as_ref().map(|o| o.meta.version);
    let list_id = cip_screen::ListId::new(list.clone());
    let d = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let new = cip_screen::Snapshot::new(
            list_id.clone(),
            version.to_string(),
            screening::decode_entries(&new.entries)?,
        );
        let old = match old {
            Some(o) => screening::decode_entries(&o.entries)?,
            None => Vec::new(),
        };
        let old = cip_screen::Snapshot::new(list_id, (version - 1).to_string(), old);
        Ok(cip_screen::diff(&old, &new))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("diff task: {e}")))?
    .map_err(ApiError::Internal)?;
    Ok(Json(ListDiffDto {
        list,
        version,
        previous_version,
        added: d.added.iter().map(summary).collect(),
        changed: d.changed.iter().map(summary).collect(),
        removed: d.removed,
    }))
}

// ---- screening queries ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdentifierIn {
    /// passport, national_id, tax, imo, wallet, email, registration or other.
    pub kind: String,
    pub value: String,
}

/// A screening query: the party's names (primary first) and what else is known.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScreenIn {
    #[serde(default)]
    pub names: Vec<String>,
    /// `1960-01-31`, `1960-01` or `1960`.
    #[serde(default, alias = "dob")]
    pub birth_date: Option<String>,
    /// ISO 3166 alpha-2 codes or country names (nationality, citizenship, residence).
    #[serde(default)]
    pub countries: Vec<String>,
    #[serde(default)]
    pub identifiers: Vec<IdentifierIn>,
    /// person, entity, vessel or aircraft; absent: compare as any.
    pub kind: Option<String>,
    /// Candidates at most, 1–100 (default 10).
    pub limit: Option<u32>,
    /// Lowest score returned, 0–1 (default 0.5).
    pub min_score: Option<f32>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ScreenParams {
    /// The name to screen.
    pub name: String,
    /// Date of birth: `1960-01-31`, `1960-01` or `1960`.
    pub dob: Option<String>,
    /// Comma-separated ISO codes or country names.
    pub country: Option<String>,
    /// person, entity, vessel or aircraft.
    pub kind: Option<String>,
    pub limit: Option<u32>,
    pub min_score: Option<f32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CandidateDto {
    pub list: String,
    pub entry_id: String,
    pub kind: String,
    /// The entry's primary name.
    pub entry_name: String,
    /// 0–1; at or above `threshold` is a potential match.
    pub score: f32,
    pub potential_match: bool,
    /// Why: the best-aligned pair of names with each token's alignment (exact, phonetic,
    /// transliteration, typo, initial…), unmatched tokens, legal forms, number conflicts,
    /// identifier / birth date / country evidence.
    pub explanation: ExplanationDto,
}

/// Why a candidate scored what it scored.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExplanationDto {
    /// The best-aligned pair of names and how their tokens aligned.
    pub name: NameExplanationDto,
    /// Which kind of list name matched: primary, aka, fka, weak, …
    pub entry_name_kind: String,
    /// The name score before evidence (0–1).
    pub name_score: f32,
    pub identifiers: Vec<IdentifierEvidenceDto>,
    /// `agree`, `near` or `conflict`; absent without a birth date on both sides.
    pub birth_date: Option<String>,
    /// Query countries that the entry also has (ISO alpha-2).
    pub countries_in_common: Vec<String>,
    /// The query's kind (person, entity, vessel) differs from the entry's.
    pub kind_mismatch: bool,
}

/// The alignment of one query name with one list name.
#[derive(Debug, Serialize, ToSchema)]
pub struct NameExplanationDto {
    pub query_name: String,
    pub entry_name: String,
    pub aligned: Vec<TokenAlignmentDto>,
    pub unmatched_query: Vec<String>,
    pub unmatched_entry: Vec<String>,
    /// Legal forms seen on each side (canonical spellings).
    pub query_legal_forms: Vec<String>,
    pub entry_legal_forms: Vec<String>,
    pub legal_form_conflict: bool,
    pub number_conflict: bool,
    /// One side is a vessel name and the other carries a company legal form.
    pub vessel_vs_company: bool,
    /// The names are equal once spaces and punctuation are removed.
    pub spacing_only: bool,
    pub score: f32,
}

/// Two tokens aligned, and how.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAlignmentDto {
    pub query: String,
    pub entry: String,
    /// `exact`, `phonetic`, `transliteration`, `abbreviation`, `initial`, `edit` or
    /// `compound`.
    pub how: String,
    pub similarity: f32,
}

/// An identifier of the query against the entry's.
#[derive(Debug, Serialize, ToSchema)]
pub struct IdentifierEvidenceDto {
    /// passport, national_id, tax, email, imo, …
    pub kind: String,
    pub query_value: String,
    pub entry_value: Option<String>,
    /// `agree` or `conflict`.
    pub agreement: String,
}

/// An enum's wire name (its serde `snake_case` form).
fn wire<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

impl From<cip_screen::Explanation> for ExplanationDto {
    fn from(e: cip_screen::Explanation) -> Self {
        let n = e.name;
        ExplanationDto {
            name: NameExplanationDto {
                query_name: n.query_name,
                entry_name: n.entry_name,
                aligned: n
                    .aligned
                    .into_iter()
                    .map(|a| TokenAlignmentDto {
                        how: wire(&a.how),
                        query: a.query,
                        entry: a.entry,
                        similarity: a.similarity,
                    })
                    .collect(),
                unmatched_query: n.unmatched_query,
                unmatched_entry: n.unmatched_entry,
                query_legal_forms: n.query_legal_forms,
                entry_legal_forms: n.entry_legal_forms,
                legal_form_conflict: n.legal_form_conflict,
                number_conflict: n.number_conflict,
                vessel_vs_company: n.vessel_vs_company,
                spacing_only: n.spacing_only,
                score: n.score,
            },
            entry_name_kind: wire(&e.entry_name_kind),
            name_score: e.name_score,
            identifiers: e
                .identifiers
                .into_iter()
                .map(|i| IdentifierEvidenceDto {
                    kind: wire(&i.kind),
                    agreement: wire(&i.agreement),
                    query_value: i.query_value,
                    entry_value: i.entry_value,
                })
                .collect(),
            birth_date: e.birth_date.map(|a| wire(&a)),
            countries_in_common: e.countries_in_common,
            kind_mismatch: e.kind_mismatch,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ScreenResult {
    pub threshold: f32,
    /// The list versions screened against.
    #[schema(value_type = Object)]
    pub lists: std::collections::BTreeMap<String, i64>,
    /// Best first.
    pub candidates: Vec<CandidateDto>,
}

fn problem(field: String, code: &str, message: String) -> FieldProblem {
    FieldProblem {
        field,
        code: code.into(),
        message,
    }
}

/// Parses a query into the engine's form, listing every problem.
pub fn parse_query(input: ScreenIn) -> Result<(PreparedQuery, usize, f32, Vec<String>), ApiError> {
    let mut problems = Vec::new();
    let mut given = Vec::new();
    if !input.names.is_empty() {
        given.push("/names".to_string());
    }
    if input.names.is_empty() && input.identifiers.is_empty() {
        problems.push(problem(
            "/names".into(),
            "required",
            "give at least one name (or an identifier)".into(),
        ));
    }
    for (i, n) in input.names.iter().enumerate() {
        let field = format!("/names/{i}");
        let len = n.chars().count();
        if n.trim().is_empty() {
            problems.push(problem(field, "empty_name", "the name is empty".into()));
        } else if len > 1000 {
            problems.push(problem(
                field,
                "name_too_long",
                format!("the name is {len} characters long; the limit is 1000"),
            ));
        } else if n.chars().any(char::is_control) {
            problems.push(problem(
                field,
                "control_characters",
                "the name contains control characters".into(),
            ));
        }
    }
    if input.names.len() > 32 {
        problems.push(problem(
            "/names".into(),
            "too_many_names",
            format!("{} names; the limit is 32", input.names.len()),
        ));
    }
    let kind = match input.kind.as_deref() {
        None => None,
        Some(k) => match k {
            "person" | "individual" => Some(EntryKind::Person),
            "entity" => Some(EntryKind::Entity),
            "vessel" => Some(EntryKind::Vessel),
            "aircraft" => Some(EntryKind::Aircraft),
            _ => {
                problems.push(problem(
                    "/kind".into(),
                    "invalid_value",
                    "kind must be person, entity, vessel or aircraft".into(),
                ));
                None
            }
        },
    };
    if let Some(d) = &input.birth_date {
        given.push("/birth_date".into());
        if cip_screen::BirthDate::parse_loose(d).is_none() {
            problems.push(problem(
                "/birth_date".into(),
                "invalid_date",
                "not a date: use 1960-01-31, 1960-01 or 1960".into(),
            ));
        }
    }
    if !input.countries.is_empty() {
        given.push("/countries".into());
    }
    for (i, c) in input.countries.iter().enumerate() {
        if cip_screen::countries::to_alpha2(c).is_none() {
            problems.push(problem(
                format!("/countries/{i}"),
                "unknown_country",
                "not an ISO 3166 country code or country name".into(),
            ));
        }
    }
    let mut identifiers = Vec::new();
    if !input.identifiers.is_empty() {
        given.push("/identifiers".into());
    }
    for (i, id) in input.identifiers.iter().enumerate() {
        match serde_json::from_value::<IdentifierKind>(serde_json::Value::String(id.kind.clone()))
        {
            Ok(kind) => identifiers.push(QueryIdentifier {
                kind,
                value: id.value.clone(),
            }),
            Err(_) => problems.push(problem(
                format!("/identifiers/{i}/kind"),
                "invalid_value",
                "kind must be passport, national_id, tax, imo, wallet, email, registration or other"
                    .into(),
            )),
        }
        if id.value.trim().is_empty()
            || id.value.len() > 200
            || id.value.chars().any(char::is_control)
        {
            problems.push(problem(
                format!("/identifiers/{i}/value"),
                "invalid_value",
                "the value must be 1 to 200 printable characters".into(),
            ));
        }
    }
    let limit = input.limit.unwrap_or(10);
    if !(1..=MAX_LIMIT).contains(&limit) {
        problems.push(problem(
            "/limit".into(),
            "invalid_value",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    let min_score = input.min_score.unwrap_or(0.5);
    if !(0.0..=1.0).contains(&min_score) {
        problems.push(problem(
            "/min_score".into(),
            "invalid_value",
            "min_score must be between 0 and 1".into(),
        ));
    }
    if !problems.is_empty() {
        return Err(ApiError::Validation(problems));
    }
    let query = cip_screen::Query {
        names: input.names,
        kind,
        birth_date: input.birth_date,
        countries: input.countries,
        identifiers,
    };
    let prepared = PreparedQuery::new(&query).map_err(|e| {
        let (field, code) = match &e {
            ScreenError::EmptyName => ("/names", "empty_name"),
            ScreenError::NameTooLong { .. } => ("/names", "name_too_long"),
            ScreenError::ControlCharacters => ("/names", "control_characters"),
            ScreenError::TooManyNames { .. } => ("/names", "too_many_names"),
            _ => ("", "invalid_value"),
        };
        ApiError::Validation(vec![problem(
            field.into(),
            code,
            match e {
                ScreenError::EmptyName => {
                    "no name has anything to compare (only punctuation, honorifics or legal forms)"
                        .into()
                }
                other => other.to_string(),
            },
        )])
    })?;
    Ok((prepared, limit as usize, min_score, given))
}

/// Screens a parsed query against the loaded index, records the audit entry (fields given,
/// number of candidates; never the values) and answers.
async fn run_screen(
    state: &AppState,
    principal: &Principal,
    headers: &HeaderMap,
    input: ScreenIn,
) -> Result<Json<ScreenResult>, ApiError> {
    principal.require(Permission::Screen)?;
    let purpose = super::purpose(headers)?;
    let (query, limit, min_score, mut fields) = parse_query(input)?;
    let loaded = state.screening.current();
    if loaded.versions.is_empty() {
        return Err(coded(
            StatusCode::CONFLICT,
            "CIP-SCREEN-NO-LISTS",
            "No screening list is loaded: import one first (POST /v1/lists/{list}/versions or `cip lists import`).".into(),
        ));
    }
    let threshold = cip_screen::DEFAULT_THRESHOLD;
    let (loaded, candidates) = tokio::task::spawn_blocking(move || {
        let c = loaded.index.screen(&query, limit, min_score);
        (loaded, c)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("screening task: {e}")))?;
    let potential = candidates.iter().filter(|c| c.score >= threshold).count();
    fields.push(format!("candidates={}", candidates.len()));
    fields.push(format!("potential_matches={potential}"));
    state
        .store
        .append_audit(vec![super::audit_draft(
            principal,
            headers,
            "screening.query",
            "screening",
            None,
            fields,
            purpose,
        )])
        .await?;
    Ok(Json(ScreenResult {
        threshold,
        lists: loaded.versions.clone(),
        candidates: candidates
            .into_iter()
            .map(|c| CandidateDto {
                list: c.list.to_string(),
                entry_id: c.entry_id,
                kind: kind_str(c.kind),
                entry_name: c.entry_name,
                score: c.score,
                potential_match: c.score >= threshold,
                explanation: c.explanation.into(),
            })
            .collect(),
    }))
}

/// Screen a person or entity against every loaded list: ranked candidates with a score and
/// an explanation each (admin, analyst, integration; audited without the query's values).
#[utoipa::path(post, path = "/v1/screen", tag = "screening",
    request_body = ScreenIn,
    params(("X-Purpose" = Option<String>, Header, description = "Why (recorded in the audit trail)")),
    responses((status = 200, body = ScreenResult), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody, description = "No list is loaded"),
              (status = 422, body = ErrorBody, description = "Every problem of the query, by field")),
    security(("bearer" = [])))]
pub async fn screen_post(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    body: JsonBody<ScreenIn>,
) -> Result<Json<ScreenResult>, ApiError> {
    run_screen(&state, &principal, &headers, body.value).await
}

/// Ad-hoc screening of one name (same answer as `POST /v1/screen`).
#[utoipa::path(get, path = "/v1/screen", tag = "screening",
    params(ScreenParams, ("X-Purpose" = Option<String>, Header, description = "Why (recorded in the audit trail)")),
    responses((status = 200, body = ScreenResult), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn screen_get(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    p: Result<Query<ScreenParams>, QueryRejection>,
) -> Result<Json<ScreenResult>, ApiError> {
    principal.require(Permission::Screen)?;
    let Query(p) = p.map_err(|e| ApiError::BadQuery(e.body_text()))?;
    let input = ScreenIn {
        names: vec![p.name],
        birth_date: p.dob.filter(|d| !d.trim().is_empty()),
        countries: p
            .country
            .map(|c| {
                c.split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        identifiers: Vec::new(),
        kind: p.kind,
        limit: p.limit,
        min_score: p.min_score,
    };
    run_screen(&state, &principal, &headers, input).await
}
