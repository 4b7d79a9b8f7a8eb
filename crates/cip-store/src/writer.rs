//! What the write paths of both adapters share: the operations a writer task applies, and
//! how their results travel back.

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::*;

/// A record re-sealed under another data key: the document, the key and the re-derived digest.
pub(crate) struct Resealed {
    pub document: Vec<u8>,
    pub key_id: u32,
    pub digest: Option<SealedDigest>,
}

pub(crate) enum Op {
    InitMeta(String, Vec<u8>),
    SetMeta(String, Vec<u8>, AuditDraft),
    ClaimJob {
        name: String,
        holder: String,
        now: i64,
        until: i64,
    },
    ReleaseJob {
        name: String,
        holder: String,
    },
    InsertApiKey(ApiKeyRow, AuditDraft),
    RevokeApiKey(String, i64, AuditDraft),
    InsertCustomer(CustomerWrite),
    UpdateCustomer(CustomerWrite, i64),
    Reseal(Uuid, i64, Resealed, AuditDraft),
    InsertAccount(AccountWrite),
    UpdateAccount(AccountWrite, i64),
    TouchLastAccessed(Vec<(Uuid, i64)>),
    AppendAudit(Vec<AuditDraft>),
    InsertCheckpoint(CheckpointRow),
    InsertEndpoint(WebhookEndpointRow, AuditDraft),
    DisableEndpoint(Uuid, i64, AuditDraft),
    ClaimDeliveries {
        now: i64,
        lease_until: i64,
        limit: u32,
    },
    FinishDelivery(Uuid, Uuid, DeliveryOutcome),
    InsertListVersion(Box<ListVersionWrite>),
    OpenReview(Box<ReviewRow>, AuditDraft),
    DecideReview(Box<ReviewDecision>),
    CloseReviews(String, Vec<String>, i64, AuditDraft),
    InsertMeasure(Box<MeasureRow>, AuditDraft),
    UpdateMeasure(Box<MeasureRow>, i64, AuditDraft),
    ClaimMeasureSweeps {
        now: i64,
        lease_until: i64,
        limit: u32,
    },
    FinishMeasureSweep(Uuid, i64),
    RecordMeasureActions(Vec<MeasureActionWrite>),
    InsertAccountWithActions(AccountWrite, Vec<MeasureActionWrite>),
    // verification (sqlite_verification.rs, postgres/verification_ops.rs)
    InsertEvidence(Box<EvidenceWrite>),
    InsertOtp(Box<OtpRow>, AuditDraft),
    UpdateOtp(Box<OtpUpdate>),
    InsertVerificationRequest(Box<VerificationRequestRow>, AuditDraft),
    OpenCases(Vec<(CaseRow, AuditDraft)>),
    ResolveCase(Box<CaseResolution>),
    // special measures re-checked when a customer's record changes (migration 0009)
    UpdateCustomerWithActions(
        Box<CustomerWrite>,
        i64,
        Vec<MeasureActionWrite>,
        Vec<TieChange>,
    ),
    // the one-time-code throttle checked in the writing transaction
    InsertOtpThrottled(Box<OtpRow>, OtpThrottle, AuditDraft),
    RecordRefusals(Vec<RefusalRow>, AuditDraft),
    // notices and determination history (sqlite_history.rs, postgres/history_ops.rs)
    InsertNotices(Vec<NoticeRow>, AuditDraft),
    RecordDetermination(Box<DeterminationRow>, Option<AuditDraft>),
    // lifecycle reminders (sqlite_due.rs, postgres/due_ops.rs; migration 0011)
    RecordReminders(Vec<ReminderWrite>),
    // screening keys derived by the backfill (sqlite_screen_keys.rs, postgres/screen_keys_ops.rs)
    PutScreenKeys(Vec<(Uuid, i64, ScreenKeys)>, AuditDraft),
}

pub(crate) enum Out {
    Unit,
    Bool(bool),
    Bytes(Vec<u8>),
    Claimed(Vec<ClaimedDelivery>),
    Count(u64),
    Measures(Vec<MeasureRow>),
    Otp(OtpOutcome),
    Seq(Option<i64>),
}

pub(crate) struct Job {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Result<Out>>,
}

/// Failures that the operations meet before writing anything (see `ops`).
pub(crate) fn is_clean_failure(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::NotFound
            | StoreError::VersionConflict { .. }
            | StoreError::Duplicate { .. }
            | StoreError::IdempotencyReplay(_)
    )
}

pub(crate) fn unit(out: Out) -> Result<()> {
    match out {
        Out::Unit => Ok(()),
        _ => Err(StoreError::Backend(
            "writer returned an unexpected result".into(),
        )),
    }
}

pub(crate) fn claimed(out: Out) -> Result<Vec<ClaimedDelivery>> {
    match out {
        Out::Claimed(c) => Ok(c),
        _ => Err(StoreError::Backend(
            "writer returned an unexpected result".into(),
        )),
    }
}

pub(crate) fn measures(out: Out) -> Result<Vec<MeasureRow>> {
    match out {
        Out::Measures(m) => Ok(m),
        _ => Err(StoreError::Backend(
            "writer returned an unexpected result".into(),
        )),
    }
}

pub(crate) fn count(out: Out) -> Result<u64> {
    match out {
        Out::Count(n) => Ok(n),
        _ => Err(StoreError::Backend(
            "writer returned an unexpected result".into(),
        )),
    }
}

pub(crate) fn seq(out: Out) -> Result<Option<i64>> {
    match out {
        Out::Seq(s) => Ok(s),
        _ => Err(StoreError::Backend(
            "writer returned an unexpected result".into(),
        )),
    }
}

pub(crate) fn boolean(out: Out) -> Result<bool> {
    match out {
        Out::Bool(b) => Ok(b),
        _ => Err(StoreError::Backend(
            "writer returned an unexpected result".into(),
        )),
    }
}

/// The next group: `first` plus whatever else is already waiting, up to `max`.
pub(crate) fn next_group(first: Job, rx: &mut mpsc::Receiver<Job>, max: usize) -> Vec<Job> {
    let mut group = vec![first];
    while group.len() < max {
        match rx.try_recv() {
            Ok(job) => group.push(job),
            Err(_) => break,
        }
    }
    group
}

/// What every member of a failed group is told: a full disk stays a full disk (so the API
/// can say so), anything else means "unavailable, retry".
pub(crate) fn group_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::DiskFull => StoreError::DiskFull,
        other => StoreError::Unavailable(other.to_string()),
    }
}

pub(crate) fn fail_all(
    replies: impl IntoIterator<Item = oneshot::Sender<Result<Out>>>,
    e: &StoreError,
) {
    for reply in replies {
        let _ = reply.send(Err(group_error(e)));
    }
}

/// Hands `op` to a writer task and waits for its committed (or failed) outcome.
pub(crate) async fn submit(writer: &mpsc::Sender<Job>, op: Op, backend: &str) -> Result<Out> {
    let stopped = || StoreError::Unavailable(format!("the {backend} writer has stopped"));
    let (reply, rx) = oneshot::channel();
    writer
        .send(Job { op, reply })
        .await
        .map_err(|_| stopped())?;
    rx.await.map_err(|_| stopped())?
}

pub(crate) fn otp(out: Out) -> Result<OtpOutcome> {
    match out {
        Out::Otp(o) => Ok(o),
        _ => Err(StoreError::Backend(
            "writer returned an unexpected result".into(),
        )),
    }
}
