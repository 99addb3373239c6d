//! Credentials for git remotes, read from the Secret named in `spec.git.secretRef`,
//! and the git2 callbacks that use them.
//!
//! Keys of the Secret:
//! - SSH: `identity` (private key, OpenSSH or PEM), optional `passphrase`, and
//!   `known_hosts`, which is required: no SSH connection is made without
//!   host key verification.
//! - HTTPS: `username` and `password` (basic auth), or `bearerToken`
//!   (sent as an `Authorization: Bearer` header).
//! - `ca.crt`: PEM CA certificate(s) that HTTPS servers are verified against
//!   instead of the system trust store. The check happens in git2's
//!   `certificate_check` callback (per remote), not with the process-global
//!   `git2::opts::set_ssl_cert_file`, so one channel's CA never affects another.
//!
//! None of these values ever appears in `Debug` output, logs, events, status or
//! error messages.
//!
//! `kubemint revert --push` uses the same types: build the callbacks with
//! [`remote_callbacks`] and pass [`GitCredentials::http_headers`] to
//! `PushOptions::custom_headers`.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;

use base64::Engine;
use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::cache_key::CredentialsIdentity;
use super::SourceError;

/// Credentials for one remote. `Debug` shows which kinds are present, never their values.
#[derive(Clone, Default)]
pub struct GitCredentials {
    identity: Option<String>,
    passphrase: Option<String>,
    known_hosts: Option<String>,
    username: Option<String>,
    password: Option<String>,
    bearer_token: Option<String>,
    ca_cert: Option<Vec<u8>>,
    /// Whose credentials these are: the cache serves a fetch only what was
    /// fetched with the same identity.
    who: CredentialsIdentity,
    /// A digest of their content (not where they were read from): polls are
    /// shared by it.
    content: CredentialsIdentity,
}

impl fmt::Debug for GitCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = |o: bool| if o { "<redacted>" } else { "<none>" };
        f.debug_struct("GitCredentials")
            .field("identity", &shown(self.identity.is_some()))
            .field("passphrase", &shown(self.passphrase.is_some()))
            .field(
                "known_hosts",
                &self.known_hosts.as_ref().map(|k| k.lines().count()),
            )
            .field("username", &shown(self.username.is_some()))
            .field("password", &shown(self.password.is_some()))
            .field("bearer_token", &shown(self.bearer_token.is_some()))
            .field("ca_cert", &self.ca_cert.is_some())
            .field("who", &self.who)
            .finish()
    }
}

impl GitCredentials {
    /// No credentials: anonymous HTTPS or `git://`, local paths. SSH is refused
    /// (there is no `known_hosts`).
    pub fn none() -> Self {
        GitCredentials::default()
    }

    /// Reads the keys of Secret `namespace/name`'s `data`, as
    /// [`GitCredentials::from_secret_data`] does; their cache identity is that
    /// Secret's (its name and content). Their poll identity is their content
    /// alone: the same credentials in two namespaces share polls.
    pub fn from_secret(
        namespace: &str,
        name: &str,
        data: &BTreeMap<String, Vec<u8>>,
    ) -> Result<Self, SourceError> {
        Ok(GitCredentials {
            who: CredentialsIdentity::of_secret(namespace, name, data),
            ..Self::from_secret_data(data)?
        })
    }

    /// Reads the keys of a Secret's `data`. Unknown keys are ignored. Their
    /// cache identity is their content (see [`GitCredentials::from_secret`]).
    ///
    /// Errors name the missing or malformed key, never a value.
    pub fn from_secret_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, SourceError> {
        let text =
            |key: &str| -> Result<Option<String>, SourceError> {
                match data.get(key) {
                    None => Ok(None),
                    Some(v) => String::from_utf8(v.clone()).map(Some).map_err(|_| {
                        SourceError::Credentials {
                            message: format!("key '{key}' is not UTF-8 text"),
                        }
                    }),
                }
            };
        let mut creds = GitCredentials {
            identity: text("identity")?,
            passphrase: text("passphrase")?.filter(|p| !p.is_empty()),
            known_hosts: text("known_hosts")?,
            username: text("username")?,
            password: text("password")?,
            bearer_token: text("bearerToken")?.map(|t| t.trim().to_string()),
            ca_cert: data.get("ca.crt").cloned(),
            who: CredentialsIdentity::of_secret("", "", data),
            content: CredentialsIdentity::anonymous(),
        };
        creds.content = creds.content_identity();
        if creds.password.is_some() && creds.username.is_none() {
            return Err(SourceError::Credentials {
                message: "key 'password' is set but 'username' is missing".into(),
            });
        }
        if creds.identity.is_some() && creds.known_hosts.is_none() {
            return Err(SourceError::Credentials {
                message: "key 'identity' is set but 'known_hosts' is missing; SSH needs host key verification".into(),
            });
        }
        if let Some(ca) = &creds.ca_cert {
            if parse_ca(ca).map(|c| c.is_empty()).unwrap_or(true) {
                return Err(SourceError::Credentials {
                    message: "key 'ca.crt' holds no PEM certificate".into(),
                });
            }
        }
        Ok(creds)
    }

