//! Which cache entry a fetch may use: one per remote URL *and* credentials
//! identity, so that a commit fetched with one tenant's credentials is never
//! served to a channel that could not have fetched it itself.
//!
//! An identity is the credentials Secret's namespace, name and a SHA-256
//! digest of its content (anonymous access is an identity of its own). Entry
//! names are digests too, salted with a random key kept in the cache
//! directory: a name seen in a status message or a log tells nothing about
//! the credentials (no offline guessing of a weak password from it).
//!
//! Polls are shared more widely than entries: by a digest of the credentials'
//! content alone ([`CredentialsIdentity::of_fields`], the fields git uses, not
//! the Secret's name), so that Secrets in ten namespaces holding the same user
//! and password make one poll (see [`super::polls`]); a commit such a poll
//! fetched is read from the entry it was fetched into, by content-equal
//! credentials only (see [`super::cache`]).

use std::collections::BTreeMap;
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

    /// The Secret `namespace/name` holding `data` (every key and value counts).
    /// Credentials that come from no Secret (the CLI's environment) pass `""`
    /// for both: their content alone tells them apart.
    pub fn of_secret(namespace: &str, name: &str, data: &BTreeMap<String, Vec<u8>>) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"kubemint credentials v1\0");
        for part in [namespace.as_bytes(), name.as_bytes()] {
            field(&mut hash, part);
        }
        hash.update((data.len() as u64).to_be_bytes());
        for (key, value) in data {
            field(&mut hash, key.as_bytes());
            field(&mut hash, value);
        }
        CredentialsIdentity(Some(hash.finalize().into()))
    }

    /// The credentials made of `fields`: (name, value) pairs, `None` for a
    /// field that is not set. Callers pass every field git uses, always in the
    /// same order; the names are hashed too, so that a value moved to another
    /// field is other credentials. Where they were read from does not count.
    pub fn of_fields(fields: &[(&str, Option<&[u8]>)]) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"kubemint credential content v1\0");
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
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    const SALT: [u8; SALT_LEN] = [7; SALT_LEN];
    const URL: &str = "https://git.example.com/acme/deploy.git";

    #[test]
    fn the_same_url_with_other_credentials_is_another_entry() {
        let a = data(&[("username", "bot"), ("password", "hunter2")]);
        let wrong = data(&[("username", "bot"), ("password", "hunter3")]);
        let id_a = CredentialsIdentity::of_secret("team-a", "git", &a);
        let entry = |who: &CredentialsIdentity| entry_name(&SALT, URL, who);

        // Same Secret, same content: the same entry (polls stay incremental).
        assert_eq!(
            entry(&id_a),
            entry(&CredentialsIdentity::of_secret("team-a", "git", &a.clone()))
        );
        // Different content, the same Secret name: another entry.
        assert_ne!(
            entry(&id_a),
            entry(&CredentialsIdentity::of_secret("team-a", "git", &wrong))
        );
        // The same content in another namespace or under another name: another entry.
        assert_ne!(
            entry(&id_a),
            entry(&CredentialsIdentity::of_secret("team-b", "git", &a))
        );
        assert_ne!(
            entry(&id_a),
            entry(&CredentialsIdentity::of_secret("team-a", "git2", &a))
        );
        // Anonymous is an identity of its own, shared by every anonymous fetch.
        let anonymous = CredentialsIdentity::anonymous();
        assert!(anonymous.is_anonymous() && !id_a.is_anonymous());
        assert_ne!(entry(&id_a), entry(&anonymous));
        assert_eq!(entry(&anonymous), entry(&CredentialsIdentity::default()));
        // An empty Secret is still not anonymous.
        assert_ne!(
            entry(&CredentialsIdentity::of_secret(
                "team-a",
                "empty",
                &data(&[])
            )),
            entry(&anonymous)
        );
        // Another URL, or another cache's salt: another entry.
        assert_ne!(entry(&id_a), entry_name(&SALT, &format!("{URL}/"), &id_a));
        assert_ne!(entry(&id_a), entry_name(&[8; SALT_LEN], URL, &id_a));
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        // ("ab", "c") and ("a", "bc") must not be the same Secret.
        let one = CredentialsIdentity::of_secret("ns", "n", &data(&[("ab", "c")]));
        let two = CredentialsIdentity::of_secret("ns", "n", &data(&[("a", "bc")]));
        assert_ne!(one, two);
        let three = CredentialsIdentity::of_secret("nsn", "", &data(&[("ab", "c")]));
        assert_ne!(one, three);
    }

    #[test]
    fn field_contents_cannot_run_into_each_other() {
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
        assert_eq!(
            unset,
            CredentialsIdentity::of_fields(&[("a", None), ("b", Some(b"x"))])
        );
    }

    #[test]
    fn entry_names_and_debug_show_no_secret() {
        let secret = data(&[("password", "hunter2")]);
        let who = CredentialsIdentity::of_secret("team-a", "git", &secret);
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
