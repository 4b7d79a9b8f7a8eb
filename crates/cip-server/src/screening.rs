//! The screening service around the `cip-screen` engine: list imports (parse → diff against
//! the active version → replace guard → one atomic store write), the in-memory index of every
//! list's active version, and its refresh when another process (the CLI, another instance)
//! activated a version.
//!
//! List entries are public list data and are stored in clear. A screening *query* is personal
//! data: it is never logged, and its audit entry names which fields were given, not their
//! values.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use cip_screen::parse::ofac_legacy::OfacFiles;
use cip_screen::parse::{Source, ftm_jsonl, ofac_legacy, own_csv, own_json, un_xml};
use cip_screen::{Index, ListEntry, ListId, ParseError, ReplacePolicy, ScreenError, Snapshot};
use cip_store::{AuditDraft, ListVersionMeta, ListVersionWrite, Store, StoreError};

/// The list file formats `cip` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// OFAC's legacy CSV set: `sdn.csv` (or `cons_prim.csv`) with optional `alt.csv`,
    /// `add.csv` and `sdn_comments.csv` (or their `cons_` twins).
    OfacLegacy,
    /// The UN Security Council consolidated list (XML).
    UnXml,
    /// OpenSanctions / FollowTheMoney entities, one JSON object per line.
    FtmJsonl,
    /// The provider's own CSV (`id,kind,name,aliases,birth_date,countries,identifiers,remarks`).
    OwnCsv,
    /// The provider's own JSON (an array of the same fields).
    OwnJson,
}

impl ListFormat {
    pub const ALL: [ListFormat; 5] = [
        ListFormat::OfacLegacy,
        ListFormat::UnXml,
        ListFormat::FtmJsonl,
        ListFormat::OwnCsv,
        ListFormat::OwnJson,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ListFormat::OfacLegacy => "ofac_legacy",
            ListFormat::UnXml => "un_xml",
            ListFormat::FtmJsonl => "ftm_jsonl",
            ListFormat::OwnCsv => "own_csv",
            ListFormat::OwnJson => "own_json",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

/// A list id as the API and CLI accept it: 1–64 characters of `a-z 0-9 . _ -`, starting with a
/// letter or digit (it appears in URLs, audit entries and file names).
pub fn parse_list_id(raw: &str) -> Result<ListId, String> {
    let ok = !raw.is_empty()
        && raw.len() <= 64
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && raw
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphanumeric);
    if ok {
        Ok(ListId::new(raw))
    } else {
        Err(format!(
            "list id `{}` is invalid: use 1 to 64 characters a-z, 0-9, '.', '_' or '-', starting with a letter or digit",
            raw.chars().take(80).collect::<String>()
        ))
    }
}

/// One uploaded file: the name it came with (for error messages and OFAC roles) and its bytes.
#[derive(Debug, Clone)]
pub struct ListFile {
    /// The file name (what error messages name).
    pub name: String,
    /// The multipart part name, when the file came as one (says which OFAC file it is).
    pub part: Option<String>,
    pub bytes: Vec<u8>,
}

/// Which file of the OFAC legacy set a name denotes: `sdn`/`primary`/`cons_prim` is the
/// primary file; a name containing `alt`, `add` or `comment` is that file. Extensions and
/// directories are ignored, so both multipart part names (`alt`) and file names
/// (`cons_alt.csv`) work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfacRole {
    Primary,
    Alt,
    Add,
    Comments,
}

pub fn ofac_role(name: &str) -> Option<OfacRole> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = base.split('.').next().unwrap_or(base).to_ascii_lowercase();
    if stem.contains("comment") {
        Some(OfacRole::Comments)
    } else if stem.contains("alt") {
        Some(OfacRole::Alt)
    } else if stem.contains("add") {
        Some(OfacRole::Add)
    } else if matches!(stem.as_str(), "sdn" | "primary" | "prim" | "cons_prim") {
        Some(OfacRole::Primary)
    } else {
        None
    }
}

