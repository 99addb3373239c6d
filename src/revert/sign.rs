//! Signing the revert commit as `git commit -S` does: the commit buffer goes to
//! `ssh-keygen -Y sign -n git` (`gpg.format ssh`) or `gpg --detach-sign
//! --armor` (OpenPGP), and the armored signature becomes the `gpgsig` header.
//! Key material never passes through kubemint: only a key path or id is
//! handed to the standard tool, and its messages are screened before they are shown.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::RevertError;

/// `--signing-format`, or git config `gpg.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningFormat {
    /// `ssh-keygen -Y sign`.
    Ssh,
    /// `gpg --detach-sign`.
    OpenPgp,
}

impl std::str::FromStr for SigningFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "ssh" => Ok(SigningFormat::Ssh),
            "openpgp" | "gpg" => Ok(SigningFormat::OpenPgp),
            other => Err(format!(
                "signing format '{other}' is not supported: use ssh or openpgp"
            )),
        }
    }
}

/// What `--sign` was given; what is missing comes from git config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SigningRequest {
    /// `--signing-format` (default: `gpg.format`, else OpenPGP, as git).
    pub format: Option<SigningFormat>,
    /// `--signing-key`: an SSH key file (private, or public with the private
    /// key in ssh-agent, or `key::<public key>`) or an OpenPGP key id
    /// (default: `user.signingkey`; for OpenPGP, else the committer's email).
    pub key: Option<String>,
}

/// A signer resolved from the request and git config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The format.
    pub format: SigningFormat,
    /// The key (path or id), never its content.
    pub key: String,
    /// The program: `gpg.ssh.program` / `gpg.openpgp.program` / `gpg.program`, or the default.
    pub program: String,
}

/// Resolves the signer as git does from `request`, git config `config` and the committer's email.
pub fn resolve(
    request: &SigningRequest,
    config: &git2::Config,
    committer_email: &str,
) -> Result<Signer, RevertError> {
    let get = |name: &str| {
        config
            .get_string(name)
            .ok()
            .filter(|v| !v.trim().is_empty())
    };
    let format = match request.format {
        Some(f) => f,
        None => match get("gpg.format") {
            Some(v) => v.parse().map_err(|message| RevertError::Signing {
                message: format!("git config gpg.format: {message}"),
            })?,
            None => SigningFormat::OpenPgp,
        },
    };
    let key = request.key.clone().or_else(|| get("user.signingkey"));
    let (key, program) = match format {
        SigningFormat::Ssh => (
            key.ok_or_else(|| RevertError::Signing {
                message: "no SSH signing key: pass --signing-key <key file> or set git config user.signingkey".into(),
            })?,
            get("gpg.ssh.program").unwrap_or_else(|| "ssh-keygen".into()),
        ),
        SigningFormat::OpenPgp => (
            key.unwrap_or_else(|| format!("<{committer_email}>")),
            get("gpg.openpgp.program")
                .or_else(|| get("gpg.program"))
                .unwrap_or_else(|| "gpg".into()),
        ),
    };
    Ok(Signer {
        format,
        key,
        program,
    })
}

/// Signs a commit buffer; returns the armored signature for the `gpgsig` header.
pub fn sign(signer: &Signer, buffer: &[u8]) -> Result<String, RevertError> {
    // `key::ssh-ed25519 AAAA...` names a public key whose private half is in
    // ssh-agent; ssh-keygen wants it in a file.
    let mut _literal = None;
    let mut command = Command::new(&signer.program);
    match signer.format {
        SigningFormat::Ssh => {
            let key_file = match signer.key.strip_prefix("key::") {
                Some(public) => {
                    let mut file = tempfile::NamedTempFile::new().map_err(io_error)?;
                    writeln!(file, "{}", public.trim()).map_err(io_error)?;
                    let path = file.path().to_path_buf();
                    _literal = Some(file);
                    path
                }
                None => expand_home(&signer.key),
            };
            command
                .args(["-Y", "sign", "-n", "git", "-f"])
                .arg(key_file);
        }
        SigningFormat::OpenPgp => {
            command.args(["--status-fd=2", "-bsau", &signer.key]);
        }
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| RevertError::Signing {
            message: format!("cannot run {}: {e}", signer.program),
        })?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(buffer))
        .transpose();
    let out = child.wait_with_output().map_err(io_error)?;
    let signature = String::from_utf8_lossy(&out.stdout).to_string();
    let armored = match signer.format {
        SigningFormat::Ssh => signature.contains("-----BEGIN SSH SIGNATURE-----"),
        SigningFormat::OpenPgp => signature.contains("-----BEGIN PGP SIGNATURE-----"),
    };
    if !out.status.success() || !armored || written.is_err() {
        return Err(RevertError::Signing {
            message: format!(
                "{} could not sign with key {}: {}; check --signing-key or git config user.signingkey",
                signer.program,
                signer.key_label(),
                screened(&String::from_utf8_lossy(&out.stderr))
            ),
        });
    }
    Ok(signature)
}

