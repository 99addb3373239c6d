//! Signed commits: which commits must be signed, and whether a signature was
//! made by a trusted key. OpenPGP with `pgp` (rpgp), SSH signatures (`gpg.format
//! ssh`, `ssh-keygen -Y sign`) with `ssh-key`; no cryptography here.
//!
//! Trusted keys come from the Secret in `spec.git.verify.secretRef`:
//! - every key ending in `.asc`, `.gpg` or `.pgp`: OpenPGP public keys, armored or binary;
//! - `allowed_signers`: an OpenSSH allowed-signers file (`principals [options] key`);
//!   `namespaces=`, `valid-after=` and `valid-before=` are honoured (the time
//!   checked is the commit's, as git does; times without a `Z` are read as
//!   UTC), `cert-authority` entries are not supported.
//!
//! An OpenPGP signature counts only if the key that made it may sign (see
//! [`openpgp`]: flags, expiry at the signature's time, revocations).

use std::collections::BTreeMap;

use git2::{Oid, Repository};
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;

use super::SourceError;
use crate::api::{VerifyMode, VerifySpec};

pub mod openpgp;

use openpgp::Signer;

/// The SSHSIG namespace git signs commits in.
const GIT_NAMESPACE: &str = "git";

/// Keys that may sign commits.
#[derive(Clone, Default)]
pub struct TrustedKeys {
    pgp: Vec<SignedPublicKey>,
    ssh: Vec<AllowedSigner>,
}

impl std::fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedKeys")
            .field("pgp", &self.pgp.len())
            .field("ssh", &self.ssh.len())
            .finish()
    }
}

/// One line of an allowed-signers file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowedSigner {
    /// The principals (e-mail patterns) of the line, as written.
    pub principals: String,
    /// Namespaces the key may sign in; empty means any.
    pub namespaces: Vec<String>,
    /// `valid-after`: signatures from before this time (Unix seconds) are refused.
    pub valid_after: Option<i64>,
    /// `valid-before`: signatures from this time on are refused.
    pub valid_before: Option<i64>,
    /// The public key.
    pub key: ssh_key::PublicKey,
}

/// A commit whose signature was checked, and who signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Commit id.
    pub commit: String,
    /// The key that signed it (OpenPGP fingerprint or SSH principal and fingerprint).
    pub signer: String,
}