/// Why an import did not produce a new version. Each has a stable code.
#[derive(Debug)]
pub enum ImportError {
    /// The request itself is wrong (files missing or unrecognised, unknown format).
    Request(String),
    /// A file did not parse; names the file, the line or record and the problem.
    Parse(ParseError),
    /// The replace guard refused an empty or drastically shrunk list (use `force`).
    Refused(ScreenError),
    /// Another import activated a version meanwhile; retry to diff against it.
    Conflict {
        current: i64,
    },
    Store(StoreError),
    Internal(String),
}

impl ImportError {
    pub fn code(&self) -> &'static str {
        match self {
            ImportError::Request(_) => "CIP-LIST-0001",
            ImportError::Parse(e) => e.code(),
            ImportError::Refused(e) => e.code(),
            ImportError::Conflict { .. } => "CIP-CONFLICT-0001",
            ImportError::Store(_) => "CIP-UNAVAILABLE-0001",
            ImportError::Internal(_) => "CIP-INTERNAL-0001",
        }
    }
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::Request(m) => f.write_str(m),
            ImportError::Parse(e) => write!(f, "{e}"),
            ImportError::Refused(e) => {
                write!(f, "{e}; nothing was stored (force to replace anyway)")
            }
            ImportError::Conflict { current } => write!(
                f,
                "another import activated version {current} meanwhile; nothing was stored, import again"
            ),
            ImportError::Store(e) => write!(f, "{e}"),
            ImportError::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl From<StoreError> for ImportError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict { current } => ImportError::Conflict { current },
            other => ImportError::Store(other),
        }
    }
}

/// Parses the files of one list in one format.
pub fn parse_files(
    list: &ListId,
    format: ListFormat,
    files: &[ListFile],
) -> Result<Vec<ListEntry>, ImportError> {
    if files.is_empty() {
        return Err(ImportError::Request("no list file was given".into()));
    }
    type Parser = fn(&ListId, &Source<'_>) -> Result<Vec<ListEntry>, ParseError>;
    let parser: Parser = match format {
        ListFormat::OfacLegacy => return parse_ofac(list, files),
        ListFormat::UnXml => un_xml::parse,
        ListFormat::FtmJsonl => ftm_jsonl::parse,
        ListFormat::OwnCsv => own_csv::parse,
        ListFormat::OwnJson => own_json::parse,
    };
    let [f] = files else {
        return Err(ImportError::Request(format!(
            "format {} takes exactly one file, {} were given",
            format.as_str(),
            files.len()
        )));
    };
    parser(list, &Source::new(&f.name, &f.bytes)).map_err(ImportError::Parse)
}

fn src(f: Option<&ListFile>) -> Option<Source<'_>> {
    f.map(|f| Source::new(&f.name, &f.bytes))
}

fn parse_ofac(list: &ListId, files: &[ListFile]) -> Result<Vec<ListEntry>, ImportError> {
    let mut by_role: [Option<&ListFile>; 4] = [None; 4];
    for f in files {
        let role = f
            .part
            .as_deref()
            .and_then(ofac_role)
            .or_else(|| ofac_role(&f.name))
            .ok_or_else(|| {
            ImportError::Request(format!(
                "`{}` is not a file of the OFAC legacy set: name the parts sdn (or cons_prim), alt, add and comments",
                f.name
            ))
        })?;
        let slot = &mut by_role[role as usize];
        if slot.is_some() {
            return Err(ImportError::Request(format!(
                "two files for the same part of the OFAC set ({role:?}): `{}`",
                f.name
            )));
        }
        *slot = Some(f);
    }
    let primary = src(by_role[OfacRole::Primary as usize]).ok_or_else(|| {
        ImportError::Request(
            "the OFAC legacy set needs its primary file (sdn.csv or cons_prim.csv)".into(),
        )
    })?;
    ofac_legacy::parse(
        list,
        &OfacFiles {
            primary,
            alt: src(by_role[OfacRole::Alt as usize]),
            add: src(by_role[OfacRole::Add as usize]),
            comments: src(by_role[OfacRole::Comments as usize]),
        },
    )
    .map_err(ImportError::Parse)
}

