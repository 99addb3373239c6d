//! Signed commits: which commits must be signed, and whether a signature was
//! made by a trusted key. OpenPGP with `pgp` (rpgp), SSH signatures (`gpg.format
//! ssh`, `ssh-keygen -Y sign`) with `ssh-key`; no cryptography here.
//!
//! Trusted keys come from the Secret in `spec.git.verify.secretRef`:
//! - every key ending in `.asc`, `.gpg` or `.pgp`: OpenPGP public keys, armored or binary;
//! - `allowed_signers`: an OpenSSH allowed-signers file (`principals [options] key`);
//!   `namespaces=` is honoured, `cert-authority` entries are not supported.

use std::collections::BTreeMap;

use git2::{Oid, Repository};
use pgp::composed::{Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;

use super::SourceError;
use crate::api::VerifyMode;

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

    /// Checks a commit signature (`gpgsig` header) over the signed commit data.
    /// Returns who signed, or why the signature is not accepted.
    pub fn check(&self, signature: &[u8], signed: &[u8]) -> Result<String, String> {
        let text =
            std::str::from_utf8(signature).map_err(|_| "signature is not text".to_string())?;
        if text.contains("-----BEGIN SSH SIGNATURE-----") {
            self.check_ssh(text, signed)
        } else if text.contains("-----BEGIN PGP SIGNATURE-----") {
            self.check_pgp(text, signed)
        } else {
            Err("unsupported signature format (only OpenPGP and SSH)".into())
        }
    }

    fn check_ssh(&self, text: &str, signed: &[u8]) -> Result<String, String> {
        let sig = ssh_key::SshSig::from_pem(text.trim())
            .map_err(|e| format!("malformed SSH signature: {e}"))?;
        if sig.namespace() != GIT_NAMESPACE {
            return Err(format!(
                "SSH signature namespace is '{}', not 'git'",
                sig.namespace()
            ));
        }
        let signer = self
            .ssh
            .iter()
            .filter(|s| s.namespaces.is_empty() || s.namespaces.iter().any(|n| n == GIT_NAMESPACE))
            .find(|s| s.key.key_data() == sig.public_key())
            .ok_or_else(|| "signed by an SSH key that is not in allowed_signers".to_string())?;
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
        for key in &self.pgp {
            if sig.verify(&key.primary_key, signed).is_ok() {
                return Ok(format!("openpgp {:X}", key.primary_key.fingerprint()));
            }
            for sub in &key.public_subkeys {
                if sig.verify(&sub.key, signed).is_ok() {
                    return Ok(format!("openpgp {:X}", key.primary_key.fingerprint()));
                }
            }
        }
        Err("not signed by a trusted OpenPGP key".into())
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
        let key =
            ssh_key::PublicKey::from_openssh(&format!("{} {}", fields[key_at], fields[key_at + 1]))
                .map_err(|e| format!("allowed_signers line {}: {e}", n + 1))?;
        out.push(AllowedSigner {
            principals: fields[0].to_string(),
            namespaces,
            key,
        });
    }
    Ok(out)
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

/// Which commits must be signed, given the mode, the last applied commit and
/// whether it is an ancestor of the tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    /// Only the tip.
    Tip,
    /// Commits reachable from the tip but not from the last applied commit.
    Since(String),
    /// Every commit reachable from the tip (the last applied commit is unknown here).
    All,
}

/// Decides the range to verify. Without a last applied commit (first delivery),
/// `AllCommits` checks the tip only, as there is no "since".
pub fn range_to_verify(mode: VerifyMode, last_applied: Option<&str>, last_is_known: bool) -> Range {
    match (mode, last_applied) {
        (VerifyMode::Head, _) | (VerifyMode::AllCommits, None) => Range::Tip,
        (VerifyMode::AllCommits, Some(last)) if last_is_known => Range::Since(last.to_string()),
        (VerifyMode::AllCommits, Some(_)) => Range::All,
    }
}

/// Verifies the commits that `mode` requires, oldest first; the first failure
/// names its commit. Nothing is accepted partially.
pub fn verify_range(
    repo: &Repository,
    mode: VerifyMode,
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
    let commits: Vec<Oid> = match range_to_verify(mode, last_applied, known) {
        Range::Tip => vec![tip],
        range => {
            let mut walk = repo.revwalk().map_err(cache)?;
            walk.set_sorting(git2::Sort::TOPOLOGICAL | git2::Sort::REVERSE)
                .map_err(cache)?;
            walk.push(tip).map_err(cache)?;
            if let (Range::Since(_), Some(last)) = (&range, last_oid) {
                walk.hide(last).map_err(cache)?;
            }
            walk.collect::<Result<_, _>>().map_err(cache)?
        }
    };
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
        let signer = keys.check(&signature, &signed).map_err(failed)?;
        out.push(Verified {
            commit: oid.to_string(),
            signer,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    #[test]
    fn ranges() {
        use VerifyMode::*;
        assert_eq!(range_to_verify(Head, Some("a"), true), Range::Tip);
        assert_eq!(range_to_verify(AllCommits, None, false), Range::Tip);
        assert_eq!(
            range_to_verify(AllCommits, Some("a"), true),
            Range::Since("a".into())
        );
        assert_eq!(range_to_verify(AllCommits, Some("a"), false), Range::All);
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
}
