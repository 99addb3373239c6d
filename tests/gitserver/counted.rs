//! Smart HTTP (`git http-backend` behind lighttpd), with an access log: what
//! the fleet tests and benchmark count git requests from. Anonymous over HTTP
//! ([`CountedHttp::start`]), or HTTPS with basic auth
//! ([`CountedHttp::start_tls_basic`]).

use std::path::Path;

use super::{free_port, lighttpd, Server, TestCa, HTTP_PASSWORD, HTTP_USER};

/// A smart-HTTP server for the repositories under a root, logging every request.
pub struct CountedHttp {
    pub server: Server,
    /// `https` or `http`.
    scheme: &'static str,
    /// The test CA's keys and certificates (HTTPS only), kept for the server's lifetime.
    _pki: Option<tempfile::TempDir>,
}

/// Git requests to one repository, from the access log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GitRequests {
    /// `GET info/refs?service=git-upload-pack`: a ref advertisement (every
    /// poll starts with one; a fetch makes its own).
    pub advertisements: usize,
    /// `POST git-upload-pack`: a negotiation that may send a pack.
    pub fetches: usize,
    /// Requests answered 401 (basic auth asked for): a client that does not
    /// send its credentials up front makes one before each of the above.
    /// Not counted in them.
    pub challenged: usize,
}

impl std::ops::Sub for GitRequests {
    type Output = GitRequests;
    fn sub(self, before: GitRequests) -> GitRequests {
        GitRequests {
            advertisements: self.advertisements - before.advertisements,
            fetches: self.fetches - before.fetches,
            challenged: self.challenged - before.challenged,
        }
    }
}

impl CountedHttp {
    /// Anonymous, over plain HTTP.
    pub fn start(root: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = Self::config(dir.path(), port, root, "");
        CountedHttp {
            server: lighttpd(dir, port, &config),
            scheme: "http",
            _pki: None,
        }
    }

    /// HTTPS (a certificate for 127.0.0.1 from a fresh test CA) with basic
    /// auth as [`HTTP_USER`] / [`HTTP_PASSWORD`] under `/git/`; the server
    /// and the CA certificate (PEM) that clients must trust (a git Secret's
    /// `ca.crt`).
    pub fn start_tls_basic(root: &Path) -> (Self, String) {
        let pki = tempfile::tempdir().unwrap();
        let ca = TestCa::generate(pki.path());
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("users"),
            format!("{HTTP_USER}:{HTTP_PASSWORD}\n"),
        )
        .unwrap();
        let extra = format!(
            r#"server.modules += ("mod_auth", "mod_authn_file", "mod_openssl")
ssl.engine = "enable"
ssl.pemfile = "{cert}"
ssl.privkey = "{key}"
auth.backend = "plain"
auth.backend.plain.userfile = "{d}/users"
$HTTP["url"] =~ "^/git/" {{
  auth.require = ("" => ("method" => "basic", "realm" => "git", "require" => "valid-user"))
}}
"#,
            cert = ca.server_cert.display(),
            key = ca.server_key.display(),
        );
        let config = Self::config(dir.path(), port, root, &extra);
        let server = CountedHttp {
            server: lighttpd(dir, port, &config),
            scheme: "https",
            _pki: Some(pki),
        };
        (server, ca.ca_pem)
    }

    fn config(dir: &Path, port: u16, root: &Path, extra: &str) -> String {
        let d = dir.display();
        std::fs::create_dir(dir.join("www")).unwrap();
        format!(
            r#"server.modules = ("mod_access", "mod_alias", "mod_setenv", "mod_cgi", "mod_accesslog")
server.document-root = "{d}/www"
server.port = {port}
server.bind = "127.0.0.1"
server.pid-file = "{d}/lighttpd.pid"
server.errorlog = "{d}/error.log"
server.max-connections = 1024
accesslog.filename = "{d}/access.log"
alias.url = ("/git/" => "/usr/lib/git-core/git-http-backend/")
$HTTP["url"] =~ "^/git/" {{
  cgi.assign = ("" => "")
  setenv.set-environment = ("GIT_PROJECT_ROOT" => "{root}", "GIT_HTTP_EXPORT_ALL" => "1")
}}
{extra}"#,
            root = root.display()
        )
    }

    /// `http[s]://127.0.0.1:PORT/git/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!(
            "{}://127.0.0.1:{}/git/{name}",
            self.scheme, self.server.port
        )
    }

    /// The requests made so far to repository `name` (every repository: `""`).
    pub fn requests(&self, name: &str) -> GitRequests {
        let log = std::fs::read_to_string(self.server.dir().join("access.log")).unwrap_or_default();
        let prefix = if name.is_empty() {
            "/git/".to_string()
        } else {
            format!("/git/{name}/")
        };
        let mut counted = GitRequests::default();
        for line in log.lines() {
            let mut quoted = line.split('"');
            let Some(request) = quoted.nth(1) else {
                continue;
            };
            let status = quoted.next().unwrap_or("").split_whitespace().next();
            let mut parts = request.split(' ');
            let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
                continue;
            };
            if !path.starts_with(&prefix) {
                continue;
            }
            if status == Some("401") {
                counted.challenged += 1;
            } else if method == "GET" && path.ends_with("/info/refs?service=git-upload-pack") {
                counted.advertisements += 1;
            } else if method == "POST" && path.ends_with("/git-upload-pack") {
                counted.fetches += 1;
            }
        }
        counted
    }
}
