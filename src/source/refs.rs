//! Which remote ref a channel follows, and how it resolves against the refs a
//! remote advertises. Pure functions; no network.

use git2::Oid;

use super::SourceError;
use crate::api::GitRef;

/// What `spec.git.ref` asks for, after picking the most specific field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefRequest {
    /// Follow a branch.
    Branch(String),
    /// Deliver a tag.
    Tag(String),
    /// Deliver the highest tag (`v` prefix allowed) whose version matches the range.
    Semver(String),
    /// Deliver a pinned commit (full or abbreviated hex id).
    Commit(String),
}

impl RefRequest {
    /// The most specific field wins: `commit`, then `semver`, `tag`, `branch`; default branch `main`.
    pub fn from_spec(r: &GitRef) -> Result<Self, SourceError> {
        let invalid = |message: String| SourceError::InvalidRef { message };
        if let Some(commit) = r.commit.as_deref() {
            let commit = commit.trim().to_ascii_lowercase();
            if commit.len() < 7
                || commit.len() > 40
                || !commit.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(invalid(format!(
                    "spec.git.ref.commit '{commit}' is not a commit id (7 to 40 hex digits)"
                )));
            }
            return Ok(RefRequest::Commit(commit));
        }
        if let Some(range) = r.semver.as_deref() {
            semver::VersionReq::parse(range).map_err(|e| {
                invalid(format!(
                    "spec.git.ref.semver '{range}' is not a semver range: {e}"
                ))
            })?;
            return Ok(RefRequest::Semver(range.to_string()));
        }
        if let Some(tag) = r.tag.as_deref() {
            return Ok(RefRequest::Tag(tag.to_string()));
        }
        Ok(RefRequest::Branch(r.branch().to_string()))
    }

    /// Whether a push to `pushed` (a full ref name such as `refs/heads/main`) can
    /// change what this request resolves to. Any tag push can move a semver range;
    /// a pinned commit never moves.
    pub fn is_moved_by(&self, pushed: &str) -> bool {
        match self {
            RefRequest::Branch(b) => pushed.strip_prefix("refs/heads/") == Some(b.as_str()),
            RefRequest::Tag(t) => pushed.strip_prefix("refs/tags/") == Some(t.as_str()),
            RefRequest::Semver(_) => pushed.starts_with("refs/tags/"),
            RefRequest::Commit(_) => false,
        }
    }

    /// How the request is shown in messages: `branch 'main'`, `semver '>=1.0'`.
    pub fn describe(&self) -> String {
        match self {
            RefRequest::Branch(b) => format!("branch '{b}'"),
            RefRequest::Tag(t) => format!("tag '{t}'"),
            RefRequest::Semver(s) => format!("a tag matching semver '{s}'"),
            RefRequest::Commit(c) => format!("commit '{c}'"),
        }
    }
}

/// A ref as the remote advertised it: full name and the commit it points to
/// (annotated tags already peeled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Full ref name, e.g. `refs/tags/v1.2.0`.
    pub name: String,
    /// The commit.
    pub commit: Oid,
}

/// Peels an advertisement: `refs/tags/x^{}` entries replace the tag object id of `refs/tags/x`.
pub fn peel_advertisement(heads: &[(String, Oid)]) -> Vec<(String, Oid)> {
    let mut out: Vec<(String, Oid)> = heads
        .iter()
        .filter(|(n, _)| !n.ends_with("^{}"))
        .cloned()
        .collect();
    for (name, oid) in heads {
        if let Some(base) = name.strip_suffix("^{}") {
            if let Some(entry) = out.iter_mut().find(|(n, _)| n == base) {
                entry.1 = *oid;
            }
        }
    }
    out
}

/// Resolves a branch, tag or semver request against a peeled advertisement.
/// Commits are not advertised; they resolve to `None`.
pub fn resolve(request: &RefRequest, refs: &[(String, Oid)]) -> Option<Resolved> {
    let find = |name: String| {
        refs.iter()
            .find(|(n, _)| *n == name)
            .map(|(n, o)| Resolved {
                name: n.clone(),
                commit: *o,
            })
    };
    match request {
        RefRequest::Branch(b) => find(format!("refs/heads/{b}")),
        RefRequest::Tag(t) => find(format!("refs/tags/{t}")),
        RefRequest::Semver(range) => {
            let tags: Vec<&str> = refs
                .iter()
                .filter_map(|(n, _)| n.strip_prefix("refs/tags/"))
                .collect();
            highest_matching(range, &tags).and_then(|t| find(format!("refs/tags/{t}")))
        }
        RefRequest::Commit(_) => None,
    }
}