    /// The digest of every field git uses, in a fixed order: what the
    /// credentials can fetch depends on these alone (unknown keys of the Secret,
    /// its namespace and name do not count).
    fn content_identity(&self) -> CredentialsIdentity {
        fn text(v: &Option<String>) -> Option<&[u8]> {
            v.as_deref().map(str::as_bytes)
        }
        CredentialsIdentity::of_fields(&[
            ("identity", text(&self.identity)),
            ("passphrase", text(&self.passphrase)),
            ("known_hosts", text(&self.known_hosts)),
            ("username", text(&self.username)),
            ("password", text(&self.password)),
            ("bearerToken", text(&self.bearer_token)),
            ("ca.crt", self.ca_cert.as_deref()),
        ])
    }

    /// Who these credentials are, for the cache: anonymous, or their Secret.
    pub fn cache_identity(&self) -> &CredentialsIdentity {
        &self.who
    }

    /// What these credentials are, for shared polls: anonymous, or a digest
    /// of the fields git uses (see [`super::cache_key`]).
    pub fn poll_identity(&self) -> &CredentialsIdentity {
        &self.content
    }

    /// Extra HTTP headers for fetch and push options (`Authorization: Bearer ...`).
    pub fn http_headers(&self) -> Vec<String> {
        match &self.bearer_token {
            Some(token) => vec![format!("Authorization: Bearer {token}")],
            None => Vec::new(),
        }
    }

    /// Every secret value, so that messages quoting them can be scrubbed.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        [&self.password, &self.bearer_token, &self.passphrase]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|s| s.len() >= 3)
            .collect()
    }

    /// Replaces any secret value in `message` with `***`.
    pub fn scrub(&self, message: &str) -> String {
        let mut out = message.to_string();
        for secret in self.secrets() {
            out = out.replace(secret, "***");
        }
        out
    }
}

/// Why a push did not land.
#[derive(Debug)]
pub enum PushFailure {
    /// The transport failed (connection, authentication, protocol).
    Transport(git2::Error),
    /// The remote refused the ref (non-fast-forward, protected branch, hook);
    /// libgit2 reports that only through a callback.
    Rejected(String),
}

impl PushFailure {
    /// The message, unsanitized: callers pass it through `sanitize`.
    pub fn message(&self) -> &str {
        match self {
            PushFailure::Transport(e) => e.message(),
            PushFailure::Rejected(m) => m,
        }
    }
}

/// Pushes `refspec` through `remote` with `creds` (and their HTTP headers); a
/// ref the remote refuses is an error, not a silent no-op.
pub fn push_refspec(
    remote: &mut git2::Remote<'_>,
    refspec: &str,
    creds: &GitCredentials,
    url: &str,
) -> Result<(), PushFailure> {
    let rejected: std::rc::Rc<std::cell::RefCell<Option<String>>> = Default::default();
    let mut callbacks = remote_callbacks(creds, url);
    let seen = rejected.clone();
    callbacks.push_update_reference(move |_refname, status| {
        if let Some(message) = status {
            *seen.borrow_mut() = Some(message.to_string());
        }
        Ok(())
    });
    let mut options = git2::PushOptions::new();
    options.remote_callbacks(callbacks);
    let headers = creds.http_headers();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    if !headers.is_empty() {
        options.custom_headers(&headers);
    }
    remote
        .push(&[refspec], Some(&mut options))
        .map_err(PushFailure::Transport)?;
    match rejected.take() {
        Some(message) => Err(PushFailure::Rejected(message)),
        None => Ok(()),
    }
}

