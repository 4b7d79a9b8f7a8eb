//! Snapshots of a list and diffs between them.

use crate::error::ScreenError;
use crate::model::{ListEntry, ListId};
use serde::Serialize;

/// One version of one list: entries sorted by id, with a content hash.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Snapshot {
    pub list: ListId,
    pub version: String,
    /// FNV-1a 64 over the canonical JSON of the sorted entries (hex). It detects change; it
    /// is not a defence against tampering.
    pub content_hash: String,
    pub entries: Vec<ListEntry>,
}

/// How much a replacement may shrink a list before it needs `force`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplacePolicy {
    pub max_shrink_percent: u8,
    pub force: bool,
}

impl Default for ReplacePolicy {
    fn default() -> Self {
        Self {
            max_shrink_percent: 20,
            force: false,
        }
    }
}

pub(crate) fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn entry_hash(e: &ListEntry) -> u64 {
    let json = serde_json::to_vec(e).unwrap_or_default();
    fnv1a(&json, FNV_OFFSET)
}

impl Snapshot {
    pub fn new(list: ListId, version: impl Into<String>, mut entries: Vec<ListEntry>) -> Self {
        entries.sort_by(|a, b| a.entry_id.cmp(&b.entry_id));
        let mut h = FNV_OFFSET;
        for e in &entries {
            h = fnv1a(&entry_hash(e).to_le_bytes(), h);
        }
        Self {
            list,
            version: version.into(),
            content_hash: format!("{h:016x}"),
            entries,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, entry_id: &str) -> Option<&ListEntry> {
        self.entries
            .binary_search_by(|e| e.entry_id.as_str().cmp(entry_id))
            .ok()
            .and_then(|i| self.entries.get(i))
    }

    /// Refuses to let this snapshot replace `previous` when it is empty or shrinks the list
    /// by more than the policy allows, unless forced. A parse that "succeeded" on a
    /// truncated download must not silently empty the screening list.
    pub fn replace_guard(
        &self,
        previous: &Snapshot,
        policy: ReplacePolicy,
    ) -> Result<(), ScreenError> {
        if self.list != previous.list {
            return Err(ScreenError::ListMismatch {
                previous: previous.list.to_string(),
                new: self.list.to_string(),
            });
        }
        if policy.force {
            return Ok(());
        }
        if self.is_empty() && !previous.is_empty() {
            return Err(ScreenError::EmptyReplacement {
                previous: previous.len(),
            });
        }
        let floor = previous.len() * usize::from(100 - policy.max_shrink_percent.min(100)) / 100;
        if self.len() < floor {
            return Err(ScreenError::DrasticShrink {
                previous: previous.len(),
                new: self.len(),
                max_shrink_percent: policy.max_shrink_percent,
            });
        }
        Ok(())
    }
}

/// What changed between two snapshots, by entry id with content comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ListDiff {
    pub added: Vec<ListEntry>,
    /// New versions of entries whose content changed.
    pub changed: Vec<ListEntry>,
    pub removed: Vec<String>,
}

impl ListDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }

    /// Entries to re-screen customers against: added and changed.
    pub fn screenable(&self) -> Vec<ListEntry> {
        self.added.iter().chain(&self.changed).cloned().collect()
    }
}

/// Diffs two snapshots (both sorted by id): a merge walk.
pub fn diff(old: &Snapshot, new: &Snapshot) -> ListDiff {
    let mut d = ListDiff::default();
    let (mut i, mut j) = (0, 0);
    loop {
        match (old.entries.get(i), new.entries.get(j)) {
            (None, None) => break,
            (Some(o), None) => {
                d.removed.push(o.entry_id.clone());
                i += 1;
            }
            (None, Some(n)) => {
                d.added.push(n.clone());
                j += 1;
            }
            (Some(o), Some(n)) => match o.entry_id.cmp(&n.entry_id) {
                std::cmp::Ordering::Less => {
                    d.removed.push(o.entry_id.clone());
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    d.added.push(n.clone());
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    if o != n {
                        d.changed.push(n.clone());
                    }
                    i += 1;
                    j += 1;
                }
            },
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EntryKind, NameKind};

    fn entry(id: &str, name: &str) -> ListEntry {
        let mut e = ListEntry::new(ListId::new("l"), id, EntryKind::Person);
        e.push_name(name, NameKind::Primary);
        e
    }

    #[test]
    fn diff_and_guard() {
        let old = Snapshot::new(
            ListId::new("l"),
            "1",
            vec![entry("2", "B"), entry("1", "A"), entry("3", "C")],
        );
        let new = Snapshot::new(
            ListId::new("l"),
            "2",
            vec![entry("1", "A"), entry("3", "C2"), entry("4", "D")],
        );
        let d = diff(&old, &new);
        assert_eq!(
            d.added
                .iter()
                .map(|e| e.entry_id.as_str())
                .collect::<Vec<_>>(),
            ["4"]
        );
        assert_eq!(
            d.changed
                .iter()
                .map(|e| e.entry_id.as_str())
                .collect::<Vec<_>>(),
            ["3"]
        );
        assert_eq!(d.removed, ["2"]);
        assert_ne!(old.content_hash, new.content_hash);
        assert!(diff(&old, &old).is_empty());
        let empty = Snapshot::new(ListId::new("l"), "3", vec![]);
        let err = empty
            .replace_guard(&old, ReplacePolicy::default())
            .unwrap_err();
        assert_eq!(err.code(), "CIP-SCREEN-EMPTY-REPLACEMENT");
        let one = Snapshot::new(ListId::new("l"), "3", vec![entry("1", "A")]);
        assert_eq!(
            one.replace_guard(&old, ReplacePolicy::default())
                .unwrap_err()
                .code(),
            "CIP-SCREEN-DRASTIC-SHRINK"
        );
        assert!(
            one.replace_guard(
                &old,
                ReplacePolicy {
                    force: true,
                    ..Default::default()
                }
            )
            .is_ok()
        );
        assert!(new.replace_guard(&old, ReplacePolicy::default()).is_ok());
    }
}