impl TrustedKeys {
    /// Reads the keys of a Secret's `data`.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, SourceError> {
        let invalid = |message: String| SourceError::InvalidKeys { message };
        let mut keys = TrustedKeys::default();
        for (name, value) in data {
            if [".asc", ".gpg", ".pgp"].iter().any(|s| name.ends_with(s)) {
                let parsed: Vec<SignedPublicKey> = match std::str::from_utf8(value) {
                    Ok(text) if text.contains("-----BEGIN PGP") => {
                        SignedPublicKey::from_string_many(text)
                            .map_err(|e| invalid(format!("key '{name}': {e}")))?
                            .0
                            .collect::<Result<_, _>>()
                    }
                    _ => SignedPublicKey::from_bytes_many(&value[..])
                        .map_err(|e| invalid(format!("key '{name}': {e}")))?
                        .collect::<Result<_, _>>(),
                }
                .map_err(|e| invalid(format!("key '{name}': {e}")))?;
                for key in parsed {
                    key.verify_bindings().map_err(|e| {
                        invalid(format!("key '{name}': invalid self-signature: {e}"))
                    })?;
                    keys.pgp.push(key);
                }
            } else if name == "allowed_signers" {
                let text = std::str::from_utf8(value)
                    .map_err(|_| invalid("key 'allowed_signers' is not UTF-8 text".into()))?;
                keys.ssh
                    .extend(parse_allowed_signers(text).map_err(invalid)?);
            }
        }
        if keys.pgp.is_empty() && keys.ssh.is_empty() {
            return Err(invalid(
                "no trusted keys: add OpenPGP public keys (*.asc) or an 'allowed_signers' key"
                    .into(),
            ));
        }
        Ok(keys)
    }

    /// Checks a commit signature (`gpgsig` header) over the signed commit data,
    /// as of now. Returns who signed, or why the signature is not accepted.
    pub fn check(&self, signature: &[u8], signed: &[u8]) -> Result<String, String> {
        let now = k8s_openapi::jiff::Timestamp::now().as_second();
        self.check_at(signature, signed, now)
    }

    /// [`TrustedKeys::check`] for a commit made at `time` (Unix seconds): the
    /// time an SSH key's `valid-after`/`valid-before` window is checked against.
    pub fn check_at(&self, signature: &[u8], signed: &[u8], time: i64) -> Result<String, String> {
        let text =
            std::str::from_utf8(signature).map_err(|_| "signature is not text".to_string())?;
        if text.contains("-----BEGIN SSH SIGNATURE-----") {
            self.check_ssh(text, signed, time)
        } else if text.contains("-----BEGIN PGP SIGNATURE-----") {
            self.check_pgp(text, signed)
        } else {
            Err("unsupported signature format (only OpenPGP and SSH)".into())
        }
    }

    fn check_ssh(&self, text: &str, signed: &[u8], time: i64) -> Result<String, String> {
        let sig = ssh_key::SshSig::from_pem(text.trim())
            .map_err(|e| format!("malformed SSH signature: {e}"))?;
        if sig.namespace() != GIT_NAMESPACE {
            return Err(format!(
                "SSH signature namespace is '{}', not 'git'",
                sig.namespace()
            ));
        }
        let matching: Vec<&AllowedSigner> = self
            .ssh
            .iter()
            .filter(|s| s.namespaces.is_empty() || s.namespaces.iter().any(|n| n == GIT_NAMESPACE))
            .filter(|s| s.key.key_data() == sig.public_key())
            .collect();
        if matching.is_empty() {
            return Err("signed by an SSH key that is not in allowed_signers".to_string());
        }
        let signer = matching.iter().find(|s| s.valid_at(time)).ok_or_else(|| {
            format!(
                "signed by SSH key {} at {}, outside the validity allowed_signers gives it ({})",
                matching[0].key.fingerprint(Default::default()),
                show_time(time),
                matching[0].window()
            )
        })?;
        signer
            .key
            .verify(GIT_NAMESPACE, signed, &sig)
            .map_err(|_| "SSH signature does not match the commit".to_string())?;
        Ok(format!(
            "{} ({})",
            signer.principals,
            signer.key.fingerprint(Default::default())
        ))
    }

    fn check_pgp(&self, text: &str, signed: &[u8]) -> Result<String, String> {
        let (sig, _) = DetachedSignature::from_string(text)
            .map_err(|e| format!("malformed OpenPGP signature: {e}"))?;
        let created = sig
            .signature
            .created()
            .map(|t| t.as_secs())
            .ok_or_else(|| "OpenPGP signature without a creation time".to_string())?;
        // The first key whose signature matches but may not sign says why; a
        // matching key elsewhere that may sign still wins.
        let mut refused = None;
        for cert in &self.pgp {
            let mut candidates = vec![(Signer::Primary, cert.primary_key.legacy_key_id())];
            if sig.verify(&cert.primary_key, signed).is_err() {
                candidates.clear();
            }
            for sub in &cert.public_subkeys {
                if sig.verify(&sub.key, signed).is_ok() {
                    candidates.push((Signer::Subkey(sub), sub.key.legacy_key_id()));
                }
            }
            for (signer, key_id) in candidates {
                match openpgp::usable_at(cert, signer, created) {
                    Ok(()) => return Ok(format!("openpgp {:X}", cert.primary_key.fingerprint())),
                    Err(problem) => {
                        let which = match signer {
                            Signer::Primary => "key".to_string(),
                            Signer::Subkey(_) => {
                                format!("subkey of {:X}", cert.primary_key.fingerprint())
                            }
                        };
                        refused.get_or_insert(format!(
                            "signed by OpenPGP {which} {}, but {problem}; sign with a valid signing key or update the trusted keys",
                            key_id.to_string().to_uppercase()
                        ));
                    }
                }
            }
        }
        Err(refused.unwrap_or_else(|| "not signed by a trusted OpenPGP key".into()))
    }
}

