//! Bounds on what one commit may make the operator hold, so that one tenant's
//! commit cannot exhaust memory for everyone.
//!
//! Readers of a tree ([`super::RepoTree::from_dir`], `source::tree_at`) leave a
//! file unread ([`super::EntryKind::Unread`]) when it is over the file limit or
//! the commit's budget is spent; render rejects the commit only if it needs such
//! a file. Render also counts what it parses (manifest files and kustomize's
//! output) and the objects it makes.

use bytesize::ByteSize;

use super::RenderError;

/// The limits of one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest file read from a commit (`--max-file-size`).
    pub max_file_bytes: u64,
    /// Most bytes read from one commit, and most rendered from it (manifest
    /// files and kustomize output), each (`--max-release-size`).
    pub max_release_bytes: u64,
    /// Most objects one commit may declare (`--max-objects`).
    pub max_objects: usize,
}

/// Default of `--max-file-size`: a manifest file far larger than any object the
/// API server stores (about 1.5 MiB), so only something unusual is refused.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Default of `--max-release-size`.
pub const DEFAULT_MAX_RELEASE_BYTES: u64 = 128 * 1024 * 1024;
/// Default of `--max-objects`.
pub const DEFAULT_MAX_OBJECTS: usize = 10_000;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_file_bytes: DEFAULT_MAX_FILE_BYTES,
            max_release_bytes: DEFAULT_MAX_RELEASE_BYTES,
            max_objects: DEFAULT_MAX_OBJECTS,
        }
    }
}

impl Limits {
    /// The budget of one tree read under these limits.
    pub fn budget(&self) -> Budget {
        Budget {
            limits: *self,
            loaded: 0,
        }
    }

    /// The error for a file render needs but that was left unread.
    pub(crate) fn unread(&self, file: &str, size: u64) -> RenderError {
        if size > self.max_file_bytes {
            RenderError::FileTooLarge {
                file: file.to_string(),
                size,
                limit: self.max_file_bytes,
            }
        } else {
            RenderError::ReleaseTooLarge {
                file: file.to_string(),
                limit: self.max_release_bytes,
            }
        }
    }
}

/// What a tree read may still load.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: Limits,
    loaded: u64,
}

impl Budget {
    /// Whether a file of `size` bytes is loaded; counts it if so.
    pub fn admit(&mut self, size: u64) -> bool {
        let fits = size <= self.limits.max_file_bytes
            && self.loaded.saturating_add(size) <= self.limits.max_release_bytes;
        if fits {
            self.loaded += size;
        }
        fits
    }
}

/// `8.0 MiB`, for messages.
pub(crate) fn show(bytes: u64) -> String {
    ByteSize(bytes).display().iec().to_string()
}

/// Parses a size flag: `8Mi`, `8MiB`, `8 MiB`, `500k`, or bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    // Kubernetes quantities say `Mi`; bytesize wants `MiB`.
    let spelled = match trimmed.strip_suffix('i') {
        Some(rest) if rest.ends_with(|c: char| c.is_ascii_alphabetic()) => format!("{trimmed}B"),
        _ => trimmed.to_string(),
    };
    spelled
        .parse::<ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{text:?} is not a size (e.g. 8Mi, 512KiB, 1000000): {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_admits_files_within_both_limits() {
        let limits = Limits {
            max_file_bytes: 10,
            max_release_bytes: 25,
            max_objects: 1,
        };
        let mut budget = limits.budget();
        assert!(!budget.admit(11), "over the file limit");
        assert!(budget.admit(10));
        assert!(budget.admit(10));
        assert!(!budget.admit(6), "over what is left of the commit's budget");
        assert!(budget.admit(5));
    }

    #[test]
    fn an_unread_file_is_named_with_the_limit_it_broke() {
        let limits = Limits {
            max_file_bytes: 1024,
            max_release_bytes: 4096,
            max_objects: 1,
        };
        let e = limits.unread("deploy/big.yaml", 2048);
        assert_eq!(e.reason(), "FileTooLarge");
        let text = e.to_string();
        assert!(text.contains("deploy/big.yaml"), "{text}");
        assert!(text.contains("1.0 KiB"), "{text}");
        assert!(text.contains("--max-file-size"), "{text}");
        let e = limits.unread("deploy/small.yaml", 512);
        assert_eq!(e.reason(), "ReleaseTooLarge");
        assert!(e.to_string().contains("--max-release-size"));
    }

    #[test]
    fn sizes_parse_in_kubernetes_and_iec_spellings() {
        assert_eq!(parse_size("8Mi"), Ok(8 << 20));
        assert_eq!(parse_size("8MiB"), Ok(8 << 20));
        assert_eq!(parse_size("8 MiB"), Ok(8 << 20));
        assert_eq!(parse_size("512Ki"), Ok(512 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").is_err());
    }
}
