//! The git source layer against real servers on loopback (sshd, lighttpd +
//! `git http-backend`, `git daemon`): authentication, host key verification,
//! refs, cheap polling, force-pushes and signed commits. No cluster needed.

use crate::gitserver;

use std::collections::BTreeMap;

use gitserver::{
    GitDaemon, GitRepo, GpgKey, HttpServer, SshServer, SshSigningKey, BEARER_TOKEN, HTTP_PASSWORD,
    HTTP_USER, SSH_USER,
};
use kubemint::controller::crd::VerifyMode;
use kubemint::source::verify::Policy;
use kubemint::source::{
    FetchRequest, GitCache, GitCredentials, RefRequest, SourceError, TrustedKeys,
};

fn secret(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn request(url: &str, reference: RefRequest, creds: GitCredentials) -> FetchRequest {
    FetchRequest {
        credentials: creds,
        ..FetchRequest::new(url, reference)
    }
}

fn branch(name: &str) -> RefRequest {
    RefRequest::Branch(name.to_string())
}

fn object_count(cache: &GitCache, url: &str) -> usize {
    let dir = cache.repo_dir(url, &GitCredentials::none()).unwrap();
    let repo = git2::Repository::open_bare(dir).unwrap();
    let mut n = 0;
    repo.odb()
        .unwrap()
        .foreach(|_| {
            n += 1;
            true
        })
        .unwrap();
    n
}

#[tokio::test]
async fn ssh_fetch_needs_the_right_host_key() {
    let server = SshServer::start();
    let upstream = GitRepo::new();
    let sha = upstream
        .write(&[("deploy/a.yaml", "a: 1\n")])
        .commit("first");
    let url = server.url(upstream.path());
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());

    let good = GitCredentials::from_secret_data(&secret(&[
        ("identity", &server.identity),
        ("known_hosts", &server.known_hosts),
    ]))
    .unwrap();
    let got = cache
        .fetch(&request(&url, branch("main"), good))
        .await
        .expect("ssh fetch with the right key and known_hosts");
    assert_eq!(got.commit.sha, sha);
    assert_eq!(got.reference, "refs/heads/main");

    // A URL without a user logs in as the Secret's `username`.
    let userless = url.replace(&format!("{SSH_USER}@"), "");
    assert_ne!(userless, url);
    let by_secret = GitCredentials::from_secret_data(&secret(&[
        ("identity", &server.identity),
        ("known_hosts", &server.known_hosts),
        ("username", SSH_USER),
    ]))
    .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let got = GitCache::new(elsewhere.path())
        .fetch(&request(&userless, branch("main"), by_secret))
        .await
        .expect("ssh fetch with the user from the Secret");
    assert_eq!(got.commit.sha, sha);

    // A different host key for [127.0.0.1]:PORT: refused before any credential is sent.
    let other = tempfile::tempdir().unwrap();
    let wrong = GitCredentials::from_secret_data(&secret(&[
        ("identity", &server.identity),
        ("known_hosts", &server.wrong_known_hosts()),
    ]))
    .unwrap();
    let err = GitCache::new(other.path())
        .fetch(&request(&url, branch("main"), wrong))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("host key verification failed"), "{msg}");
    assert!(!msg.contains("PRIVATE KEY"), "{msg}");

    // An entry for the host on another port does not count.
    let other_port = server
        .known_hosts
        .replace(&format!("]:{}", server.server.port), "]:1");
    let wrong_port = GitCredentials::from_secret_data(&secret(&[
        ("identity", &server.identity),
        ("known_hosts", &other_port),
    ]))
    .unwrap();
    let err = GitCache::new(other.path())
        .fetch(&request(&url, branch("main"), wrong_port))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("host key verification failed"),
        "{err}"
    );

    // No known_hosts at all: SSH is refused.
    let err = GitCache::new(other.path())
        .fetch(&request(&url, branch("main"), GitCredentials::none()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("known_hosts"), "{err}");
}

