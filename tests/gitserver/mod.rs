//! Git repositories for the tests ([`GitRepo`]), and real git servers on
//! loopback to serve them: `sshd` (its own config, host key and
//! authorized_keys), lighttpd in front of `git http-backend` with basic auth
//! (and a bearer-token location), and `git daemon`. Each server is a child
//! process killed when its handle is dropped. Installed by
//! `tests/git/install.sh` (run by `tests/run.sh`).
#![allow(dead_code)]

pub mod counted;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user sshd lets in (created by `tests/git/install.sh`).
pub const SSH_USER: &str = "kmgit";
/// Basic-auth user and password of the HTTP server.
pub const HTTP_USER: &str = "ada";
pub const HTTP_PASSWORD: &str = "correct-horse-battery";
/// Bearer token accepted under `/bearer/`.
pub const BEARER_TOKEN: &str = "tok-0123456789abcdef";

/// A git repository on disk, changed with the real `git` command: reached as
/// a `file://` URL, or served by the servers below (they serve non-bare
/// repositories too).
///
/// ```ignore
/// let repo = GitRepo::new();
/// let sha = repo.write(&[("deploy/cm.yaml", "...")]).commit("add cm");
/// let sha2 = repo.remove(&["deploy/cm.yaml"]).commit("drop cm");
/// ```
pub struct GitRepo {
    dir: tempfile::TempDir,
    work: PathBuf,
    gnupg_home: Option<PathBuf>,
}

impl GitRepo {
    /// An empty repository with branch `main`, readable by the sshd user.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        chmod(dir.path(), 0o755);
        let work = dir.path().join("work");
        std::fs::create_dir(&work).unwrap();
        let repo = GitRepo {
            dir,
            work,
            gnupg_home: None,
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "Ada Lovelace"]);
        repo.git(&["config", "user.email", "ada@example.com"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo
    }

    /// The repository directory (non-bare), named `work`.
    pub fn path(&self) -> &Path {
        &self.work
    }

    /// The directory holding the repository (what servers serve as the
    /// project root).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// A `file://` URL of the repository.
    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    /// Uses this GnuPG home for `gpg` signing.
    pub fn set_gnupg_home(&mut self, home: &Path) {
        self.gnupg_home = Some(home.to_path_buf());
    }

    fn command(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = Command::new("git");
        cmd.args(args)
            .current_dir(self.path())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("HOME", self.root());
        if let Some(home) = &self.gnupg_home {
            cmd.env("GNUPGHOME", home);
        }
        cmd.output().expect("running git")
    }

    /// Runs git in the repository; returns trimmed stdout; panics on failure.
    pub fn git(&self, args: &[&str]) -> String {
        let out = self.command(args);
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs git in the repository; trimmed stdout, or `None` when git fails.
    pub fn git_opt(&self, args: &[&str]) -> Option<String> {
        let out = self.command(args);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Writes `files` (path, content) over the work tree, creating
    /// directories; [`GitRepo::commit`] commits them.
    pub fn write<P: AsRef<str>, C: AsRef<str>>(&self, files: &[(P, C)]) -> &Self {
        for (file, content) in files {
            let path = self.path().join(file.as_ref());
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content.as_ref()).unwrap();
        }
        self
    }

    /// Removes `files` from the work tree; [`GitRepo::commit`] commits that.
    pub fn remove(&self, files: &[&str]) -> &Self {
        for file in files {
            std::fs::remove_file(self.path().join(file)).unwrap();
        }
        self
    }

    /// Commits the whole work tree as it is (an empty commit when nothing
    /// changed); returns the sha.
    pub fn commit(&self, message: &str) -> String {
        self.commit_with(message, &[])
    }

    /// Like [`GitRepo::commit`], with extra `git commit` flags (`-S` to sign).
    pub fn commit_with(&self, message: &str, flags: &[&str]) -> String {
        self.git(&["add", "-A"]);
        let mut args = vec!["commit", "-q", "--allow-empty", "-m", message];
        args.extend_from_slice(flags);
        self.git(&args);
        self.git(&["rev-parse", "HEAD"])
    }

    /// Lets clients push: to the checked-out branch (its work tree follows), and
    /// over SSH as [`SSH_USER`] (the repository becomes writable by everyone).
    pub fn allow_push(&self) {
        self.git(&["config", "receive.denyCurrentBranch", "updateInstead"]);
        self.git(&["config", "core.sharedRepository", "0777"]);
        let out = Command::new("chmod")
            .args(["-R", "a+rwX"])
            .arg(self.path())
            .output()
            .expect("chmod");
        assert!(out.status.success());
    }
}

impl Default for GitRepo {
    fn default() -> Self {
        Self::new()
    }
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early with {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 15 s");
}

/// A server process, killed on drop.
pub struct Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// The server's scratch directory (config, keys, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn ssh_keygen(path: &Path, comment: &str) -> String {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(format!("{}.pub", path.display())).unwrap()
}

/// `sshd` on loopback with its own host key, letting in [`SSH_USER`] with a fresh client key.
pub struct SshServer {
    pub server: Server,
    /// The client's private key (OpenSSH format).
    pub identity: String,
    /// `[127.0.0.1]:PORT ssh-ed25519 KEY`.
    pub known_hosts: String,
}

impl SshServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        chmod(dir.path(), 0o755);
        let port = free_port();
        let host_pub = ssh_keygen(&dir.path().join("host_ed25519"), "host");
        let client_pub = ssh_keygen(&dir.path().join("client.key"), "client");
        std::fs::write(dir.path().join("authorized_keys"), &client_pub).unwrap();
        chmod(&dir.path().join("authorized_keys"), 0o644);
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nStrictModes no\nAllowUsers {SSH_USER}\nLogLevel ERROR\n",
            d = dir.path().display()
        );
        std::fs::write(dir.path().join("sshd_config"), config).unwrap();
        std::fs::create_dir_all("/run/sshd").ok();
        let log = std::fs::File::create(dir.path().join("sshd.log")).unwrap();
        let mut child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.path().join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting sshd (run tests/git/install.sh)");
        wait_listening(port, &mut child, "sshd");
        let mut fields = host_pub.split_whitespace();
        let known_hosts = format!(
            "[127.0.0.1]:{port} {} {}\n",
            fields.next().unwrap(),
            fields.next().unwrap()
        );
        let identity = std::fs::read_to_string(dir.path().join("client.key")).unwrap();
        SshServer {
            server: Server { child, port, dir },
            identity,
            known_hosts,
        }
    }

    /// `ssh://kmgit@127.0.0.1:PORT/abs/path`.
    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{SSH_USER}@127.0.0.1:{}{}",
            self.server.port,
            repo.display()
        )
    }

    /// A known_hosts line with some other host key for the same host.
    pub fn wrong_known_hosts(&self) -> String {
        let other = ssh_keygen(&self.server.dir().join("other_host"), "other");
        let mut fields = other.split_whitespace();
        format!(
            "[127.0.0.1]:{} {} {}\n",
            self.server.port,
            fields.next().unwrap(),
            fields.next().unwrap()
        )
    }
}

