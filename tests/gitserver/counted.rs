//! Smart HTTP (`git http-backend` behind lighttpd), anonymous, with an access
//! log: what the fleet tests and benchmark count git requests from.

use std::path::Path;

use super::{free_port, lighttpd, Server};

/// An anonymous smart-HTTP server for the repositories under a root, logging every request.
pub struct CountedHttp {
    pub server: Server,
}

/// Git requests to one repository, from the access log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GitRequests {
    /// `GET info/refs?service=git-upload-pack`: a ref advertisement (every
    /// poll starts with one; a fetch makes its own).
    pub advertisements: usize,
    /// `POST git-upload-pack`: a negotiation that may send a pack.
    pub fetches: usize,
}

impl std::ops::Sub for GitRequests {
    type Output = GitRequests;
    fn sub(self, before: GitRequests) -> GitRequests {
        GitRequests {
            advertisements: self.advertisements - before.advertisements,
            fetches: self.fetches - before.fetches,
        }
    }
}

impl CountedHttp {
    pub fn start(root: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let d = dir.path().display();
        std::fs::create_dir(dir.path().join("www")).unwrap();
        let config = format!(
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
"#,
            root = root.display()
        );
        CountedHttp {
            server: lighttpd(dir, port, &config),
        }
    }

    /// `http://127.0.0.1:PORT/git/<name>`.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/git/{name}", self.server.port)
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
            let Some(request) = line.split('"').nth(1) else {
                continue;
            };
            let mut parts = request.split(' ');
            let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
                continue;
            };
            if !path.starts_with(&prefix) {
                continue;
            }
            if method == "GET" && path.ends_with("/info/refs?service=git-upload-pack") {
                counted.advertisements += 1;
            } else if method == "POST" && path.ends_with("/git-upload-pack") {
                counted.fetches += 1;
            }
        }
        counted
    }
}