#[tokio::test]
async fn https_basic_auth_and_bearer_token() {
    let upstream = GitRepo::new();
    let sha = upstream
        .write(&[("deploy/a.yaml", "a: 1\n")])
        .commit("first");
    let server = HttpServer::start(upstream.root());
    let url = server.url("work");
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());

    let good = GitCredentials::from_secret_data(&secret(&[
        ("username", HTTP_USER),
        ("password", HTTP_PASSWORD),
    ]))
    .unwrap();
    let got = cache
        .fetch(&request(&url, branch("main"), good))
        .await
        .expect("basic auth fetch");
    assert_eq!(got.commit.sha, sha);

    let wrong = GitCredentials::from_secret_data(&secret(&[
        ("username", HTTP_USER),
        ("password", "wrong-password-42"),
    ]))
    .unwrap();
    let other = tempfile::tempdir().unwrap();
    let err = GitCache::new(other.path())
        .fetch(&request(&url, branch("main"), wrong))
        .await
        .unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(matches!(err, SourceError::Unreachable { .. }), "{msg}");
    assert!(!msg.contains("wrong-password-42"), "{msg}");

    // Credentials in the URL are redacted in errors too.
    let with_userinfo = format!(
        "http://{HTTP_USER}:wrong-password-42@127.0.0.1:{}/git/work",
        server.server.port
    );
    let err = GitCache::new(other.path())
        .fetch(&request(
            &with_userinfo,
            branch("main"),
            GitCredentials::none(),
        ))
        .await
        .unwrap_err();
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains("wrong-password-42"), "{msg}");

    // Bearer token as an Authorization header.
    let bearer =
        GitCredentials::from_secret_data(&secret(&[("bearerToken", BEARER_TOKEN)])).unwrap();
    let got = GitCache::new(other.path())
        .fetch(&request(&server.bearer_url("work"), branch("main"), bearer))
        .await
        .expect("bearer token fetch");
    assert_eq!(got.commit.sha, sha);
    let err = GitCache::new(tempfile::tempdir().unwrap().path())
        .fetch(&request(
            &server.bearer_url("work"),
            branch("main"),
            GitCredentials::none(),
        ))
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err}");
}

#[tokio::test]
async fn https_with_a_custom_ca() {
    let upstream = GitRepo::new();
    let sha = upstream
        .write(&[("deploy/a.yaml", "a: 1\n")])
        .commit("first");
    let (server, ca_pem) = HttpServer::start_tls(upstream.root());
    let url = server.https_url("work");
    let basic = [("username", HTTP_USER), ("password", HTTP_PASSWORD)];

    // Without ca.crt the system trust store does not know the test CA.
    let creds = GitCredentials::from_secret_data(&secret(&basic)).unwrap();
    let err = GitCache::new(tempfile::tempdir().unwrap().path())
        .fetch(&request(&url, branch("main"), creds))
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::Unreachable { .. }), "{err}");

    // With the CA in the Secret the same server is trusted.
    let mut with_ca = basic.to_vec();
    with_ca.push(("ca.crt", &ca_pem));
    let creds = GitCredentials::from_secret_data(&secret(&with_ca)).unwrap();
    let got = GitCache::new(tempfile::tempdir().unwrap().path())
        .fetch(&request(&url, branch("main"), creds))
        .await
        .expect("HTTPS fetch trusting ca.crt");
    assert_eq!(got.commit.sha, sha);

    // Another CA is not enough: the certificate must chain to the given one.
    let (_other_server, other_ca) = HttpServer::start_tls(upstream.root());
    let mut wrong_ca = basic.to_vec();
    wrong_ca.push(("ca.crt", &other_ca));
    let creds = GitCredentials::from_secret_data(&secret(&wrong_ca)).unwrap();
    let err = GitCache::new(tempfile::tempdir().unwrap().path())
        .fetch(&request(&url, branch("main"), creds))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not trusted by ca.crt"), "{err}");
    assert!(!format!("{err:?}").contains(HTTP_PASSWORD));
}

