//! The browser tests' two processes: `kubemint ui` under test, and
//! tests/ui/driver.js driving Debian's Chromium through playwright-core.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// `kubemint ui` reading with the test cluster's kubeconfig, killed when dropped.
pub struct UiProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl UiProcess {
    /// Starts `kubemint ui -n <namespace>` on a free port and waits for its URL.
    pub async fn start(kubeconfig: &Path, namespace: &str) -> UiProcess {
        Self::start_as(kubeconfig, namespace, None).await
    }

    /// Like [`UiProcess::start`], as a user whose git config (in `home`) names
    /// the author of reverts made in the UI.
    pub async fn start_as(kubeconfig: &Path, namespace: &str, home: Option<&Path>) -> UiProcess {
        Self::start_with(kubeconfig, namespace, home, &[]).await
    }

    /// Like [`UiProcess::start_as`], with `extra` arguments for `kubemint ui`.
    pub async fn start_with(
        kubeconfig: &Path,
        namespace: &str,
        home: Option<&Path>,
        extra: &[&str],
    ) -> UiProcess {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kubemint"));
        if let Some(home) = home {
            command.env("HOME", home);
        }
        let mut child = command
            .args(["ui", "--namespace", namespace, "--port", "0"])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting kubemint ui");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("kubemint ui printed no URL within 60s")
            .unwrap()
            .expect("kubemint ui exited");
        let url = line
            .strip_prefix("kubemint UI: ")
            .unwrap_or_else(|| panic!("unexpected first line: {line}"));
        let base = url.trim_end_matches("/ui/").to_string();
        assert!(base.starts_with("http://127.0.0.1:"), "{line}");
        UiProcess { child, base }
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Where screenshots go: `target/tmp/ui-screenshots` (the tests' output).
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots")
}

/// The Node driver of Chromium, one command at a time.
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    next: u64,
}

impl Browser {
    /// Starts tests/ui/driver.js (installed by tests/ui/install.sh).
    pub fn start() -> Browser {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
        assert!(
            dir.join("node_modules/playwright-core").is_dir(),
            "tests/ui/node_modules is missing: run bash tests/ui/install.sh (tests/run.sh does)"
        );
        let mut child = Command::new("node")
            .arg("driver.js")
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("starting node (run tests/ui/install.sh)");
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Browser {
            child,
            stdin,
            lines,
            next: 0,
        }
    }

    /// Sends `command` (an object with `op`) and returns its value, or the driver's error.
    pub async fn try_call(&mut self, mut command: Value) -> Result<Value, String> {
        self.next += 1;
        command["id"] = json!(self.next);
        let line = format!("{command}\n");
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(180), self.lines.next_line())
            .await
            .map_err(|_| format!("no answer to {command} within 180s"))?
            .unwrap()
            .ok_or("the driver exited")?;
        let reply: Value = serde_json::from_str(&reply).unwrap();
        if reply["ok"] == json!(true) {
            Ok(reply["value"].clone())
        } else {
            Err(reply["error"].as_str().unwrap_or_default().to_string())
        }
    }

    /// Like [`Browser::try_call`]; panics on an error, saying what the page showed.
    pub async fn call(&mut self, command: Value) -> Value {
        match self.try_call(command.clone()).await {
            Ok(v) => v,
            Err(e) => {
                let shot = screenshot_dir().join("failure.png");
                if let Some(name) = command["name"].as_str() {
                    let _ = self
                        .try_call(json!({"op": "screenshot", "name": name, "file": shot}))
                        .await;
                }
                panic!(
                    "browser: {command} failed (screenshot {}): {e}",
                    shot.display()
                )
            }
        }
    }

    /// Opens tab `name` at `url` (JavaScript on); returns the page's CSP header.
    pub async fn open(&mut self, name: &str, url: &str) -> String {
        let v = self
            .call(json!({"op": "open", "name": name, "url": url}))
            .await;
        assert_eq!(v["status"], 200, "{url}");
        v["csp"].as_str().unwrap_or_default().to_string()
    }

    /// Waits (without reloading) until an element matching `selector` contains `text`.
    pub async fn wait_text(&mut self, name: &str, selector: &str, text: &str) {
        self.call(json!({"op": "waitText", "name": name, "selector": selector, "text": text}))
            .await;
    }

    /// The page's HTML as the browser holds it now.
    pub async fn html(&mut self, name: &str) -> String {
        let v = self.call(json!({"op": "html", "name": name})).await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The text of every element matching `selector`.
    pub async fn texts(&mut self, name: &str, selector: &str) -> Vec<String> {
        let v = self
            .call(json!({"op": "texts", "name": name, "selector": selector}))
            .await;
        serde_json::from_value(v).unwrap()
    }

    /// How many elements match `selector`.
    pub async fn count(&mut self, name: &str, selector: &str) -> u64 {
        self.call(json!({"op": "count", "name": name, "selector": selector}))
            .await
            .as_u64()
            .unwrap()
    }

    /// How many times tab `name` navigated (1: opened and never reloaded).
    pub async fn navigations(&mut self, name: &str) -> u64 {
        self.call(json!({"op": "navigations", "name": name}))
            .await
            .as_u64()
            .unwrap()
    }

    /// axe-core's serious and critical violations on tab `name`.
    pub async fn axe(&mut self, name: &str) -> Vec<String> {
        serde_json::from_value(self.call(json!({"op": "axe", "name": name})).await).unwrap()
    }

    /// Dialogs (alert, confirm) any page opened: must stay empty.
    pub async fn dialogs(&mut self) -> Vec<String> {
        serde_json::from_value(self.call(json!({"op": "dialogs"})).await).unwrap()
    }

    /// Saves a full-page screenshot of tab `name` as `<file>.png` under [`screenshot_dir`].
    pub async fn screenshot(&mut self, name: &str, file: &str) -> PathBuf {
        let path = screenshot_dir().join(format!("{file}.png"));
        self.call(json!({"op": "screenshot", "name": name, "file": path}))
            .await;
        path
    }

    /// Closes the browser and the driver.
    pub async fn close(mut self) {
        let _ = self.try_call(json!({"op": "close"})).await;
        drop(self.stdin);
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}