/// An SSH private key held in memory, for the automatic revert (read from the
/// Secret in `spec.rollout.revertSigning`): signed in-process, as the image
/// has no `ssh-keygen`. `Debug` shows its fingerprint only.
#[derive(Clone)]
pub struct InMemoryKey(ssh_key::PrivateKey);

impl std::fmt::Debug for InMemoryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "InMemoryKey({})", self.fingerprint())
    }
}

impl InMemoryKey {
    /// An unencrypted OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    pub fn from_openssh(text: &[u8]) -> Result<Self, RevertError> {
        // The parser's message never quotes the key; it is replaced all the same.
        let key = ssh_key::PrivateKey::from_openssh(text).map_err(|_| RevertError::Signing {
            message:
                "the signing key is not an OpenSSH private key (ssh-keygen -t ed25519 writes one)"
                    .into(),
        })?;
        if key.is_encrypted() {
            return Err(RevertError::Signing {
                message: format!(
                    "the signing key {} is encrypted with a passphrase; kubemint needs one without (ssh-keygen -N '')",
                    key.public_key().fingerprint(Default::default())
                ),
            });
        }
        Ok(InMemoryKey(key))
    }

    /// `SHA256:...` of the public key.
    pub fn fingerprint(&self) -> String {
        self.0
            .public_key()
            .fingerprint(Default::default())
            .to_string()
    }

    /// Signs a commit buffer as `ssh-keygen -Y sign -n git` does; returns the armored signature.
    pub fn sign(&self, buffer: &[u8]) -> Result<String, RevertError> {
        let failed = |what: &str| RevertError::Signing {
            message: format!("{what} with SSH key {}", self.fingerprint()),
        };
        self.0
            .sign("git", ssh_key::HashAlg::Sha512, buffer)
            .map_err(|_| failed("signing"))?
            .to_pem(ssh_key::LineEnding::LF)
            .map_err(|_| failed("encoding the signature"))
    }
}

impl Signer {
    /// The key as messages show it: a path or id; a literal public key by its type only.
    pub fn key_label(&self) -> String {
        match self.key.strip_prefix("key::") {
            Some(public) => format!(
                "key::{} (from ssh-agent)",
                public.split_whitespace().next().unwrap_or("?")
            ),
            None => format!("'{}'", self.key),
        }
    }
}

/// The last lines of a tool's messages, without status lines and never
/// anything that looks like key material.
fn screened(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("[GNUPG:]"))
        .collect();
    if lines
        .iter()
        .any(|l| l.contains("PRIVATE KEY") || l.contains("-----BEGIN"))
    {
        return "(its output is withheld: it quoted key material)".into();
    }
    let tail = &lines[lines.len().saturating_sub(3)..];
    if tail.is_empty() {
        "no message".into()
    } else {
        tail.join("; ")
    }
}

fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