/// Stored entries (JSON) back into the engine's model.
pub fn decode_entries(bytes: &[u8]) -> Result<Vec<ListEntry>, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("stored list entries do not decode: {e}"))
}

/// What an import asks for.
pub struct ImportRequest {
    pub list: ListId,
    pub format: ListFormat,
    pub files: Vec<ListFile>,
    pub force: bool,
    pub actor: String,
    pub role: String,
    pub request_id: Option<String>,
}

/// What an import did.
#[derive(Debug, Clone)]
pub struct ImportOutcome {
    /// The active version now (the new one, or the unchanged previous one).
    pub meta: ListVersionMeta,
    /// False when the files had exactly the content of the active version: nothing stored.
    pub created: bool,
    pub previous_version: Option<i64>,
    /// Ids of added and changed entries, and of removed ones (for re-screening).
    pub added_or_changed: Vec<String>,
    pub removed: Vec<String>,
    /// The new version's entries, sorted by id (to update the in-memory index).
    pub entries: Vec<ListEntry>,
}

/// Progress of an import, for the CLI's bar.
#[derive(Debug, Clone, Copy)]
pub enum ImportStage {
    Parsing,
    Comparing,
    Storing,
}

/// Parses, compares with the active version, applies the replace guard, and stores the new
/// version with its audit entry in one transaction. Nothing is stored on any refusal.
pub async fn import(
    store: &dyn Store,
    req: ImportRequest,
    progress: &(dyn Fn(ImportStage) + Send + Sync),
) -> Result<ImportOutcome, ImportError> {
    progress(ImportStage::Parsing);
    let ImportRequest {
        list,
        format,
        files,
        force,
        actor,
        role,
        request_id,
    } = req;
    let parsed = {
        let list = list.clone();
        tokio::task::spawn_blocking(move || parse_files(&list, format, &files))
            .await
            .map_err(|e| ImportError::Internal(format!("parser task failed: {e}")))??
    };
    progress(ImportStage::Comparing);
    let previous = match store
        .list_lists()
        .await?
        .into_iter()
        .find(|m| m.list_id == list.as_str())
    {
        None => None,
        Some(meta) => {
            let row = store
                .get_list_version(&meta.list_id, meta.version)
                .await?
                .ok_or_else(|| ImportError::Internal("active version vanished".into()))?;
            Some(row)
        }
    };
    let prev_version = previous.as_ref().map(|r| r.meta.version);
    let version = prev_version.unwrap_or(0) + 1;
    let (new, old) = {
        let list = list.clone();
        let prev_bytes = previous.as_ref().map(|r| r.entries.clone());
        tokio::task::spawn_blocking(move || -> Result<_, String> {
            let new = Snapshot::new(list.clone(), version.to_string(), parsed);
            let old = match prev_bytes {
                None => None,
                Some(b) => Some(Snapshot::new(
                    list,
                    (version - 1).to_string(),
                    decode_entries(&b)?,
                )),
            };
            Ok((new, old))
        })
        .await
        .map_err(|e| ImportError::Internal(format!("compare task failed: {e}")))?
        .map_err(ImportError::Internal)?
    };
    let policy = ReplacePolicy {
        force,
        ..ReplacePolicy::default()
    };
    match &old {
        Some(old) => new
            .replace_guard(old, policy)
            .map_err(ImportError::Refused)?,
        None if new.is_empty() && !force => {
            return Err(ImportError::Refused(ScreenError::EmptyReplacement {
                previous: 0,
            }));
        }
        None => {}
    }
    if let (Some(old), Some(prev)) = (&old, &previous)
        && old.content_hash == new.content_hash
    {
        return Ok(ImportOutcome {
            meta: prev.meta.clone(),
            created: false,
            previous_version: prev_version,
            added_or_changed: Vec::new(),
            removed: Vec::new(),
            entries: new.entries,
        });
    }
    let d = match &old {
        Some(old) => cip_screen::diff(old, &new),
        None => cip_screen::ListDiff {
            added: new.entries.clone(),
            ..Default::default()
        },
    };
    progress(ImportStage::Storing);
    let entries_json = serde_json::to_vec(&new.entries)
        .map_err(|e| ImportError::Internal(format!("serialising entries: {e}")))?;
    let now = crate::time::now_micros();
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let meta = ListVersionMeta {
        list_id: list.as_str().to_string(),
        version,
        content_hash: new.content_hash.clone(),
        entry_count: count(new.len()),
        imported_at: now,
        source_format: format.as_str().into(),
        added: count(d.added.len()),
        changed: count(d.changed.len()),
        removed: count(d.removed.len()),
    };
    store
        .insert_list_version(ListVersionWrite {
            row: cip_store::ListVersionRow {
                meta: meta.clone(),
                entries: entries_json,
            },
            expected_active: prev_version,
            audit: AuditDraft {
                at: now,
                actor,
                role,
                action: "list.import".into(),
                record_type: "screening_list".into(),
                record_id: Some(list.as_str().to_string()),
                fields: vec![
                    format!("version={version}"),
                    format!("format={}", format.as_str()),
                    format!("entries={}", new.len()),
                    format!("added={}", d.added.len()),
                    format!("changed={}", d.changed.len()),
                    format!("removed={}", d.removed.len()),
                    format!("forced={force}"),
                ],
                request_id,
                purpose: None,
            },
        })
        .await?;
    Ok(ImportOutcome {
        meta,
        created: true,
        previous_version: prev_version,
        added_or_changed: d
            .added
            .iter()
            .chain(&d.changed)
            .map(|e| e.entry_id.clone())
            .collect(),
        removed: d.removed,
        entries: new.entries,
    })
}

