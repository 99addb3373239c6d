//! A real forge for the tests: Gitea (the version of `tests/forge/gitea/go.mod`,
//! built and cached by `tests/forge/install.sh`) on loopback, with SQLite in a
//! directory of its own. `migrate`, `admin user create`, then `web`; the tests
//! create repositories, tokens and pull requests through its API and push
//! over its HTTP git.
//!
//! ```ignore
//! let gitea = support::Gitea::start().await;
//! gitea.create_repo("deploy").await;
//! let token = gitea.token("kubemint", &["write:repository", "write:issue"]).await;
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The administrator every Gitea of the tests has.
pub const GITEA_USER: &str = "kubemint";
const GITEA_PASSWORD: &str = "kubemint-test-password-1";

/// A running Gitea; stopped (and its directory removed) on drop.
pub struct Gitea {
    /// Its base URL, `http://127.0.0.1:<port>`.
    pub url: String,
    dir: tempfile::TempDir,
    child: Child,
    http: reqwest::Client,
}

impl Drop for Gitea {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Gitea binary and its module source (for `STATIC_ROOT_PATH`), installed if need be.
fn install() -> (PathBuf, PathBuf) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/forge/install.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("running tests/forge/install.sh");
    assert!(out.status.success(), "tests/forge/install.sh failed");
    let bin = PathBuf::from(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim(),
    );
    let source = std::fs::read_to_string(bin.with_file_name("source"))
        .expect("the install script records Gitea's source directory");
    (bin, PathBuf::from(source.trim()))
}