/// git2 callbacks for `url` with `creds`: credentials (tried once each, so a wrong
/// password fails instead of looping), SSH host key verification against
/// `known_hosts`, and HTTPS verification against `ca.crt` when it is given.
pub fn remote_callbacks(creds: &GitCredentials, url: &str) -> RemoteCallbacks<'static> {
    let mut callbacks = RemoteCallbacks::new();
    let c = creds.clone();
    let attempts = Cell::new(0u32);
    let user_asked = Cell::new(false);
    callbacks.credentials(move |_url, username_from_url, allowed| {
        // Over SSH: the URL's user, else the Secret's `username`, else `git`.
        let user = username_from_url
            .or(c.username.as_deref())
            .unwrap_or("git");
        // libgit2 first asks for just a user name when the URL has none; that is
        // not an attempt at the credentials, so the key still gets its one try.
        if allowed == CredentialType::USERNAME && !user_asked.replace(true) {
            return Cred::username(user);
        }
        attempts.set(attempts.get() + 1);
        if attempts.get() > 1 {
            return Err(git2::Error::from_str(
                "authentication failed: the remote refused the credentials",
            ));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            if let Some(identity) = &c.identity {
                return Cred::ssh_key_from_memory(user, None, identity, c.passphrase.as_deref())
                    .map_err(|_| {
                        git2::Error::from_str("the SSH identity could not be loaded (wrong passphrase or unsupported key format?)")
                    });
            }
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            if let (Some(user), Some(password)) = (&c.username, &c.password) {
                return Cred::userpass_plaintext(user, password);
            }
        }
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(user);
        }
        Err(git2::Error::from_str(
            "the remote asks for credentials that spec.git.secretRef does not provide",
        ))
    });
    let known_hosts = creds.known_hosts.clone();
    let ca = creds.ca_cert.clone();
    let port = ssh_port(url);
    callbacks.certificate_check(move |cert, host| {
        if let Some(hostkey) = cert.as_hostkey() {
            let Some(known_hosts) = &known_hosts else {
                return Err(git2::Error::from_str(
                    "SSH needs 'known_hosts' in spec.git.secretRef; refusing an unverified host key",
                ));
            };
            let key = hostkey.hostkey().ok_or_else(|| {
                git2::Error::from_str("the SSH host key could not be read; refusing to connect")
            })?;
            return match check_known_hosts(known_hosts, host, port, key) {
                HostKeyCheck::Match => Ok(CertificateCheckStatus::CertificateOk),
                HostKeyCheck::Revoked => Err(git2::Error::from_str(&format!(
                    "host key verification failed: the key of {} is revoked in known_hosts",
                    host_pattern(host, port)
                ))),
                HostKeyCheck::NoMatch => Err(git2::Error::from_str(&format!(
                    "host key verification failed: no known_hosts entry for {} matches its key",
                    host_pattern(host, port)
                ))),
            };
        }
        if let Some(x509) = cert.as_x509() {
            if let Some(ca) = &ca {
                return verify_tls(ca, x509.data(), host)
                    .map(|()| CertificateCheckStatus::CertificateOk)
                    .map_err(|e| {
                        git2::Error::from_str(&format!(
                            "TLS certificate of {host} is not trusted by ca.crt: {e}"
                        ))
                    });
            }
        }
        Ok(CertificateCheckStatus::CertificatePassthrough)
    });
    callbacks
}

/// `FetchOptions` for `url` with `creds` (callbacks and headers), nothing else set.
pub fn fetch_options(creds: &GitCredentials, url: &str) -> git2::FetchOptions<'static> {
    let mut options = git2::FetchOptions::new();
    options.remote_callbacks(remote_callbacks(creds, url));
    let headers = creds.http_headers();
    if !headers.is_empty() {
        let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
        options.custom_headers(&headers);
    }
    options
}