fn io_error(e: std::io::Error) -> RevertError {
    RevertError::Signing {
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ssh_keygen(dir: &std::path::Path, passphrase: &str) -> (String, String) {
        let path = dir.join(format!("key{}", passphrase.len()));
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-C", "bot", "-N", passphrase, "-f"])
            .arg(&path)
            .status()
            .expect("ssh-keygen")
            .success();
        assert!(ok);
        let private = std::fs::read_to_string(&path).unwrap();
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        (private, public)
    }

    #[test]
    fn a_key_in_memory_signs_what_the_channel_s_check_accepts() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = ssh_keygen(dir.path(), "");
        let key = InMemoryKey::from_openssh(private.as_bytes()).unwrap();
        let armored = key.sign(b"tree 0\n").unwrap();
        assert!(
            armored.starts_with("-----BEGIN SSH SIGNATURE-----"),
            "{armored}"
        );
        let data = std::collections::BTreeMap::from([(
            "allowed_signers".to_string(),
            format!("kubemint@localhost {public}").into_bytes(),
        )]);
        let keys = crate::source::TrustedKeys::from_secret_data(&data).unwrap();
        assert!(keys.check(armored.as_bytes(), b"tree 0\n").is_ok());
        assert!(keys.check(armored.as_bytes(), b"tree 1\n").is_err());
        assert!(!format!("{key:?}").contains(private.lines().nth(1).unwrap()));
    }

    #[test]
    fn an_encrypted_or_malformed_key_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let (private, _) = ssh_keygen(dir.path(), "secret");
        let err = InMemoryKey::from_openssh(private.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("is encrypted with a passphrase"), "{err}");
        let err =
            InMemoryKey::from_openssh(b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAsecretish\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("not an OpenSSH private key") && !err.contains("secretish"),
            "{err}"
        );
    }

    fn config(text: &str) -> (tempfile::TempDir, git2::Config) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(&path, text).unwrap();
        let config = git2::Config::open(&path).unwrap();
        (dir, config)
    }

    #[test]
    fn the_signer_comes_from_flags_then_git_config_as_git_does() {
        let (_d, git) = config("[gpg]\n\tformat = ssh\n[user]\n\tsigningkey = ~/.ssh/id_ed25519\n");
        let signer = resolve(&SigningRequest::default(), &git, "ada@example.com").unwrap();
        assert_eq!(signer.format, SigningFormat::Ssh);
        assert_eq!(signer.key, "~/.ssh/id_ed25519");
        assert_eq!(signer.program, "ssh-keygen");
        let flags = SigningRequest {
            format: Some(SigningFormat::OpenPgp),
            key: Some("ABCDEF0123456789".into()),
        };
        let signer = resolve(&flags, &git, "ada@example.com").unwrap();
        assert_eq!(
            (signer.format, signer.key.as_str(), signer.program.as_str()),
            (SigningFormat::OpenPgp, "ABCDEF0123456789", "gpg")
        );
        // No config: OpenPGP with the committer's identity; SSH needs a key.
        let (_d, empty) = config("");
        let signer = resolve(&SigningRequest::default(), &empty, "ada@example.com").unwrap();
        assert_eq!(
            (signer.format, signer.key.as_str()),
            (SigningFormat::OpenPgp, "<ada@example.com>")
        );
        let ssh = SigningRequest {
            format: Some(SigningFormat::Ssh),
            key: None,
        };
        let err = resolve(&ssh, &empty, "ada@example.com").unwrap_err();
        assert!(err.to_string().contains("--signing-key"), "{err}");
        let (_d, x509) = config("[gpg]\n\tformat = x509\n");
        assert!(resolve(&SigningRequest::default(), &x509, "a@b").is_err());
        let (_d, program) = config("[gpg]\n\tprogram = gpg2\n");
        let signer = resolve(&SigningRequest::default(), &program, "a@b").unwrap();
        assert_eq!(signer.program, "gpg2");
    }

    #[test]
    fn an_ssh_signature_is_made_with_ssh_keygen() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("sign");
        let made = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "signer", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(made.success());
        let signer = Signer {
            format: SigningFormat::Ssh,
            key: key.display().to_string(),
            program: "ssh-keygen".into(),
        };
        let signature = sign(&signer, b"tree 0000\n\nrevert\n").unwrap();
        assert!(
            signature.starts_with("-----BEGIN SSH SIGNATURE-----"),
            "{signature}"
        );
        // A missing key: the message names the key file, and nothing of a key.
        let missing = Signer {
            key: dir.path().join("nope").display().to_string(),
            ..signer
        };
        let err = sign(&missing, b"x").unwrap_err().to_string();
        assert!(err.contains("nope") && !err.contains("PRIVATE"), "{err}");
    }

    #[test]
    fn messages_never_quote_key_material() {
        let text = "error\n-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n";
        assert!(!screened(text).contains("b3BlbnNzaC1rZXk"));
        assert_eq!(
            screened("[GNUPG:] X\ngpg: no default secret key\n"),
            "gpg: no default secret key"
        );
        let literal = Signer {
            format: SigningFormat::Ssh,
            key: "key::ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA".into(),
            program: "ssh-keygen".into(),
        };
        assert_eq!(literal.key_label(), "key::ssh-ed25519 (from ssh-agent)");
    }

    #[test]
    fn an_openpgp_signature_is_made_with_gpg_and_verifies() {
        use std::os::unix::fs::PermissionsExt;
        let home = tempfile::tempdir().unwrap();
        let gpg = |args: &[&str]| {
            let out = Command::new("gpg")
                .env("GNUPGHOME", home.path())
                .args([
                    "--batch",
                    "--quiet",
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase",
                    "",
                ])
                .args(args)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        gpg(&[
            "--quick-gen-key",
            "Ada <ada@example.com>",
            "ed25519",
            "sign",
            "never",
        ]);
        let public = gpg(&["--armor", "--export", "ada@example.com"]);
        // gpg.program pointing at a wrapper, as a user's config may: this home, not ~/.gnupg.
        let wrapper = home.path().join("gpg-here");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\nexec gpg --homedir '{}' --batch --pinentry-mode loopback --passphrase '' \"$@\"\n",
                home.path().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let (_d, git) = config(&format!("[gpg]\n\tprogram = {}\n", wrapper.display()));
        let signer = resolve(&SigningRequest::default(), &git, "ada@example.com").unwrap();
        let data = b"tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nRevert\n";
        let signature = sign(&signer, data).unwrap();
        let keys = crate::source::TrustedKeys::from_secret_data(
            &[("ada.asc".to_string(), public.into_bytes())].into(),
        )
        .unwrap();
        assert!(keys.check(signature.as_bytes(), data).is_ok());
        // Nobody's key: gpg's reason, no key material.
        let nobody = Signer {
            key: "<nobody@example.com>".into(),
            ..signer
        };
        let err = sign(&nobody, data).unwrap_err().to_string();
        assert!(err.contains("nobody@example.com"), "{err}");
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", home.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}