#[tokio::test]
async fn refs_polling_and_force_push_over_git_daemon() {
    let upstream = GitRepo::new();
    let first = upstream
        .write(&[("deploy/a.yaml", "a: 1\n")])
        .commit("first");
    upstream.git(&["tag", "v1.0.0"]);
    let second = upstream
        .write(&[("deploy/a.yaml", "a: 2\n")])
        .commit("second");
    upstream.git(&["tag", "-a", "-m", "release 1.2", "v1.2.0"]);
    let third = upstream
        .write(&[("deploy/a.yaml", "a: 3\n")])
        .commit("third");
    upstream.git(&["tag", "v2.0.0"]);
    upstream.git(&["tag", "not-a-version"]);
    let daemon = GitDaemon::start(upstream.root());
    let url = daemon.url("work");
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());
    let anon = GitCredentials::none;

    // Branch, first fetch: shallow.
    let got = cache
        .fetch(&request(&url, branch("main"), anon()))
        .await
        .unwrap();
    assert_eq!(got.commit.sha, third);
    assert!(got.previous.is_none() && got.rewritten_from.is_none());
    assert!(got.stats.received_objects > 0);

    // No change: one ref advertisement, no pack, nothing new in the cache.
    let objects = object_count(&cache, &url);
    let poll = cache
        .fetch(&request(&url, branch("main"), anon()))
        .await
        .unwrap();
    assert!(poll.unchanged());
    assert_eq!(poll.stats.round_trips, 1);
    assert_eq!(poll.stats.received_bytes, 0);
    assert_eq!(object_count(&cache, &url), objects);

    // Tags: lightweight and annotated (peeled to the commit).
    let tag = cache
        .fetch(&request(&url, RefRequest::Tag("v1.0.0".into()), anon()))
        .await
        .unwrap();
    assert_eq!(
        (tag.commit.sha.as_str(), tag.reference.as_str()),
        (first.as_str(), "refs/tags/v1.0.0")
    );
    let tag = cache
        .fetch(&request(&url, RefRequest::Tag("v1.2.0".into()), anon()))
        .await
        .unwrap();
    assert_eq!(tag.commit.sha, second);

    // Semver: the highest match.
    let sv = cache
        .fetch(&request(
            &url,
            RefRequest::Semver(">=1.0.0, <2".into()),
            anon(),
        ))
        .await
        .unwrap();
    assert_eq!(
        (sv.commit.sha.as_str(), sv.reference.as_str()),
        (second.as_str(), "refs/tags/v1.2.0")
    );
    let sv = cache
        .fetch(&request(&url, RefRequest::Semver("*".into()), anon()))
        .await
        .unwrap();
    assert_eq!(sv.reference, "refs/tags/v2.0.0");
    let err = cache
        .fetch(&request(&url, RefRequest::Semver(">=3".into()), anon()))
        .await
        .unwrap_err();
    assert!(matches!(err, SourceError::RefNotFound { .. }), "{err}");

    // Pinned commit (also an abbreviated id); once cached, no network at all.
    let pinned = cache
        .fetch(&request(&url, RefRequest::Commit(first.clone()), anon()))
        .await
        .unwrap();
    assert_eq!(pinned.commit.sha, first);
    let fresh = tempfile::tempdir().unwrap();
    let pinned = GitCache::new(fresh.path())
        .fetch(&request(
            &url,
            RefRequest::Commit(first[..10].to_string()),
            anon(),
        ))
        .await
        .unwrap();
    assert_eq!(pinned.commit.sha, first);
    let again = GitCache::new(fresh.path())
        .fetch(&request(&url, RefRequest::Commit(first.clone()), anon()))
        .await
        .unwrap();
    assert_eq!(again.stats.round_trips, 0);

    // Unknown branch.
    let err = cache
        .fetch(&request(&url, branch("nope"), anon()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("branch 'nope'"), "{err}");

    // A new commit: fetched incrementally, not a rewrite.
    let fourth = upstream
        .write(&[("deploy/a.yaml", "a: 4\n")])
        .commit("fourth");
    let got = cache
        .fetch(&request(&url, branch("main"), anon()))
        .await
        .unwrap();
    assert_eq!(got.commit.sha, fourth);
    assert_eq!(got.previous.as_deref(), Some(third.as_str()));
    assert!(got.rewritten_from.is_none());
    assert!(got.stats.received_objects > 0 && got.stats.received_objects < 10);

    // Force-push: history rewritten; the new tip is delivered and the rewrite reported.
    upstream.git(&["reset", "-q", "--hard", &second]);
    let rewritten = upstream
        .write(&[("deploy/a.yaml", "a: 5\n")])
        .commit("rewritten");
    let got = cache
        .fetch(&request(&url, branch("main"), anon()))
        .await
        .unwrap();
    assert_eq!(got.commit.sha, rewritten);
    assert_eq!(got.rewritten_from.as_deref(), Some(fourth.as_str()));
    let tree = cache
        .tree(&url, &anon(), &rewritten, &Default::default(), "")
        .await
        .unwrap();
    drop(tree);
}

fn gpg_sign_flags(key: &GpgKey) -> Vec<String> {
    vec![format!("-S{}", key.fingerprint)]
}