/// The SSH port of a URL: explicit in `ssh://host:port/...`, else 22.
pub(crate) fn ssh_port(url: &str) -> u16 {
    let Some(rest) = url
        .strip_prefix("ssh://")
        .or_else(|| url.strip_prefix("git+ssh://"))
        .or_else(|| url.strip_prefix("ssh+git://"))
    else {
        return 22;
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let port = if let Some(after) = host_port.strip_prefix('[') {
        after.split_once("]:").map(|(_, p)| p)
    } else {
        host_port.rsplit_once(':').map(|(_, p)| p)
    };
    port.and_then(|p| p.parse().ok()).unwrap_or(22)
}

/// How `host` is written in known_hosts: `host`, or `[host]:port` off port 22.
fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Outcome of looking a host key up in known_hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// An entry for the host has exactly this key.
    Match,
    /// No entry for the host has this key.
    NoMatch,
    /// The key is marked `@revoked`.
    Revoked,
}

/// Looks up `key` (the SSH wire-format public key blob) for `host:port` in the
/// text of a known_hosts file. Supports comma-separated patterns, `*`/`?`
/// wildcards, `!` negation, `[host]:port`, hashed (`|1|salt|hash`) names and the
/// `@revoked` marker; `@cert-authority` lines are ignored.
pub fn check_known_hosts(known_hosts: &str, host: &str, port: u16, key: &[u8]) -> HostKeyCheck {
    let name = host_pattern(host, port);
    let mut matched = false;
    for line in known_hosts.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or_default();
        let mut revoked = false;
        if first.starts_with('@') {
            match first {
                "@revoked" => revoked = true,
                _ => continue, // @cert-authority: host certificates are not supported
            }
            first = fields.next().unwrap_or_default();
        }
        let (Some(_key_type), Some(blob)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(blob) = base64::engine::general_purpose::STANDARD.decode(blob) else {
            continue;
        };
        if !hosts_match(first, &name) || blob != key {
            continue;
        }
        if revoked {
            return HostKeyCheck::Revoked;
        }
        matched = true;
    }
    if matched {
        HostKeyCheck::Match
    } else {
        HostKeyCheck::NoMatch
    }
}

/// Whether the host field of a known_hosts line matches `name` (`host` or `[host]:port`).
fn hosts_match(field: &str, name: &str) -> bool {
    if let Some(hashed) = field.strip_prefix("|1|") {
        return hashed_match(hashed, name);
    }
    let mut positive = false;
    for pattern in field.split(',') {
        if let Some(negated) = pattern.strip_prefix('!') {
            if glob(&negated.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
                return false;
            }
        } else if glob(&pattern.to_ascii_lowercase(), &name.to_ascii_lowercase()) {
            positive = true;
        }
    }
    positive
}