impl Gitea {
    /// Starts a fresh Gitea with one administrator ([`GITEA_USER`]).
    pub async fn start() -> Gitea {
        let (bin, source) = tokio::task::spawn_blocking(install).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let work = dir.path().display().to_string();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        let config = format!(
            "APP_NAME = kubemint-test\nRUN_MODE = prod\nRUN_USER = {user}\n\
             I_AM_BEING_UNSAFE_RUNNING_AS_ROOT = true\nWORK_PATH = {work}\n\n\
             [server]\nPROTOCOL = http\nHTTP_ADDR = 127.0.0.1\nHTTP_PORT = {port}\n\
             ROOT_URL = http://127.0.0.1:{port}/\nSTATIC_ROOT_PATH = {source}\n\
             APP_DATA_PATH = {work}/data\nDISABLE_SSH = true\nSTART_SSH_SERVER = false\n\
             OFFLINE_MODE = true\nLFS_START_SERVER = false\n\n\
             [database]\nDB_TYPE = sqlite3\nPATH = {work}/gitea.db\n\n\
             [repository]\nROOT = {work}/repos\n\n\
             [security]\nINSTALL_LOCK = true\nSECRET_KEY = kubemint-test-secret-key\n\
             PASSWORD_HASH_ALGO = pbkdf2_hi\n\n\
             [oauth2]\nENABLED = false\n\n[service]\nDISABLE_REGISTRATION = true\n\n\
             [mailer]\nENABLED = false\n\n[cron]\nENABLED = false\n\n\
             [indexer]\nISSUE_INDEXER_TYPE = db\nREPO_INDEXER_ENABLED = false\n\n\
             [log]\nMODE = file\nLEVEL = Warn\nROOT_PATH = {work}/log\nENABLE_ACCESS_LOG = true\nlogger.access.MODE = file_access\n\n\
             [log.file_access]\nMODE = file\nLEVEL = Info\nFILE_NAME = access.log\n\n\
             [webhook]\nALLOWED_HOST_LIST = loopback\n",
            source = source.display()
        );
        let ini = dir.path().join("app.ini");
        std::fs::write(&ini, config).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new(&bin)
                .arg("--config")
                .arg(&ini)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "gitea {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        run(&["migrate"]);
        run(&[
            "admin",
            "user",
            "create",
            "--username",
            GITEA_USER,
            "--password",
            GITEA_PASSWORD,
            "--email",
            "kubemint@example.test",
            "--admin",
            "--must-change-password=false",
        ]);
        let log = std::fs::File::create(dir.path().join("web.log")).unwrap();
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&ini)
            .arg("web")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let gitea = Gitea {
            url: format!("http://127.0.0.1:{port}"),
            dir,
            child,
            http: reqwest::Client::new(),
        };
        let health = format!("{}/api/healthz", gitea.url);
        super::wait_for(Duration::from_secs(60), || {
            let (http, health) = (&gitea.http, &health);
            async move {
                let r = http.get(health).send().await.ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await;
        gitea
    }

    /// Calls the API as the administrator (basic auth); panics on an error status.
    pub async fn api(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.url))
            .basic_auth(GITEA_USER, Some(GITEA_PASSWORD));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            status.is_success(),
            "gitea {method} {path}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Creates repository `name` of the administrator, empty, with `main` as its default branch.
    pub async fn create_repo(&self, name: &str) {
        self.api(
            reqwest::Method::POST,
            "/user/repos",
            Some(json!({"name": name, "default_branch": "main"})),
        )
        .await;
    }

    /// A new access token of the administrator with `scopes`.
    pub async fn token(&self, name: &str, scopes: &[&str]) -> String {
        let answer = self
            .api(
                reqwest::Method::POST,
                &format!("/users/{GITEA_USER}/tokens"),
                Some(json!({"name": name, "scopes": scopes})),
            )
            .await;
        answer["sha1"].as_str().unwrap().to_string()
    }

    /// The HTTP git URL of repository `name`, without credentials.
    pub fn git_url(&self, name: &str) -> String {
        format!("{}/{GITEA_USER}/{name}.git", self.url)
    }

    /// The git URL of repository `name` with the administrator's password, for pushes.
    pub fn push_url(&self, name: &str) -> String {
        format!(
            "http://{GITEA_USER}:{GITEA_PASSWORD}@{}/{GITEA_USER}/{name}.git",
            self.url.trim_start_matches("http://")
        )
    }

    /// Opens a pull request of `head` into `base`; returns its number. Gitea
    /// learns of a pushed branch asynchronously, so a "not found" is retried.
    pub async fn create_pull(&self, repo: &str, head: &str, base: &str, title: &str) -> u64 {
        let path = format!("{}/api/v1/repos/{GITEA_USER}/{repo}/pulls", self.url);
        let body = json!({"title": title, "head": head, "base": base});
        super::wait_for(Duration::from_secs(30), || {
            let (http, path, body) = (&self.http, &path, &body);
            async move {
                let r = http
                    .post(path)
                    .basic_auth(GITEA_USER, Some(GITEA_PASSWORD))
                    .json(body)
                    .send()
                    .await
                    .ok()?;
                if !r.status().is_success() {
                    return None;
                }
                r.json::<Value>().await.ok()?["number"].as_u64()
            }
        })
        .await
    }

    /// Merges pull request `number` (a merge commit); retried while Gitea
    /// still checks whether it can be merged after a push.
    pub async fn merge_pull(&self, repo: &str, number: u64) {
        let path = format!(
            "{}/api/v1/repos/{GITEA_USER}/{repo}/pulls/{number}/merge",
            self.url
        );
        super::wait_for(Duration::from_secs(30), || {
            let (http, path) = (&self.http, &path);
            async move {
                let r = http
                    .post(path)
                    .basic_auth(GITEA_USER, Some(GITEA_PASSWORD))
                    .json(&json!({"Do": "merge"}))
                    .send()
                    .await
                    .ok()?;
                r.status().is_success().then_some(())
            }
        })
        .await
    }

    /// The comments of pull request `number`: (id, body).
    pub async fn comments(&self, repo: &str, number: u64) -> Vec<(u64, String)> {
        let answer = self
            .api(
                reqwest::Method::GET,
                &format!("/repos/{GITEA_USER}/{repo}/issues/{number}/comments"),
                None,
            )
            .await;
        answer
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["id"].as_u64().unwrap(),
                    c["body"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// The statuses of commit `sha`, oldest first: (context, state, description, target URL).
    pub async fn statuses(&self, repo: &str, sha: &str) -> Vec<(String, String, String, String)> {
        let answer = self
            .api(
                reqwest::Method::GET,
                &format!("/repos/{GITEA_USER}/{repo}/commits/{sha}/statuses?limit=50"),
                None,
            )
            .await;
        let field = |s: &Value, k: &str| s[k].as_str().unwrap_or_default().to_string();
        let mut all = answer.as_array().unwrap().clone();
        all.sort_by_key(|s| s["id"].as_u64());
        all.iter()
            .map(|s| {
                (
                    field(s, "context"),
                    field(s, "status"),
                    field(s, "description"),
                    field(s, "target_url"),
                )
            })
            .collect()
    }

    /// Gitea's access log so far (one line per request).
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log/access.log")).unwrap_or_default()
    }
}
