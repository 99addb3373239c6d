//! Which cache entry a fetch may use: one per remote URL *and* credentials
//! identity, so that a commit fetched with one tenant's credentials is never
//! served to a channel that could not have fetched it itself.
//!
//! An identity is a SHA-256 digest of the credentials' content: a canonical
//! encoding of the fields git uses (user, password, token, SSH key, known
//! hosts, CA), not where they were read from. Secrets in two namespaces that
//! hold the same credentials are one identity: either could fetch what the
//! other fetched, so they share cache entries and polls (see
//! [`super::polls`]); credentials that differ in any field are another
//! identity. Anonymous access is an identity of its own. The digest is kept in
//! memory only and never shown (`Debug` hides it). Entry
//! names are digests too, salted with a random key kept in the cache
//! directory: a name seen in a status message or a log tells nothing about
//! the credentials (no offline guessing of a weak password from it).

use std::fmt;
use std::io::{Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

/// Who fetched: anonymous, or the digest of a credentials Secret. `Debug`
/// never shows the digest.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct CredentialsIdentity(Option<[u8; 32]>);

impl fmt::Debug for CredentialsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            None => f.write_str("CredentialsIdentity(anonymous)"),
            Some(_) => f.write_str("CredentialsIdentity(<secret>)"),
        }
    }
}

impl CredentialsIdentity {
    /// No credentials.
    pub fn anonymous() -> Self {
        CredentialsIdentity(None)
    }

    /// The credentials made of `fields`: (name, value) pairs, `None` for a
    /// field that is not set. Callers pass every field git uses, always in the
    /// same order; the names are hashed too, so that a value moved to another
    /// field is other credentials.
    pub fn of_fields(fields: &[(&str, Option<&[u8]>)]) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"kubemint credentials v2\0");
        hash.update((fields.len() as u64).to_be_bytes());
        for (name, value) in fields {
            field(&mut hash, name.as_bytes());
            match value {
                None => hash.update([0]),
                Some(value) => {
                    hash.update([1]);
                    field(&mut hash, value);
                }
            }
        }
        CredentialsIdentity(Some(hash.finalize().into()))
    }

    /// Whether this is anonymous access.
    pub fn is_anonymous(&self) -> bool {
        self.0.is_none()
    }
}

/// Length-prefixed, so that no two different inputs hash the same bytes.
fn field(hash: &mut Sha256, bytes: &[u8]) {
    hash.update((bytes.len() as u64).to_be_bytes());
    hash.update(bytes);
}

/// The name of the cache entry of `url` fetched as `who`: hex SHA-256 of the
/// cache's `salt`, the URL (userinfo included: a token in the URL is a
/// credential too) and the identity.
pub fn entry_name(salt: &[u8; SALT_LEN], url: &str, who: &CredentialsIdentity) -> String {
    let mut hash = Sha256::new();
    hash.update(b"kubemint cache entry v1\0");
    hash.update(salt);
    field(&mut hash, url.as_bytes());
    match &who.0 {
        None => hash.update([0]),
        Some(digest) => {
            hash.update([1]);
            hash.update(digest);
        }
    }
    hex::encode(hash.finalize())
}

/// Length of the cache's salt, in bytes.
pub const SALT_LEN: usize = 32;

/// The salt of the cache under `root`: read from `root/salt`, or made (random)
/// and written there, readable by the owner only, on first use. Concurrent
/// first uses agree on one salt: the file appears whole or not at all.
pub fn load_or_create_salt(root: &Path) -> std::io::Result<[u8; SALT_LEN]> {
    let path = root.join("salt");
    match read_salt(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        other => return other,
    }
    std::fs::create_dir_all(root)?;
    let mut salt = [0u8; SALT_LEN];
    getrandom::getrandom(&mut salt).map_err(std::io::Error::other)?;
    // A temporary file is created 0600; linked into place only if none is there.
    let mut file = tempfile::NamedTempFile::new_in(root)?;
    file.write_all(&salt)?;
    file.as_file().sync_all()?;
    match file.persist_noclobber(&path) {
        Ok(_) => Ok(salt),
        Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => read_salt(&path),
        Err(e) => Err(e.error),
    }
}