/// Parses an OpenSSH allowed-signers file.
pub fn parse_allowed_signers(text: &str) -> Result<Vec<AllowedSigner>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let Some(key_at) = fields.iter().position(|f| is_key_type(f)) else {
            return Err(format!("allowed_signers line {}: no public key", n + 1));
        };
        if key_at == 0 || key_at + 1 >= fields.len() {
            return Err(format!(
                "allowed_signers line {}: expected 'principals [options] key'",
                n + 1
            ));
        }
        let options = fields[1..key_at].join(" ");
        if options.contains("cert-authority") {
            continue;
        }
        let namespaces = option_value(&options, "namespaces")
            .map(|v| v.split(',').map(str::to_string).collect())
            .unwrap_or_default();
        let time = |name: &str| -> Result<Option<i64>, String> {
            option_value(&options, name)
                .map(|v| {
                    parse_signer_time(&v).ok_or_else(|| {
                        format!(
                            "allowed_signers line {}: {name}={v:?} is not YYYYMMDD[HHMM[SS]][Z]",
                            n + 1
                        )
                    })
                })
                .transpose()
        };
        let (valid_after, valid_before) = (time("valid-after")?, time("valid-before")?);
        let key =
            ssh_key::PublicKey::from_openssh(&format!("{} {}", fields[key_at], fields[key_at + 1]))
                .map_err(|e| format!("allowed_signers line {}: {e}", n + 1))?;
        out.push(AllowedSigner {
            principals: fields[0].to_string(),
            namespaces,
            valid_after,
            valid_before,
            key,
        });
    }
    Ok(out)
}

impl AllowedSigner {
    /// Whether a signature made at `time` is within the line's validity.
    fn valid_at(&self, time: i64) -> bool {
        self.valid_after.is_none_or(|t| time >= t) && self.valid_before.is_none_or(|t| time < t)
    }

    fn window(&self) -> String {
        let after = self
            .valid_after
            .map(|t| format!("valid-after {}", show_time(t)));
        let before = self
            .valid_before
            .map(|t| format!("valid-before {}", show_time(t)));
        after
            .into_iter()
            .chain(before)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An allowed-signers time, `YYYYMMDD[HHMM[SS]]` with an optional `Z`, as UTC seconds.
fn parse_signer_time(text: &str) -> Option<i64> {
    let digits = text.strip_suffix(['Z', 'z']).unwrap_or(text);
    if !matches!(digits.len(), 8 | 12 | 14) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part = |from: usize, to: usize| digits.get(from..to).map_or(Some(0), |p| p.parse().ok());
    use k8s_openapi::jiff::civil::{Date, Time};
    // `Date::new` and `Time::new` refuse out-of-range fields (month 13) rather than panic.
    let date = Date::new(
        digits[0..4].parse().ok()?,
        digits[4..6].parse().ok()?,
        digits[6..8].parse().ok()?,
    )
    .ok()?;
    let time = Time::new(part(8, 10)?, part(10, 12)?, part(12, 14)?, 0).ok()?;
    let at = date
        .to_datetime(time)
        .to_zoned(k8s_openapi::jiff::tz::TimeZone::UTC)
        .ok()?;
    Some(at.timestamp().as_second())
}

fn show_time(seconds: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_second(seconds)
        .map_or_else(|_| seconds.to_string(), |t| t.to_string())
}

fn is_key_type(field: &str) -> bool {
    field.starts_with("ssh-") || field.starts_with("ecdsa-sha2-") || field.starts_with("sk-")
}

/// `name="a,b"` or `name=a` in a comma-free options string.
fn option_value(options: &str, name: &str) -> Option<String> {
    let start = options.find(&format!("{name}="))? + name.len() + 1;
    let rest = &options[start..];
    if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next().map(str::to_string)
    } else {
        rest.split([' ', ',']).next().map(str::to_string)
    }
}

/// What `spec.git.verify` asks for, beyond the keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// Which commits must be signed.
    pub mode: VerifyMode,
    /// `spec.git.verify.since`: the trust anchor of `AllCommits`. It and its
    /// ancestors are trusted; the tip must descend from it.
    pub since: Option<String>,
}