/// The index over every list's active version, and which versions it holds.
pub struct Loaded {
    pub index: Index,
    pub versions: BTreeMap<String, i64>,
}

/// The in-memory screening state a server keeps. Cheap to read (an `Arc` swap).
pub struct Screening {
    loaded: RwLock<Arc<Loaded>>,
    /// Serialises this process's imports and index rebuilds.
    pub import_lock: tokio::sync::Mutex<()>,
    /// List changes whose re-screen of stored customers is still to run.
    pending: std::sync::Mutex<std::collections::VecDeque<crate::reviews::ListChange>>,
    /// Wakes the re-screen job.
    pub changed: tokio::sync::Notify,
    /// Held by a re-screen from taking a change until it is done, so a caller that gets
    /// `Idle` knows every change taken before has been fully applied.
    pub rescreen_lock: tokio::sync::Mutex<()>,
    /// Set after the first load: later loads are list changes that need a re-screen.
    initialised: std::sync::atomic::AtomicBool,
    /// This process, as the holder of job leases (instances on one database re-screen each
    /// list change once).
    pub instance: String,
    /// Re-screens that failed, by (list, version): failed attempts and the earliest time
    /// (Unix micros) of the next one. The change itself stays in `pending`.
    backoff: std::sync::Mutex<std::collections::HashMap<(String, i64), (u32, i64)>>,
}

/// The wait before retrying a failed re-screen: 60 s, doubling with each failure, at most an
/// hour.
pub fn rescreen_backoff_micros(failures: u32) -> i64 {
    const BASE: i64 = 60 * 1_000_000;
    const MAX: i64 = 3_600 * 1_000_000;
    BASE.saturating_mul(1i64 << failures.saturating_sub(1).min(10))
        .min(MAX)
}

impl Default for Screening {
    fn default() -> Self {
        Self {
            loaded: RwLock::new(Arc::new(Loaded {
                index: Index::build_owned(Vec::new()),
                versions: BTreeMap::new(),
            })),
            import_lock: tokio::sync::Mutex::new(()),
            pending: std::sync::Mutex::new(std::collections::VecDeque::new()),
            changed: tokio::sync::Notify::new(),
            rescreen_lock: tokio::sync::Mutex::new(()),
            initialised: std::sync::atomic::AtomicBool::new(false),
            instance: format!("instance:{}", uuid::Uuid::new_v4()),
            backoff: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }
}

impl Screening {
    pub fn current(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Queues the re-screen of stored customers against a list change.
    pub fn queue_change(&self, change: crate::reviews::ListChange) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(change);
        self.changed.notify_one();
    }