/// The tag with the highest version matching `range`; tags may carry a `v` prefix,
/// tags that are not versions are ignored.
pub fn highest_matching<'a>(range: &str, tags: &[&'a str]) -> Option<&'a str> {
    let req = semver::VersionReq::parse(range).ok()?;
    tags.iter()
        .filter_map(|t| {
            let v = semver::Version::parse(t.strip_prefix('v').unwrap_or(t)).ok()?;
            req.matches(&v).then_some((v, *t))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oid(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).unwrap()
    }

    #[test]
    fn only_pushes_to_the_followed_ref_move_it() {
        let branch = RefRequest::Branch("main".into());
        assert!(branch.is_moved_by("refs/heads/main"));
        assert!(!branch.is_moved_by("refs/heads/main2"));
        assert!(!branch.is_moved_by("refs/tags/main"));
        let tag = RefRequest::Tag("v1.0.0".into());
        assert!(tag.is_moved_by("refs/tags/v1.0.0"));
        assert!(!tag.is_moved_by("refs/heads/v1.0.0"));
        let range = RefRequest::Semver(">=1".into());
        assert!(range.is_moved_by("refs/tags/v2.0.0"));
        assert!(!range.is_moved_by("refs/heads/main"));
        assert!(!RefRequest::Commit("abcdef1".into()).is_moved_by("refs/heads/main"));
    }

    #[test]
    fn most_specific_field_wins() {
        let mut r = GitRef::default();
        assert_eq!(
            RefRequest::from_spec(&r).unwrap(),
            RefRequest::Branch("main".into())
        );
        r.branch = Some("dev".into());
        r.tag = Some("v1".into());
        assert_eq!(
            RefRequest::from_spec(&r).unwrap(),
            RefRequest::Tag("v1".into())
        );
        r.semver = Some(">=1.0".into());
        assert_eq!(
            RefRequest::from_spec(&r).unwrap(),
            RefRequest::Semver(">=1.0".into())
        );
        r.commit = Some("ABCDEF0".into());
        assert_eq!(
            RefRequest::from_spec(&r).unwrap(),
            RefRequest::Commit("abcdef0".into())
        );
    }

    #[test]
    fn invalid_specs_are_rejected() {
        let r = GitRef {
            semver: Some("not a range".into()),
            ..GitRef::default()
        };
        assert!(RefRequest::from_spec(&r).is_err());
        let r = GitRef {
            commit: Some("xyz".into()),
            ..GitRef::default()
        };
        assert!(RefRequest::from_spec(&r).is_err());
    }

    #[test]
    fn semver_picks_the_highest_match() {
        let tags = [
            "v1.0.0",
            "v1.2.0",
            "1.10.1",
            "v2.0.0",
            "latest",
            "v1.11.0-rc.1",
        ];
        assert_eq!(highest_matching(">=1.0.0, <2", &tags), Some("1.10.1"));
        assert_eq!(highest_matching("^2", &tags), Some("v2.0.0"));
        assert_eq!(highest_matching("~1.2", &tags), Some("v1.2.0"));
        assert_eq!(highest_matching(">=3", &tags), None);
    }

    #[test]
    fn resolves_against_a_peeled_advertisement() {
        let heads = vec![
            ("HEAD".to_string(), oid(1)),
            ("refs/heads/main".to_string(), oid(1)),
            ("refs/tags/v1.0.0".to_string(), oid(7)),
            ("refs/tags/v1.0.0^{}".to_string(), oid(2)),
            ("refs/tags/v1.1.0".to_string(), oid(3)),
        ];
        let refs = peel_advertisement(&heads);
        let main = resolve(&RefRequest::Branch("main".into()), &refs).unwrap();
        assert_eq!(
            (main.name.as_str(), main.commit),
            ("refs/heads/main", oid(1))
        );
        let tag = resolve(&RefRequest::Tag("v1.0.0".into()), &refs).unwrap();
        assert_eq!(tag.commit, oid(2), "annotated tags resolve to their commit");
        let sv = resolve(&RefRequest::Semver("<2".into()), &refs).unwrap();
        assert_eq!((sv.name.as_str(), sv.commit), ("refs/tags/v1.1.0", oid(3)));
        assert!(resolve(&RefRequest::Branch("dev".into()), &refs).is_none());
    }
}