impl Policy {
    /// A policy of `mode` without an anchor.
    pub fn mode(mode: VerifyMode) -> Self {
        Policy { mode, since: None }
    }

    /// Whether checking it needs the history, not only the tip (no shallow cache).
    pub fn needs_history(&self) -> bool {
        self.mode == VerifyMode::AllCommits
    }
}

impl From<&VerifySpec> for Policy {
    fn from(spec: &VerifySpec) -> Self {
        Policy {
            mode: spec.mode,
            since: spec
                .since
                .as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string),
        }
    }
}

/// Which commits must be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    /// Only the tip.
    Tip,
    /// Commits reachable from the tip but from none of these trusted commits
    /// (the last delivered commit, the trust anchor).
    Since(Vec<String>),
    /// Every commit reachable from the tip.
    All,
}

/// Decides the range to verify. `AllCommits` trusts the last delivered commit
/// (when the cache has it) and the anchor; with neither (a first delivery
/// without `since`), the whole history must be signed.
pub fn range_to_verify(policy: &Policy, last_applied: Option<&str>, last_is_known: bool) -> Range {
    if policy.mode == VerifyMode::Head {
        return Range::Tip;
    }
    let trusted: Vec<String> = last_applied
        .filter(|_| last_is_known)
        .into_iter()
        .chain(policy.since.as_deref())
        .map(str::to_string)
        .collect();
    if trusted.is_empty() {
        Range::All
    } else {
        Range::Since(trusted)
    }
}

/// Verifies the commits that `policy` requires, oldest first; the first failure
/// names its commit. Nothing is accepted partially. With an anchor, a tip that
/// does not descend from it is refused. Commits the cache lacks because it is
/// shallow are never skipped silently: fetch with the history first
/// ([`Policy::needs_history`]).
pub fn verify_range(
    repo: &Repository,
    policy: &Policy,
    last_applied: Option<&str>,
    tip: &str,
    keys: &TrustedKeys,
) -> Result<Vec<Verified>, SourceError> {
    let cache = |e: git2::Error| SourceError::Cache {
        path: repo.path().display().to_string(),
        message: e.message().to_string(),
    };
    let tip = Oid::from_str(tip).map_err(cache)?;
    let last_oid = last_applied.and_then(|l| Oid::from_str(l).ok());
    let known = last_oid.is_some_and(|o| repo.find_commit(o).is_ok());
    let range = range_to_verify(policy, last_applied, known);
    if range != Range::Tip {
        if let Some(anchor) = &policy.since {
            check_anchor(repo, anchor, tip)?;
        }
    }
    let commits: Vec<Oid> = match &range {
        Range::Tip => vec![tip],
        Range::Since(_) | Range::All => {
            let mut walk = repo.revwalk().map_err(cache)?;
            walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
                .map_err(cache)?;
            walk.push(tip).map_err(cache)?;
            if let Range::Since(trusted) = &range {
                for sha in trusted {
                    let oid = repo
                        .revparse_single(sha)
                        .and_then(|o| o.peel_to_commit())
                        .map_err(cache)?
                        .id();
                    walk.hide(oid).map_err(cache)?;
                }
            }
            // libgit2 stops with "object not found" at a shallow boundary's parent.
            walk.collect::<Result<_, _>>().map_err(|e| {
                if repo.is_shallow() {
                    shallow_error(repo, "the walk reached a missing parent".into())
                } else {
                    cache(e)
                }
            })?
        }
    };
    if range != Range::Tip {
        refuse_shallow_walk(repo, &commits)?;
    }
    let mut out = Vec::with_capacity(commits.len());
    for oid in commits {
        let failed = |reason: String| SourceError::SignatureVerificationFailed {
            commit: oid.to_string(),
            reason,
        };
        let (signature, signed) = match repo.extract_signature(&oid, None) {
            Ok(pair) => pair,
            Err(e) if e.code() == git2::ErrorCode::NotFound => {
                return Err(failed("the commit is not signed".into()))
            }
            Err(e) => return Err(cache(e)),
        };
        let time = repo
            .find_commit(oid)
            .map_err(cache)?
            .committer()
            .when()
            .seconds();
        let signer = keys.check_at(&signature, &signed, time).map_err(failed)?;
        out.push(Verified {
            commit: oid.to_string(),
            signer,
        });
    }
    Ok(out)
}

