//! Signature policy against a real `git daemon`, no cluster: the trust anchor
//! of `AllCommits` (`spec.git.verify.since`), a cache made shallow by a HEAD
//! fetch that AllCommits deepens, and a shallow walk that is refused instead of
//! verifying less than asked.

use crate::gitserver;

use std::collections::BTreeMap;

use gitserver::{GitDaemon, GitRepo, SshSigningKey};
use kubemint::controller::crd::VerifyMode;
use kubemint::source::verify::Policy;
use kubemint::source::{
    FetchRequest, GitCache, GitCredentials, RefRequest, SourceError, TrustedKeys,
};

fn keys(signer: &SshSigningKey) -> TrustedKeys {
    let data: BTreeMap<String, Vec<u8>> = [(
        "allowed_signers".to_string(),
        signer.allowed_signers("ada@example.com").into_bytes(),
    )]
    .into();
    TrustedKeys::from_secret_data(&data).unwrap()
}

fn fetch(url: &str, shallow: bool) -> FetchRequest {
    FetchRequest {
        shallow,
        ..FetchRequest::new(url, RefRequest::Branch("main".into()))
    }
}

fn anchored(since: &str) -> Policy {
    Policy {
        mode: VerifyMode::AllCommits,
        since: Some(since.to_string()),
    }
}

fn failed_commit(err: &SourceError) -> &str {
    match err {
        SourceError::SignatureVerificationFailed { commit, .. } => commit,
        other => panic!("not a verification failure: {other}"),
    }
}

#[tokio::test]
async fn all_commits_from_a_trust_anchor_deepening_a_shallow_cache() {
    let signer = SshSigningKey::generate();
    let keys = keys(&signer);
    let upstream = GitRepo::new();
    // History from before signing began...
    let c1 = upstream
        .write(&[("deploy/a.yaml", "1")])
        .commit("unsigned one");
    let anchor = upstream
        .write(&[("deploy/a.yaml", "2")])
        .commit("unsigned two");
    // ...and signed commits after the anchor.
    upstream.git(&["config", "gpg.format", "ssh"]);
    upstream.git(&[
        "config",
        "user.signingkey",
        &signer.key_path().display().to_string(),
    ]);
    let c3 = upstream
        .write(&[("deploy/a.yaml", "3")])
        .commit_with("signed three", &["-S"]);
    let c4 = upstream
        .write(&[("deploy/a.yaml", "4")])
        .commit_with("signed four", &["-S"]);
    let daemon = GitDaemon::start(upstream.root());
    let url = daemon.url("work");
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());

    // A HEAD-mode channel on the same URL fetched first: depth 1.
    cache.fetch(&fetch(&url, true)).await.unwrap();
    let shallow = || {
        git2::Repository::open_bare(cache.repo_dir(&url, &GitCredentials::none()).unwrap())
            .unwrap()
            .is_shallow()
    };
    assert!(shallow(), "the HEAD fetch was not shallow");
    // Verifying history in a shallow cache is refused, never cut short.
    let err = cache
        .verify(
            &url,
            &GitCredentials::none(),
            &Policy::mode(VerifyMode::AllCommits),
            None,
            &c4,
            &keys,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("shallow"), "{err}");

    // An AllCommits fetch deepens the cache though the tip is already there.
    let outcome = cache.fetch(&fetch(&url, false)).await.unwrap();
    assert!(outcome.unchanged());
    assert!(!shallow(), "the AllCommits fetch did not deepen the cache");

    // First delivery with the anchor: the commits after it, oldest first.
    let ok = cache
        .verify(
            &url,
            &GitCredentials::none(),
            &anchored(&anchor),
            None,
            &c4,
            &keys,
        )
        .await
        .unwrap();
    let verified: Vec<&str> = ok.iter().map(|v| v.commit.as_str()).collect();
    assert_eq!(verified, [c3.as_str(), c4.as_str()]);
    assert!(ok[0].signer.contains("ada@example.com"), "{ok:?}");
    // Without it, the whole history: the first unsigned commit is named.
    let err = cache
        .verify(
            &url,
            &GitCredentials::none(),
            &Policy::mode(VerifyMode::AllCommits),
            None,
            &c4,
            &keys,
        )
        .await
        .unwrap_err();
    assert_eq!(failed_commit(&err), c1);
    // An abbreviated anchor works too; the anchor itself may be the tip.
    cache
        .verify(
            &url,
            &GitCredentials::none(),
            &anchored(&anchor[..12]),
            None,
            &c4,
            &keys,
        )
        .await
        .unwrap();
    let none = cache
        .verify(
            &url,
            &GitCredentials::none(),
            &anchored(&anchor),
            None,
            &anchor,
            &keys,
        )
        .await
        .unwrap();
    assert!(none.is_empty());

    // Later deliveries: from the last delivered commit on.
    let c5 = upstream
        .write(&[("deploy/a.yaml", "5")])
        .commit("unsigned five");
    cache.fetch(&fetch(&url, false)).await.unwrap();
    let err = cache
        .verify(
            &url,
            &GitCredentials::none(),
            &anchored(&anchor),
            Some(&c4),
            &c5,
            &keys,
        )
        .await
        .unwrap_err();
    assert_eq!(failed_commit(&err), c5);
    assert!(err.to_string().contains("not signed"), "{err}");

    // A tip that does not descend from the anchor is refused, even when signed.
    upstream.git(&["checkout", "-q", "-b", "side", &c1]);
    let side = upstream
        .write(&[("deploy/a.yaml", "s")])
        .commit_with("signed side", &["-S"]);
    upstream.git(&["checkout", "-q", "main"]);
    upstream.git(&["reset", "-q", "--hard", &side]);
    let moved = cache.fetch(&fetch(&url, false)).await.unwrap();
    assert_eq!(moved.commit.sha, side);
    let err = cache
        .verify(
            &url,
            &GitCredentials::none(),
            &anchored(&anchor),
            Some(&c5),
            &side,
            &keys,
        )
        .await
        .unwrap_err();
    assert_eq!(failed_commit(&err), side);
    assert!(
        err.to_string().contains(&format!(
            "does not descend from the trust anchor spec.git.verify.since {anchor}"
        )),
        "{err}"
    );
    // An anchor that is no commit at all.
    let err = cache
        .verify(
            &url,
            &GitCredentials::none(),
            &anchored("0123456789abcdef0123456789abcdef01234567"),
            None,
            &side,
            &keys,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("is not a commit"), "{err}");
}