fn read_salt(path: &Path) -> std::io::Result<[u8; SALT_LEN]> {
    let mut bytes = Vec::with_capacity(SALT_LEN);
    std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    bytes.try_into().map_err(|_| {
        std::io::Error::other(format!(
            "{} is not a {SALT_LEN}-byte cache salt; delete the cache directory's contents to start afresh",
            path.display()
        ))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::source::GitCredentials;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    /// The identity of the credentials Secret `namespace/name` holding `pairs`.
    fn of_secret(namespace: &str, name: &str, pairs: &[(&str, &str)]) -> CredentialsIdentity {
        GitCredentials::from_secret(namespace, name, &data(pairs))
            .unwrap()
            .cache_identity()
            .clone()
    }

    const SALT: [u8; SALT_LEN] = [7; SALT_LEN];
    const URL: &str = "https://git.example.com/acme/deploy.git";
    const BOT: &[(&str, &str)] = &[("username", "bot"), ("password", "hunter2")];

    #[test]
    fn the_same_url_with_other_credentials_is_another_entry() {
        let id_a = of_secret("team-a", "git", BOT);
        let entry = |who: &CredentialsIdentity| entry_name(&SALT, URL, who);
        // (what, other Secret, same entry and poll as team-a/git holding BOT?)
        let rows: Vec<(&str, CredentialsIdentity, bool)> = vec![
            (
                "same Secret, same content",
                of_secret("team-a", "git", BOT),
                true,
            ),
            (
                "same content in another namespace",
                of_secret("team-b", "git", BOT),
                true,
            ),
            (
                "same content, another name",
                of_secret("team-a", "git2", BOT),
                true,
            ),
            (
                "same fields plus keys git does not read",
                of_secret(
                    "team-c",
                    "git",
                    &[("username", "bot"), ("password", "hunter2"), ("note", "x")],
                ),
                true,
            ),
            (
                "another password, the same Secret name",
                of_secret(
                    "team-a",
                    "git",
                    &[("username", "bot"), ("password", "hunter3")],
                ),
                false,
            ),
            (
                "another user",
                of_secret(
                    "team-b",
                    "git",
                    &[("username", "bot2"), ("password", "hunter2")],
                ),
                false,
            ),
            (
                "the password as a bearer token",
                of_secret("team-b", "git", &[("bearerToken", "hunter2")]),
                false,
            ),
            ("anonymous", CredentialsIdentity::anonymous(), false),
            ("an empty Secret", of_secret("team-a", "empty", &[]), false),
        ];
        for (what, other, same) in rows {
            assert_eq!(entry(&id_a) == entry(&other), same, "{what}");
            assert_eq!(id_a == other, same, "{what}");
        }
        // Anonymous is an identity of its own, shared by every anonymous fetch.
        let anonymous = CredentialsIdentity::anonymous();
        assert!(anonymous.is_anonymous() && !id_a.is_anonymous());
        assert_eq!(entry(&anonymous), entry(&CredentialsIdentity::default()));
        // An empty Secret is still not anonymous.
        assert_ne!(entry(&of_secret("team-a", "empty", &[])), entry(&anonymous));
        // Another URL, or another cache's salt: another entry.
        assert_ne!(entry(&id_a), entry_name(&SALT, &format!("{URL}/"), &id_a));
        assert_ne!(entry(&id_a), entry_name(&[8; SALT_LEN], URL, &id_a));
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        // ("ab", "c") and ("a", "bc") must not be the same credentials.
        let one = CredentialsIdentity::of_fields(&[("ab", Some(b"c"))]);
        let two = CredentialsIdentity::of_fields(&[("a", Some(b"bc"))]);
        assert_ne!(one, two);
        // A field unset is not a field set to "".
        let unset = CredentialsIdentity::of_fields(&[("a", None), ("b", Some(b"x"))]);
        let empty = CredentialsIdentity::of_fields(&[("a", Some(b"")), ("b", Some(b"x"))]);
        assert_ne!(unset, empty);
        // Values are not interchangeable between fields.
        let swapped = CredentialsIdentity::of_fields(&[("a", Some(b"x")), ("b", None)]);
        assert_ne!(unset, swapped);
    }

    #[test]
    fn entry_names_and_debug_show_no_secret() {
        let who = of_secret("team-a", "git", BOT);
        let name = entry_name(&SALT, URL, &who);
        assert_eq!(name.len(), 64);
        assert!(name.chars().all(|c| c.is_ascii_hexdigit()), "{name}");
        assert!(!name.contains("hunter2"));
        assert_eq!(format!("{who:?}"), "CredentialsIdentity(<secret>)");
    }

    #[test]
    fn the_salt_is_made_once_and_kept() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cache");
        let salt = load_or_create_salt(&dir).unwrap();
        assert_eq!(load_or_create_salt(&dir).unwrap(), salt);
        let other = tempfile::tempdir().unwrap();
        assert_ne!(load_or_create_salt(other.path()).unwrap(), salt);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("salt"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
        std::fs::write(dir.join("salt"), b"short").unwrap();
        assert!(load_or_create_salt(&dir).is_err());
    }
}