    /// Puts back a change another instance is re-screening, to look at it again later.
    pub fn requeue(&self, change: crate::reviews::ListChange) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(change);
    }

    pub fn next_change(&self) -> Option<crate::reviews::ListChange> {
        self.next_change_at(crate::time::now_micros())
    }

    /// The first queued change that may run at `now`: a change whose re-screen failed waits
    /// for its back-off, and so do the later changes of the same list (versions are
    /// re-screened in order; the done-marker is a high-water mark).
    pub fn next_change_at(&self, now: i64) -> Option<crate::reviews::ListChange> {
        let backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let mut waiting: Vec<&str> = Vec::new();
        let mut found = None;
        for (i, c) in pending.iter().enumerate() {
            if waiting.contains(&c.list_id.as_str()) {
                continue;
            }
            match backoff.get(&(c.list_id.clone(), c.version)) {
                Some((_, not_before)) if *not_before > now => waiting.push(&c.list_id),
                _ => {
                    found = Some(i);
                    break;
                }
            }
        }
        found.and_then(|i| pending.remove(i))
    }

    /// Puts back a change whose re-screen failed, first in the queue, to run again after
    /// its back-off (`rescreen_backoff_micros`). Returns when it may run again.
    pub fn retry_later(&self, change: crate::reviews::ListChange, now: i64) -> i64 {
        let mut backoff = self.backoff.lock().unwrap_or_else(|p| p.into_inner());
        let slot = backoff
            .entry((change.list_id.clone(), change.version))
            .or_insert((0, now));
        slot.0 += 1;
        slot.1 = now + rescreen_backoff_micros(slot.0);
        let at = slot.1;
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_front(change);
        at
    }