fn hashed_match(salt_and_hash: &str, name: &str) -> bool {
    let engine = base64::engine::general_purpose::STANDARD;
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (engine.decode(salt), engine.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// OpenSSH pattern matching: `*` any run, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn parse_ca(pem: &[u8]) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())
}

/// Verifies a server's leaf certificate (DER) for `host` against the CA certificates in `ca_pem`.
fn verify_tls(ca_pem: &[u8], leaf: &[u8], host: &str) -> Result<(), String> {
    let cas = parse_ca(ca_pem)?;
    let anchors = cas
        .iter()
        .map(|c| webpki::anchor_from_trusted_cert(c).map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let leaf = rustls_pki_types::CertificateDer::from(leaf.to_vec());
    let cert = webpki::EndEntityCert::try_from(&leaf).map_err(|e| e.to_string())?;
    cert.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &[],
        rustls_pki_types::UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map_err(|e| e.to_string())?;
    let name = rustls_pki_types::ServerName::try_from(host).map_err(|e| e.to_string())?;
    cert.verify_is_valid_for_subject_name(&name)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_B64: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    fn key() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(KEY_B64)
            .unwrap()
    }

    #[test]
    fn matches_plain_and_bracketed_hosts() {
        let kh =
            format!("github.com ssh-ed25519 {KEY_B64}\n[127.0.0.1]:2222 ssh-ed25519 {KEY_B64}\n");
        assert_eq!(
            check_known_hosts(&kh, "github.com", 22, &key()),
            HostKeyCheck::Match
        );
        assert_eq!(
            check_known_hosts(&kh, "127.0.0.1", 2222, &key()),
            HostKeyCheck::Match
        );
        assert_eq!(
            check_known_hosts(&kh, "127.0.0.1", 22, &key()),
            HostKeyCheck::NoMatch
        );
        assert_eq!(
            check_known_hosts(&kh, "127.0.0.1", 2223, &key()),
            HostKeyCheck::NoMatch
        );
        let mut other = key();
        *other.last_mut().unwrap() ^= 1;
        assert_eq!(
            check_known_hosts(&kh, "github.com", 22, &other),
            HostKeyCheck::NoMatch
        );
    }

    #[test]
    fn patterns_negation_comments_and_revocation() {
        let kh = format!(
            "# comment\n\n*.example.com,!bad.example.com ssh-ed25519 {KEY_B64}\n@cert-authority * ssh-ed25519 {KEY_B64}\n"
        );
        assert_eq!(
            check_known_hosts(&kh, "git.example.com", 22, &key()),
            HostKeyCheck::Match
        );
        assert_eq!(
            check_known_hosts(&kh, "bad.example.com", 22, &key()),
            HostKeyCheck::NoMatch
        );
        assert_eq!(
            check_known_hosts(&kh, "other.org", 22, &key()),
            HostKeyCheck::NoMatch
        );
        let revoked = format!("{kh}@revoked git.example.com ssh-ed25519 {KEY_B64}\n");
        assert_eq!(
            check_known_hosts(&revoked, "git.example.com", 22, &key()),
            HostKeyCheck::Revoked
        );
    }

    #[test]
    fn hashed_entries() {
        // `ssh-keygen -H` format: |1|base64(salt)|base64(HMAC-SHA1(salt, name)).
        let salt = b"0123456789abcdefghij";
        let mut mac = Hmac::<Sha1>::new_from_slice(salt).unwrap();
        mac.update(b"[127.0.0.1]:2222");
        let engine = base64::engine::general_purpose::STANDARD;
        let field = format!(
            "|1|{}|{}",
            engine.encode(salt),
            engine.encode(mac.finalize().into_bytes())
        );
        let kh = format!("{field} ssh-ed25519 {KEY_B64}\n");
        assert_eq!(
            check_known_hosts(&kh, "127.0.0.1", 2222, &key()),
            HostKeyCheck::Match
        );
        assert_eq!(
            check_known_hosts(&kh, "127.0.0.1", 22, &key()),
            HostKeyCheck::NoMatch
        );
    }

    #[test]
    fn globbing() {
        assert!(glob("*", "anything"));
        assert!(glob("10.0.0.?", "10.0.0.7"));
        assert!(!glob("10.0.0.?", "10.0.0.17"));
        assert!(glob("*.example.com", "a.b.example.com"));
        assert!(!glob("*.example.com", "example.com"));
    }

    #[test]
    fn ssh_ports() {
        assert_eq!(ssh_port("ssh://git@127.0.0.1:2222/srv/repo.git"), 2222);
        assert_eq!(ssh_port("ssh://git@host/srv/repo.git"), 22);
        assert_eq!(ssh_port("ssh://git@[::1]:2200/r"), 2200);
        assert_eq!(ssh_port("git@github.com:acme/deploy.git"), 22);
    }

    #[test]
    fn debug_redacts_and_errors_name_keys_only() {
        let data: BTreeMap<String, Vec<u8>> = [
            ("username".to_string(), b"bob".to_vec()),
            ("password".to_string(), b"hunter2-secret".to_vec()),
            ("bearerToken".to_string(), b"tok-XYZ".to_vec()),
        ]
        .into();
        let creds = GitCredentials::from_secret_data(&data).unwrap();
        let debug = format!("{creds:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("tok-XYZ") && !debug.contains("bob"));
        assert_eq!(creds.http_headers(), vec!["Authorization: Bearer tok-XYZ"]);
        assert_eq!(creds.scrub("denied for hunter2-secret"), "denied for ***");

        let no_kh: BTreeMap<String, Vec<u8>> = [(
            "identity".to_string(),
            b"-----BEGIN OPENSSH PRIVATE KEY-----".to_vec(),
        )]
        .into();
        let err = GitCredentials::from_secret_data(&no_kh)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("known_hosts") && !err.contains("BEGIN"),
            "{err}"
        );
        let no_user: BTreeMap<String, Vec<u8>> =
            [("password".to_string(), b"pw-value".to_vec())].into();
        let err = GitCredentials::from_secret_data(&no_user)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("pw-value"), "{err}");
    }
}