/// lighttpd serving `git http-backend` for the repositories under `root`:
/// `/git/<name>` with basic auth, `/bearer/<name>` with a bearer token.
pub struct HttpServer {
    pub server: Server,
    /// Keys and certificates of a TLS server, kept for its lifetime.
    tls: Option<tempfile::TempDir>,
}

/// A test certificate authority and a server certificate for 127.0.0.1, made with `openssl`.
struct TestCa {
    ca_pem: String,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl TestCa {
    fn generate(dir: &Path) -> Self {
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("running openssl (tests/git/install.sh installs it)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=kubemint test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ]);
        TestCa {
            ca_pem: std::fs::read_to_string(dir.join("ca.crt")).unwrap(),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        }
    }
}

impl HttpServer {
    /// Plain HTTP.
    pub fn start(root: &Path) -> Self {
        Self::start_with(root, "")
    }

    /// HTTPS with a certificate for 127.0.0.1 signed by a fresh test CA; returns
    /// the server and the CA certificate (PEM) that clients must trust.
    pub fn start_tls(root: &Path) -> (Self, String) {
        let pki = tempfile::tempdir().unwrap();
        let ca = TestCa::generate(pki.path());
        let tls = format!(
            r#"server.modules += ("mod_openssl")
ssl.engine = "enable"
ssl.pemfile = "{}"
ssl.privkey = "{}"
"#,
            ca.server_cert.display(),
            ca.server_key.display()
        );
        let mut server = Self::start_with(root, &tls);
        server.tls = Some(pki);
        (server, ca.ca_pem)
    }

    fn start_with(root: &Path, extra_config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        std::fs::create_dir(dir.path().join("www")).unwrap();
        std::fs::write(
            dir.path().join("users"),
            format!("{HTTP_USER}:{HTTP_PASSWORD}\n"),
        )
        .unwrap();
        let config = format!(
            r#"server.modules = ("mod_access", "mod_alias", "mod_setenv", "mod_auth", "mod_authn_file", "mod_cgi")
server.document-root = "{d}/www"
server.port = {port}
server.bind = "127.0.0.1"
server.pid-file = "{d}/lighttpd.pid"
server.errorlog = "{d}/error.log"
auth.backend = "plain"
auth.backend.plain.userfile = "{d}/users"
alias.url = ("/git/" => "/usr/lib/git-core/git-http-backend/", "/bearer/" => "/usr/lib/git-core/git-http-backend/")
$HTTP["url"] =~ "^/(git|bearer)/" {{
  cgi.assign = ("" => "")
  setenv.set-environment = ("GIT_PROJECT_ROOT" => "{root}", "GIT_HTTP_EXPORT_ALL" => "1")
}}
$HTTP["url"] =~ "^/git/" {{
  auth.require = ("" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
}}
$HTTP["url"] =~ "^/bearer/" {{
  $REQUEST_HEADER["Authorization"] != "Bearer {BEARER_TOKEN}" {{
    url.access-deny = ("")
  }}
}}
{extra_config}"#,
            root = root.display()
        );
        HttpServer {
            server: lighttpd(dir, port, &config),
            tls: None,
        }
    }

    /// `https://127.0.0.1:PORT/git/<name>` (for a server from [`HttpServer::start_tls`]).
    pub fn https_url(&self, name: &str) -> String {
        format!("https://127.0.0.1:{}/git/{name}", self.server.port)
    }

    /// `http://[user:password@]127.0.0.1:PORT/git/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/git/{name}", self.server.port)
    }

    /// `http://127.0.0.1:PORT/bearer/<name>`.
    pub fn bearer_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/bearer/{name}", self.server.port)
    }
}

/// lighttpd with `config` (written into `dir`), listening on `port`.
fn lighttpd(dir: tempfile::TempDir, port: u16, config: &str) -> Server {
    std::fs::write(dir.path().join("lighttpd.conf"), config).unwrap();
    let mut child = Command::new("/usr/sbin/lighttpd")
        .args(["-D", "-f"])
        .arg(dir.path().join("lighttpd.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting lighttpd (run tests/git/install.sh)");
    wait_listening(port, &mut child, "lighttpd");
    Server { child, port, dir }
}

/// `git daemon` exporting every repository under `root`, unauthenticated.
pub struct GitDaemon {
    pub server: Server,
}

impl GitDaemon {
    pub fn start(root: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // Run git-daemon itself, not the `git daemon` wrapper: killing the wrapper
        // would leave the daemon behind.
        let exec_path = Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("git --exec-path");
        let exec_path = String::from_utf8_lossy(&exec_path.stdout)
            .trim()
            .to_string();
        let mut child = Command::new(Path::new(&exec_path).join("git-daemon"))
            .args([
                "--reuseaddr",
                "--export-all",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", root.display()),
            ])
            .arg(root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting git daemon");
        wait_listening(port, &mut child, "git daemon");
        GitDaemon {
            server: Server { child, port, dir },
        }
    }

    /// `git://127.0.0.1:PORT/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.server.port)
    }
}

/// A GnuPG home with one ed25519 signing key, no passphrase.
pub struct GpgKey {
    pub home: tempfile::TempDir,
    pub fingerprint: String,
    /// ASCII-armored public key.
    pub public: String,
}

impl GpgKey {
    pub fn generate(uid: &str) -> Self {
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
                .expect("gpg");
            assert!(
                out.status.success(),
                "gpg {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        gpg(&["--quick-gen-key", uid, "ed25519", "sign", "never"]);
        let listing = gpg(&["--with-colons", "--list-keys", uid]);
        let fingerprint = listing
            .lines()
            .find(|l| l.starts_with("fpr:"))
            .and_then(|l| l.split(':').nth(9))
            .unwrap()
            .to_string();
        let public = gpg(&["--armor", "--export", &fingerprint]);
        GpgKey {
            home,
            fingerprint,
            public,
        }
    }
}

/// An SSH signing key for `gpg.format ssh`.
pub struct SshSigningKey {
    dir: tempfile::TempDir,
    /// `ssh-ed25519 AAAA... comment`.
    pub public: String,
}

impl SshSigningKey {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let public = ssh_keygen(&dir.path().join("sign"), "signer");
        SshSigningKey { dir, public }
    }

    /// The private key file (what `user.signingkey` names).
    pub fn key_path(&self) -> PathBuf {
        self.dir.path().join("sign")
    }

    /// An allowed-signers line for `principal`.
    pub fn allowed_signers(&self, principal: &str) -> String {
        let mut f = self.public.split_whitespace();
        format!("{principal} {} {}\n", f.next().unwrap(), f.next().unwrap())
    }
}