#[tokio::test]
async fn signed_commits_gpg_and_ssh() {
    let gpg = GpgKey::generate("Ada Lovelace <ada@example.com>");
    let stranger = GpgKey::generate("Mallory <mallory@example.com>");
    let ssh = SshSigningKey::generate();
    let mut upstream = GitRepo::new();
    upstream.set_gnupg_home(gpg.home.path());
    let daemon = GitDaemon::start(upstream.root());
    let url = daemon.url("work");
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());
    let keys = TrustedKeys::from_secret_data(&secret(&[
        ("ada.asc", &gpg.public),
        ("allowed_signers", &ssh.allowed_signers("ada@example.com")),
    ]))
    .unwrap();
    let full = |r: RefRequest| FetchRequest {
        shallow: false,
        ..request(&url, r, GitCredentials::none())
    };

    let flags = gpg_sign_flags(&gpg);
    let c1 = upstream
        .write(&[("a.yaml", "1")])
        .commit_with("gpg signed", &[&flags[0]]);
    cache.fetch(&full(branch("main"))).await.unwrap();
    let ok = cache
        .verify(
            &url,
            &GitCredentials::none(),
            &Policy::mode(VerifyMode::Head),
            None,
            &c1,
            &keys,
        )
        .await
        .unwrap();
    assert!(ok[0].signer.starts_with("openpgp"), "{ok:?}");

    // SSH-signed commit (gpg.format ssh).
    let key_path = ssh.key_path().display().to_string();
    upstream.git(&["config", "gpg.format", "ssh"]);
    upstream.git(&["config", "user.signingkey", &key_path]);
    let c2 = upstream
        .write(&[("a.yaml", "2b")])
        .commit_with("ssh signed", &["-S"]);
    upstream.git(&["config", "--unset", "gpg.format"]);
    upstream.git(&["config", "--unset", "user.signingkey"]);
    cache.fetch(&full(branch("main"))).await.unwrap();
    let ok = cache
        .verify(
            &url,
            &GitCredentials::none(),
            &Policy::mode(VerifyMode::Head),
            Some(&c1),
            &c2,
            &keys,
        )
        .await
        .unwrap();
    assert!(ok[0].signer.contains("ada@example.com"), "{ok:?}");

    // Unsigned tip: HEAD fails naming the commit.
    let c3 = upstream.write(&[("a.yaml", "3")]).commit("unsigned");
    cache.fetch(&full(branch("main"))).await.unwrap();
    let err = cache
        .verify(
            &url,
            &GitCredentials::none(),
            &Policy::mode(VerifyMode::Head),
            Some(&c2),
            &c3,
            &keys,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::SignatureVerificationFailed { commit, .. } if *commit == c3),
        "{err}"
    );
    assert_eq!(err.reason(), "SignatureVerificationFailed");

    // Signed tip on top of the unsigned commit: HEAD passes, AllCommits names the unsigned one.
    let c4 = upstream
        .write(&[("a.yaml", "4")])
        .commit_with("gpg signed again", &[&flags[0]]);
    cache.fetch(&full(branch("main"))).await.unwrap();
    cache
        .verify(
            &url,
            &GitCredentials::none(),
            &Policy::mode(VerifyMode::Head),
            Some(&c2),
            &c4,
            &keys,
        )
        .await
        .unwrap();
    let err = cache
        .verify(
            &url,
            &GitCredentials::none(),
            &Policy::mode(VerifyMode::AllCommits),
            Some(&c2),
            &c4,
            &keys,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SourceError::SignatureVerificationFailed { commit, .. } if *commit == c3),
        "{err}"
    );
    // From c3 on, every commit (just c4) is signed.
    let ok = cache
        .verify(
            &url,
            &GitCredentials::none(),
            &Policy::mode(VerifyMode::AllCommits),
            Some(&c3),
            &c4,
            &keys,
        )
        .await
        .unwrap();
    assert_eq!(ok.len(), 1);
    // All of c1..c2 signed (gpg and ssh).
    let ok = cache
        .verify(
            &url,
            &GitCredentials::none(),
            &Policy::mode(VerifyMode::AllCommits),
            Some(&c1),
            &c2,
            &keys,
        )
        .await
        .unwrap();
    assert_eq!(ok.len(), 1);

    // Signed by a key that is not trusted.
    upstream.set_gnupg_home(stranger.home.path());
    let c5 = upstream
        .write(&[("a.yaml", "5")])
        .commit_with("stranger", &[&gpg_sign_flags(&stranger)[0]]);
    cache.fetch(&full(branch("main"))).await.unwrap();
    let err = cache
        .verify(
            &url,
            &GitCredentials::none(),
            &Policy::mode(VerifyMode::Head),
            Some(&c4),
            &c5,
            &keys,
        )
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("not signed by a trusted OpenPGP key"),
        "{err}"
    );
}

