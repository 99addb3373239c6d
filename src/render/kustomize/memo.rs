//! Recent build outputs by input: the controller renders an unchanged commit
//! again at every drift check, and `plan` renders earlier commits that often
//! leave a kustomization as it was; each would otherwise start kustomize.
//!
//! The key covers the command, the kustomization and every byte written for
//! the build, so a hit is exactly what kustomize would print again. Only
//! successful builds are kept; failures always run again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Most outputs kept.
const MAX_ENTRIES: usize = 32;
/// Most bytes kept in all; larger outputs are not kept at all.
const MAX_BYTES: usize = 32 * 1024 * 1024;

/// Most recently used last.
static MEMO: Mutex<VecDeque<([u8; 32], Arc<str>)>> = Mutex::new(VecDeque::new());

/// The output of the build with this key, if it is kept.
pub(crate) fn get(key: &[u8; 32]) -> Option<String> {
    let mut memo = MEMO.lock().ok()?;
    let at = memo.iter().position(|(k, _)| k == key)?;
    let entry = memo.remove(at)?;
    let stream = entry.1.to_string();
    memo.push_back(entry);
    Some(stream)
}

/// Keeps the output of a build, dropping the least recently used past the bounds.
pub(crate) fn put(key: [u8; 32], stream: &str) {
    if stream.len() > MAX_BYTES / 4 {
        return;
    }
    let Ok(mut memo) = MEMO.lock() else { return };
    memo.retain(|(k, _)| *k != key);
    memo.push_back((key, Arc::from(stream)));
    let mut total: usize = memo.iter().map(|(_, s)| s.len()).sum();
    while memo.len() > MAX_ENTRIES || total > MAX_BYTES {
        match memo.pop_front() {
            Some((_, dropped)) => total -= dropped.len(),
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_outputs_come_back_and_the_oldest_go_first() {
        // Keys of this test only (the memo is shared by the whole test process).
        let key = |i: usize| {
            let mut k = [0xA5; 32];
            k[..8].copy_from_slice(&(i as u64).to_le_bytes());
            k
        };
        put(key(0), "zero");
        assert_eq!(get(&key(0)).as_deref(), Some("zero"));
        for i in 1..=MAX_ENTRIES {
            put(key(i), "x");
        }
        assert_eq!(get(&key(0)), None, "dropped past MAX_ENTRIES");
        assert_eq!(get(&key(MAX_ENTRIES)).as_deref(), Some("x"));
        put(key(1000), &"y".repeat(MAX_BYTES));
        assert_eq!(get(&key(1000)), None, "too large to keep");
    }
}