    /// Forgets the failures of a change that completed.
    pub fn succeeded(&self, list_id: &str, version: i64) {
        self.backoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(list_id.to_string(), version));
    }

    /// Failed re-screens waiting for a retry: (list, version, failures, next attempt).
    pub fn failed_rescreens(&self) -> Vec<(String, i64, u32, i64)> {
        let mut out: Vec<_> = self
            .backoff
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|((l, v), (n, at))| (l.clone(), *v, *n, *at))
            .collect();
        out.sort();
        out
    }

    fn install(&self, loaded: Loaded) {
        *self.loaded.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(loaded);
    }

    /// Replaces one list's entries in the index (after an import by this process).
    pub async fn replace_list(
        &self,
        list: &str,
        version: i64,
        entries: Vec<ListEntry>,
    ) -> Result<(), String> {
        let current = self.current();
        let list = list.to_string();
        let loaded = tokio::task::spawn_blocking(move || {
            let mut all: Vec<ListEntry> = current
                .index
                .entries()
                .iter()
                .filter(|e| e.list.as_str() != list)
                .cloned()
                .collect();
            all.extend(entries);
            let mut versions = current.versions.clone();
            versions.insert(list, version);
            Loaded {
                index: Index::build_owned(all),
                versions,
            }
        })
        .await
        .map_err(|e| format!("index task failed: {e}"))?;
        self.install(loaded);
        Ok(())
    }

    /// Rebuilds the index from the store if the active versions there differ from the ones
    /// loaded (another process imported). Returns whether it rebuilt.
    pub async fn refresh(&self, store: &dyn Store) -> Result<bool, String> {
        let _guard = self.import_lock.lock().await;
        let heads: BTreeMap<String, i64> = store
            .list_lists()
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|m| (m.list_id, m.version))
            .collect();
        if heads == self.current().versions {
            self.initialised
                .store(true, std::sync::atomic::Ordering::SeqCst);
            return Ok(false);
        }
        let rows = store
            .active_list_versions()
            .await
            .map_err(|e| e.to_string())?;
        let current = self.current();
        let (loaded, changes) = tokio::task::spawn_blocking(move || -> Result<_, String> {
            let mut all = Vec::new();
            let mut versions = BTreeMap::new();
            let mut changes = Vec::new();
            for row in rows {
                let entries = decode_entries(&row.entries)?;
                let list = row.meta.list_id.clone();
                if current.versions.get(&list) != Some(&row.meta.version) {
                    // Another process activated this version: what changed since ours?
                    let id = ListId::new(list.clone());
                    let old: Vec<ListEntry> = current
                        .index
                        .entries()
                        .iter()
                        .filter(|e| e.list == id)
                        .cloned()
                        .collect();
                    let old = Snapshot::new(id.clone(), "old", old);
                    let new = Snapshot::new(id, "new", entries.clone());
                    let d = cip_screen::diff(&old, &new);
                    changes.push(crate::reviews::ListChange {
                        list_id: list.clone(),
                        version: row.meta.version,
                        added_or_changed: d
                            .added
                            .iter()
                            .chain(&d.changed)
                            .map(|e| e.entry_id.clone())
                            .collect(),
                        removed: d.removed,
                    });
                }
                all.extend(entries);
                versions.insert(list, row.meta.version);
            }
            Ok((
                Loaded {
                    index: Index::build_owned(all),
                    versions,
                },
                changes,
            ))
        })
        .await
        .map_err(|e| format!("index task failed: {e}"))??;
        tracing::info!(
            lists = loaded.versions.len(),
            entries = loaded.index.len(),
            "screening index rebuilt"
        );
        self.install(loaded);
        if self
            .initialised
            .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            for c in changes {
                self.queue_change(c);
            }
        } else {
            // The first load at start-up: a version whose re-screen never completed (the
            // server stopped first, or the CLI imported while no server ran) is re-screened
            // now, against all its entries (the version it followed may be long gone).
            let current = self.current();
            for (list, version) in &current.versions {
                let done = store
                    .get_meta(&crate::reviews::rescreened_key(list))
                    .await
                    .map_err(|e| e.to_string())?
                    .and_then(|v| String::from_utf8(v).ok()?.parse::<i64>().ok());
                if done.is_some_and(|d| d >= *version) {
                    continue;
                }
                let id = ListId::new(list.clone());
                let entries: Vec<String> = current
                    .index
                    .entries()
                    .iter()
                    .filter(|e| e.list == id)
                    .map(|e| e.entry_id.clone())
                    .collect();
                tracing::info!(list = %list, version, "re-screen of this list version was not completed; queued");
                self.queue_change(crate::reviews::ListChange {
                    list_id: list.clone(),
                    version: *version,
                    added_or_changed: entries,
                    removed: vec![],
                });
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ofac_roles_from_part_and_file_names() {
        assert_eq!(ofac_role("sdn.csv"), Some(OfacRole::Primary));
        assert_eq!(ofac_role("cons_prim.csv"), Some(OfacRole::Primary));
        assert_eq!(ofac_role("/x/y/alt.csv"), Some(OfacRole::Alt));
        assert_eq!(ofac_role("cons_add.csv"), Some(OfacRole::Add));
        assert_eq!(ofac_role("sdn_comments.csv"), Some(OfacRole::Comments));
        assert_eq!(ofac_role("comments"), Some(OfacRole::Comments));
        assert_eq!(ofac_role("readme.txt"), None);
    }

    #[test]
    fn list_ids() {
        assert!(parse_list_id("ofac-sdn").is_ok());
        assert!(parse_list_id("un.sc_2").is_ok());
        assert!(parse_list_id("").is_err());
        assert!(parse_list_id("-x").is_err());
        assert!(parse_list_id("OFAC").is_err());
        assert!(parse_list_id(&"a".repeat(65)).is_err());
        assert!(parse_list_id("a/b").is_err());
    }
}