/// A commit fetched with one tenant's credentials is not served, from the
/// cache, to a fetch of the same URL with other credentials or none (issue 13):
/// that fetch goes to the server, which refuses it.
#[tokio::test]
async fn a_cached_commit_is_served_only_to_the_credentials_that_fetched_it() {
    let upstream = GitRepo::new();
    let sha = upstream
        .write(&[("deploy/a.yaml", "private: data\n")])
        .commit("first");
    let server = HttpServer::start(upstream.root());
    let url = server.url("work");
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());
    let a_secret = secret(&[("username", HTTP_USER), ("password", HTTP_PASSWORD)]);
    let a = GitCredentials::from_secret("team-a", "git", &a_secret).unwrap();
    let pinned = |creds: GitCredentials| request(&url, RefRequest::Commit(sha.clone()), creds);

    // Tenant A fetches its branch; its pinned commit is then served without network.
    cache
        .fetch(&request(&url, branch("main"), a.clone()))
        .await
        .expect("A's fetch");
    let again = cache.fetch(&pinned(a.clone())).await.unwrap();
    assert_eq!(
        (again.commit.sha.as_str(), again.stats.round_trips),
        (sha.as_str(), 0)
    );
    assert!(cache
        .tree(&url, &a, &sha, &Default::default(), "")
        .await
        .is_ok());

    // Others naming A's URL and commit must fetch for themselves, and fail.
    let wrong = secret(&[("username", HTTP_USER), ("password", "not-the-password")]);
    let copied = GitCredentials::from_secret("team-b", "git", &a_secret).unwrap();
    for (who, creds) in [
        ("anonymous", GitCredentials::none()),
        (
            "wrong password",
            GitCredentials::from_secret("team-b", "git", &wrong).unwrap(),
        ),
        (
            "A's Secret name, other content",
            GitCredentials::from_secret("team-a", "git", &wrong).unwrap(),
        ),
    ] {
        let err = cache.fetch(&pinned(creds.clone())).await.unwrap_err();
        assert!(
            matches!(err, SourceError::Unreachable { .. }),
            "{who}: {err}"
        );
        let tree = cache
            .tree(&url, &creds, &sha, &Default::default(), "")
            .await;
        assert!(tree.is_err(), "{who} reads A's tree from the cache");
    }
    // The same credentials in B's own Secret do work, by fetching (one round trip).
    let b = cache.fetch(&pinned(copied)).await.expect("B's own fetch");
    assert_eq!(
        (b.commit.sha.as_str(), b.stats.round_trips),
        (sha.as_str(), 1)
    );

    // A still polls its branch in one round trip, served from its entry.
    let poll = cache
        .fetch(&request(&url, branch("main"), a.clone()))
        .await
        .unwrap();
    assert!(poll.unchanged());
    assert_eq!((poll.stats.round_trips, poll.stats.received_bytes), (1, 0));

    // Entry names are salted digests: no URL, user or password in any path.
    // (Checked by shape: a hex digest may spell a short word such as "ada".)
    for entry in std::fs::read_dir(cache_dir.path()).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        let digest = name.strip_suffix(".git").unwrap_or(&name);
        let hex = digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        assert!(name == "salt" || (hex && name.ends_with(".git")), "{name}");
    }
}

#[tokio::test]
async fn unused_cache_entries_are_collected_and_fetched_again_when_needed() {
    let upstream = GitRepo::new();
    let sha = upstream
        .write(&[("deploy/a.yaml", "a: 1\n")])
        .commit("first");
    let daemon = GitDaemon::start(upstream.root());
    let url = daemon.url("work");
    let cache_dir = tempfile::tempdir().unwrap();
    let cache = GitCache::new(cache_dir.path());
    let fetch = || request(&url, branch("main"), GitCredentials::none());
    cache.fetch(&fetch()).await.unwrap();
    let entries = || {
        std::fs::read_dir(cache_dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "git"))
            .count()
    };
    assert_eq!(entries(), 1);

    // Used within the day: kept.
    let day = std::time::Duration::from_secs(24 * 3600);
    assert_eq!(cache.collect_garbage(day).await, 0);
    assert_eq!(entries(), 1);
    // Past the age: removed; the next poll fetches the commit again.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        cache
            .collect_garbage(std::time::Duration::from_secs(1))
            .await,
        1
    );
    assert_eq!(entries(), 0);
    let again = cache.fetch(&fetch()).await.unwrap();
    assert_eq!(again.commit.sha, sha);
    assert!(again.stats.round_trips > 0);
    assert_eq!(entries(), 1);
}