/// The anchor must be a commit of the history, and the tip must be it or descend from it.
fn check_anchor(repo: &Repository, anchor: &str, tip: Oid) -> Result<(), SourceError> {
    let refuse = |reason: String| SourceError::SignatureVerificationFailed {
        commit: tip.to_string(),
        reason,
    };
    let Some(anchor_oid) = repo
        .revparse_single(anchor)
        .and_then(|o| o.peel_to_commit())
        .ok()
        .map(|c| c.id())
    else {
        return Err(refuse(format!(
            "the trust anchor spec.git.verify.since '{anchor}' is not a commit of the repository; set it to a full commit id from the branch's history"
        )));
    };
    let descends = anchor_oid == tip || repo.graph_descendant_of(tip, anchor_oid).unwrap_or(false);
    if descends {
        Ok(())
    } else {
        Err(refuse(format!(
            "it does not descend from the trust anchor spec.git.verify.since {anchor_oid} (history rewritten, or the anchor is on another branch); nothing is delivered until the tip descends from the anchor or the anchor is changed"
        )))
    }
}

/// A shallow cache shows its oldest commits without parents: a walk that
/// reaches one would verify less than asked. Refuse instead of skipping.
fn refuse_shallow_walk(repo: &Repository, walked: &[Oid]) -> Result<(), SourceError> {
    let Ok(text) = std::fs::read_to_string(repo.path().join("shallow")) else {
        return Ok(());
    };
    let boundary: std::collections::HashSet<Oid> = text
        .lines()
        .filter_map(|l| Oid::from_str(l.trim()).ok())
        .collect();
    match walked.iter().find(|c| boundary.contains(c)) {
        Some(commit) => Err(shallow_error(repo, format!("it ends at {commit}"))),
        None => Ok(()),
    }
}

fn shallow_error(repo: &Repository, detail: String) -> SourceError {
    SourceError::Cache {
        path: repo.path().display().to_string(),
        message: format!(
            "the cache is shallow ({detail}): the history to verify is incomplete, so nothing is accepted; the next fetch with verify mode AllCommits deepens it"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_signers_times_parse_as_utc_and_bad_ones_are_refused() {
        assert_eq!(parse_signer_time("20260101"), Some(1_767_225_600));
        assert_eq!(
            parse_signer_time("202601010130Z"),
            Some(1_767_225_600 + 5400)
        );
        assert_eq!(
            parse_signer_time("20260101013005"),
            Some(1_767_225_600 + 5405)
        );
        for bad in ["2026", "20261301", "2026010125", "tomorrow"] {
            assert_eq!(parse_signer_time(bad), None, "{bad}");
        }
        let line =
            format!("ada@example.com valid-after=\"20260101\",valid-before=\"20270101\" {KEY}");
        let signer = &parse_allowed_signers(&line).unwrap()[0];
        assert!(!signer.valid_at(1_767_225_599));
        assert!(signer.valid_at(1_767_225_600));
        assert!(!signer.valid_at(1_798_761_600), "valid-before is exclusive");
        assert!(parse_allowed_signers(&format!("a@b valid-before=soon {KEY}")).is_err());
    }

    #[test]
    fn an_ssh_signature_counts_only_within_the_key_s_validity() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        let run = |args: &[&str]| {
            let out = std::process::Command::new("ssh-keygen")
                .args(args)
                .output()
                .expect("ssh-keygen");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["-q", "-t", "ed25519", "-N", "", "-f", key.to_str().unwrap()]);
        let data = dir.path().join("data");
        std::fs::write(&data, b"tree 0\n").unwrap();
        run(&[
            "-Y",
            "sign",
            "-n",
            "git",
            "-f",
            key.to_str().unwrap(),
            data.to_str().unwrap(),
        ]);
        let signature = std::fs::read(dir.path().join("data.sig")).unwrap();
        let public = std::fs::read_to_string(dir.path().join("key.pub")).unwrap();
        let keys = |options: &str| {
            let data: BTreeMap<String, Vec<u8>> = [(
                "allowed_signers".to_string(),
                format!("ada@example.com {options} {public}").into_bytes(),
            )]
            .into();
            TrustedKeys::from_secret_data(&data).unwrap()
        };
        let (before, inside) = (1_767_225_599, 1_767_225_600);
        let windowed = keys("valid-after=\"20260101\",valid-before=\"20270101\"");
        assert!(windowed.check_at(&signature, b"tree 0\n", inside).is_ok());
        let err = windowed
            .check_at(&signature, b"tree 0\n", before)
            .unwrap_err();
        assert!(err.contains("outside the validity allowed_signers gives it (valid-after 2026-01-01T00:00:00Z, valid-before 2027-01-01T00:00:00Z)"), "{err}");
        assert!(
            keys("").check_at(&signature, b"tree 0\n", before).is_ok(),
            "no window: any time"
        );
    }

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    #[test]
    fn ranges() {
        use VerifyMode::*;
        let head = Policy::mode(Head);
        let all = Policy::mode(AllCommits);
        let anchored = Policy {
            mode: AllCommits,
            since: Some("anchor".into()),
        };
        let since = |v: &[&str]| Range::Since(v.iter().map(|s| s.to_string()).collect());
        assert_eq!(range_to_verify(&head, Some("a"), true), Range::Tip);
        assert_eq!(range_to_verify(&head, None, false), Range::Tip);
        // First delivery: the whole history, or from the anchor on.
        assert_eq!(range_to_verify(&all, None, false), Range::All);
        assert_eq!(range_to_verify(&anchored, None, false), since(&["anchor"]));
        // Later: from the last delivered commit (and never before the anchor).
        assert_eq!(range_to_verify(&all, Some("a"), true), since(&["a"]));
        assert_eq!(
            range_to_verify(&anchored, Some("a"), true),
            since(&["a", "anchor"])
        );
        // The last delivered commit is gone (history rewritten): as a first delivery.
        assert_eq!(range_to_verify(&all, Some("a"), false), Range::All);
        assert_eq!(
            range_to_verify(&anchored, Some("a"), false),
            since(&["anchor"])
        );
    }

    #[test]
    fn allowed_signers_lines() {
        let text = format!(
            "# team\nada@example.com {KEY} ada\n*@example.com namespaces=\"git,file\" {KEY}\nca@x cert-authority {KEY}\n"
        );
        let signers = parse_allowed_signers(&text).unwrap();
        assert_eq!(signers.len(), 2);
        assert_eq!(signers[0].principals, "ada@example.com");
        assert!(signers[0].namespaces.is_empty());
        assert_eq!(signers[1].namespaces, vec!["git", "file"]);
        assert!(parse_allowed_signers("ada@example.com\n").is_err());
        assert!(parse_allowed_signers(&format!("{KEY}\n")).is_err());
    }

    #[test]
    fn secrets_without_keys_are_rejected() {
        let data: BTreeMap<String, Vec<u8>> = [("other".to_string(), b"x".to_vec())].into();
        assert!(TrustedKeys::from_secret_data(&data).is_err());
        let data: BTreeMap<String, Vec<u8>> = [(
            "allowed_signers".to_string(),
            format!("a@b {KEY}").into_bytes(),
        )]
        .into();
        let keys = TrustedKeys::from_secret_data(&data).unwrap();
        assert!(keys.check(b"garbage", b"data").is_err());
        assert!(keys
            .check(
                b"-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n",
                b"data"
            )
            .is_err());
    }

    /// A GnuPG home of its own, with an optionally faked clock (`--faked-system-time`),
    /// so that keys can expire and be revoked between two signatures.
    struct Gpg {
        home: tempfile::TempDir,
    }

    impl Gpg {
        fn new() -> Self {
            Gpg {
                home: tempfile::tempdir().unwrap(),
            }
        }

        fn run(&self, at: Option<&str>, args: &[&str], stdin: &[u8]) -> String {
            use std::io::Write;
            let mut cmd = std::process::Command::new("gpg");
            cmd.env("GNUPGHOME", self.home.path()).args([
                "--batch",
                "--quiet",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
            ]);
            if let Some(at) = at {
                cmd.arg(format!("--faked-system-time={at}!"));
            }
            let mut child = cmd
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("gpg");
            child.stdin.take().unwrap().write_all(stdin).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "gpg {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).to_string()
        }

        /// A new ed25519 key with `usage` (`sign`, `cert`); returns (fingerprint, key id).
        fn generate(&self, uid: &str, usage: &str, at: Option<&str>) -> (String, String) {
            self.run(
                at,
                &["--quick-gen-key", uid, "ed25519", usage, "never"],
                b"",
            );
            let listing = self.run(None, &["--with-colons", "--list-keys", uid], b"");
            let field = |prefix: &str, n: usize| {
                listing
                    .lines()
                    .find(|l| l.starts_with(prefix))
                    .and_then(|l| l.split(':').nth(n))
                    .unwrap()
                    .to_string()
            };
            (field("fpr:", 9), field("pub:", 4))
        }

        /// The key id of the last subkey of `fpr`.
        fn last_subkey(&self, fpr: &str) -> String {
            let listing = self.run(None, &["--with-colons", "--list-keys", fpr], b"");
            let line = listing.lines().rfind(|l| l.starts_with("sub:"));
            line.and_then(|l| l.split(':').nth(4)).unwrap().to_string()
        }

        /// An armored detached signature of `data` by `key` (append `!` for a subkey).
        fn sign(&self, key: &str, data: &[u8], at: Option<&str>) -> Vec<u8> {
            self.run(at, &["--armor", "--detach-sign", "-u", key], data)
                .into_bytes()
        }

        /// Runs `--edit-key fpr` with `commands`, one a line.
        fn edit(&self, fpr: &str, commands: &str, at: Option<&str>) {
            self.run(
                at,
                &["--command-fd", "0", "--status-fd", "2", "--edit-key", fpr],
                commands.as_bytes(),
            );
        }

        fn trusted(&self, fpr: &str) -> TrustedKeys {
            let public = self.run(None, &["--armor", "--export", fpr], b"");
            let data: BTreeMap<String, Vec<u8>> =
                [("team.asc".to_string(), public.into_bytes())].into();
            TrustedKeys::from_secret_data(&data).expect("the exported key reads back")
        }
    }

    impl Drop for Gpg {
        fn drop(&mut self) {
            // The agent this home started, and only it.
            let _ = std::process::Command::new("gpgconf")
                .env("GNUPGHOME", self.home.path())
                .args(["--kill", "gpg-agent"])
                .status();
        }
    }

    const DATA: &[u8] = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nsigned commit\n";

    #[test]
    fn a_key_vouches_for_what_it_signed_before_it_expired_but_not_after() {
        let gpg = Gpg::new();
        let (fpr, key_id) = gpg.generate("Old <old@example.com>", "sign", Some("20200101T000000"));
        let early = gpg.sign(&fpr, DATA, Some("20200102T000000"));
        let late = gpg.sign(&fpr, DATA, Some("20200104T000000"));
        // Later, the key is given two days: it expired on 2020-01-03 at 01:00.
        gpg.run(
            Some("20200101T010000"),
            &["--quick-set-expire", &fpr, "2d"],
            b"",
        );
        let keys = gpg.trusted(&fpr);
        assert_eq!(keys.check(&early, DATA), Ok(format!("openpgp {fpr}")));
        let err = keys.check(&late, DATA).unwrap_err();
        assert!(
            err.contains(&key_id) && err.contains("expired at 2020-01-03T01:00:00Z"),
            "{err}"
        );
        assert!(keys.check(&early, b"other data").is_err());
    }

    #[test]
    fn a_revoked_key_signs_nothing() {
        let gpg = Gpg::new();
        let (fpr, key_id) = gpg.generate("Gone <gone@example.com>", "sign", None);
        let signature = gpg.sign(&fpr, DATA, None);
        assert!(gpg.trusted(&fpr).check(&signature, DATA).is_ok());
        // GnuPG wrote a revocation certificate at creation; importing it revokes the key.
        let certificate = std::fs::read_to_string(
            gpg.home
                .path()
                .join("openpgp-revocs.d")
                .join(format!("{fpr}.rev")),
        )
        .unwrap()
        .replace(":-----BEGIN", "-----BEGIN");
        gpg.run(None, &["--import"], certificate.as_bytes());
        let err = gpg.trusted(&fpr).check(&signature, DATA).unwrap_err();
        assert!(
            err.contains(&key_id) && err.contains("revoked (no reason given)"),
            "{err}"
        );
    }

    #[test]
    fn a_retired_subkey_keeps_its_earlier_signatures() {
        let gpg = Gpg::new();
        let at = Some("20200101T000000");
        let (fpr, _) = gpg.generate("Team <team@example.com>", "cert", at);
        gpg.run(
            at,
            &["--quick-add-key", &fpr, "ed25519", "sign", "never"],
            b"",
        );
        let sub = gpg.last_subkey(&fpr);
        let early = gpg.sign(&format!("{sub}!"), DATA, Some("20200102T000000"));
        let late = gpg.sign(&format!("{sub}!"), DATA, Some("20200104T000000"));
        let keys = gpg.trusted(&fpr);
        assert_eq!(keys.check(&late, DATA), Ok(format!("openpgp {fpr}")));
        // Revoked on 2020-01-03 as "no longer used" (reason 3).
        gpg.edit(
            &fpr,
            "key 1\nrevkey\ny\n3\n\ny\nsave\n",
            Some("20200103T000000"),
        );
        let keys = gpg.trusted(&fpr);
        assert_eq!(keys.check(&early, DATA), Ok(format!("openpgp {fpr}")));
        let err = keys.check(&late, DATA).unwrap_err();
        assert!(
            err.contains(&format!("subkey of {fpr} {sub}"))
                && err.contains("revoked (retired since 2020-01-03T00:00:00Z)"),
            "{err}"
        );
    }

    #[test]
    fn a_key_without_the_signing_flag_is_refused() {
        let gpg = Gpg::new();
        let (fpr, key_id) = gpg.generate("Cert <cert@example.com>", "sign", None);
        let signature = gpg.sign(&fpr, DATA, None);
        // The newest self-signature allows certifying only.
        gpg.edit(&fpr, "change-usage\nS\nQ\nsave\n", None);
        let err = gpg.trusted(&fpr).check(&signature, DATA).unwrap_err();
        assert!(
            err.contains(&key_id) && err.contains("not a signing key"),
            "{err}"
        );
    }
}
