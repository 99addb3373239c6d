//! Which kustomize executable runs, and which version it is.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use super::process::{self, Limits};
use super::worker::WORKER_PROGRAM;

/// How long `version` may take: it reads no files, so this is generous.
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The kustomize command, as given with `--kustomize` / `KUBEMINT_KUSTOMIZE`:
/// `kustomize`, `/opt/bin/kustomize`, `kubectl kustomize`, or the render
/// worker `kubemint-render-worker` (see [`super::worker`]).
///
/// Run as `<program> [args] build <dir>` for kustomize itself and as
/// `kubectl [args] kustomize <dir>` for kubectl (whose program name is `kubectl`),
/// as Argo CD does with its `kustomize.path`. The worker (a program named
/// `kubemint-render-worker`) is started once and sent one build after another.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KustomizeCommand {
    /// The program and any leading arguments, as written.
    words: Vec<String>,
}

impl KustomizeCommand {
    /// Parses a command line (shell quoting allowed, no shell is run).
    pub fn parse(command: &str) -> Result<KustomizeCommand, String> {
        let words = shlex::split(command)
            .ok_or_else(|| format!("--kustomize {command:?}: unbalanced quotes"))?;
        if words.is_empty() {
            return Err(
                "--kustomize is empty; name a command such as `kustomize` or `kubectl kustomize`"
                    .into(),
            );
        }
        Ok(KustomizeCommand { words })
    }

    /// The default: the render worker `kubemint-render-worker` when it is on
    /// `PATH`; else, as the log then says once, `kustomize` when it is on
    /// `PATH`, else `kubectl kustomize` (kubectl has kustomize built in), one
    /// process per build. Looked up once per process.
    pub fn default_command() -> KustomizeCommand {
        static DEFAULT: OnceLock<KustomizeCommand> = OnceLock::new();
        DEFAULT
            .get_or_init(|| {
                if find_program(WORKER_PROGRAM).is_some() {
                    return KustomizeCommand {
                        words: vec![WORKER_PROGRAM.to_string()],
                    };
                }
                let fallback = Self::executable();
                tracing::info!(
                    kustomize = %fallback,
                    "the render worker {WORKER_PROGRAM} is not on PATH: kustomizations are built \
                     by `{fallback}`, one process per build (install it with \
                     tools/render-worker/install.sh, or name it with --kustomize)"
                );
                fallback
            })
            .clone()
    }

    /// The executable a build falls back to when no worker can start:
    /// `kustomize` when it is on `PATH`, else `kubectl kustomize`.
    pub(crate) fn executable() -> KustomizeCommand {
        static EXECUTABLE: OnceLock<KustomizeCommand> = OnceLock::new();
        EXECUTABLE
            .get_or_init(|| {
                let words = if find_program("kustomize").is_some() {
                    vec!["kustomize".to_string()]
                } else {
                    vec!["kubectl".to_string(), "kustomize".to_string()]
                };
                KustomizeCommand { words }
            })
            .clone()
    }

    /// Whether this is the render worker (a program named `kubemint-render-worker`).
    pub(crate) fn is_worker(&self) -> bool {
        Path::new(&self.words[0]).file_name() == Some(OsStr::new(WORKER_PROGRAM))
    }

    /// Whether this runs kustomize through kubectl.
    fn is_kubectl(&self) -> bool {
        Path::new(&self.words[0]).file_name() == Some(OsStr::new("kubectl"))
    }

    /// The executable, found on `PATH` when not given as a path. Resolved here so
    /// the build itself can run with an empty `PATH` (kustomize then cannot start
    /// `git` to fetch a remote base, whatever a kustomization says).
    pub(crate) fn program(&self) -> Result<PathBuf, String> {
        find_program(&self.words[0]).ok_or_else(|| {
            format!(
                "kustomize command `{self}` not found: install kustomize (or kubectl) in the \
                 operator's image, or name it with --kustomize / KUBEMINT_KUSTOMIZE"
            )
        })
    }

    /// Arguments that build `dir` (after the program).
    pub(crate) fn build_args(&self, dir: &Path) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = self.words[1..].iter().map(Into::into).collect();
        let sub = if self.is_kubectl() {
            "kustomize"
        } else {
            "build"
        };
        if !self.words[1..].iter().any(|w| w == sub) {
            args.push(sub.into());
        }
        // The default of every kustomize since v3, spelled out so the confinement
        // does not depend on the version: files only from inside each kustomization.
        args.push("--load-restrictor=LoadRestrictionsRootOnly".into());
        args.push(dir.into());
        args
    }

    /// The kustomize version, e.g. `v5.5.0`, asked once per command and process.
    /// `None` when the command does not say (or does not run: the build will then
    /// report why).
    pub fn version(&self) -> Option<String> {
        static VERSIONS: OnceLock<Mutex<HashMap<KustomizeCommand, Option<String>>>> =
            OnceLock::new();
        let cache = VERSIONS.get_or_init(Mutex::default);
        if let Some(known) = cache.lock().ok()?.get(self) {
            return known.clone();
        }
        let found = self.ask_version();
        if let Ok(mut cache) = cache.lock() {
            cache.insert(self.clone(), found.clone());
        }
        found
    }

    fn ask_version(&self) -> Option<String> {
        let program = self.program().ok()?;
        let args: Vec<std::ffi::OsString> = if self.is_kubectl() {
            ["version", "--client", "-o", "json"]
                .iter()
                .map(Into::into)
                .collect()
        } else {
            vec!["version".into()]
        };
        let home = tempfile::tempdir().ok()?;
        let limits = Limits {
            timeout: VERSION_TIMEOUT,
            max_output: 64 * 1024,
        };
        let out = process::run(&program, &args, home.path(), &limits).ok()?;
        let text = String::from_utf8_lossy(&out);
        if self.is_kubectl() {
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            json.get("kustomizeVersion")?.as_str().map(str::to_string)
        } else {
            parse_version(&text)
        }
    }
}

impl fmt::Display for KustomizeCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words.join(" "))
    }
}

/// The first `X.Y.Z` in what `kustomize version` prints, as `vX.Y.Z`. Versions
/// print `v5.5.0`, `{Version:kustomize/v4.5.7 GitCommit:...}` or
/// `Version: {KustomizeVersion:3.8.1 ...}` depending on their age.
fn parse_version(text: &str) -> Option<String> {
    static SEMVER: OnceLock<regex::Regex> = OnceLock::new();
    let re = SEMVER.get_or_init(|| {
        regex::Regex::new(r"v?(\d+\.\d+\.\d+[0-9A-Za-z.+-]*)").expect("valid regex")
    });
    re.captures(text).map(|c| format!("v{}", &c[1]))
}

/// `name` if it contains a `/`, else the first executable file named `name` on `PATH`.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let path = PathBuf::from(name);
        return executable(&path).then_some(path);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(command: &str) -> Vec<String> {
        KustomizeCommand::parse(command)
            .unwrap()
            .build_args(Path::new("/w/d"))
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn kustomize_builds_and_kubectl_runs_its_subcommand() {
        let restrict = "--load-restrictor=LoadRestrictionsRootOnly";
        assert_eq!(args("kustomize"), ["build", restrict, "/w/d"]);
        assert_eq!(args("/opt/kustomize build"), ["build", restrict, "/w/d"]);
        assert_eq!(args("kubectl kustomize"), ["kustomize", restrict, "/w/d"]);
        assert_eq!(args("/usr/bin/kubectl"), ["kustomize", restrict, "/w/d"]);
        assert_eq!(
            args("kubectl --v=0 kustomize"),
            ["--v=0", "kustomize", restrict, "/w/d"]
        );
        assert_eq!(
            args("kustomize build --enable-helm"),
            ["build", "--enable-helm", restrict, "/w/d"]
        );
        assert_eq!(
            KustomizeCommand::parse("'/my tools/kustomize'")
                .unwrap()
                .to_string(),
            "/my tools/kustomize"
        );
        assert!(KustomizeCommand::parse("  ").is_err());
        assert!(KustomizeCommand::parse("kustomize 'x").is_err());
    }

    #[test]
    fn versions_of_every_age_are_read() {
        assert_eq!(parse_version("v5.5.0\n").as_deref(), Some("v5.5.0"));
        assert_eq!(
            parse_version("{Version:kustomize/v4.5.7 GitCommit:56d82a8 BuildDate:2022}").as_deref(),
            Some("v4.5.7")
        );
        assert_eq!(
            parse_version("Version: {KustomizeVersion:3.8.1 GitCommit:0b359d0}").as_deref(),
            Some("v3.8.1")
        );
        assert_eq!(parse_version("dev"), None);
    }

    #[test]
    fn a_missing_program_is_named() {
        let err = KustomizeCommand::parse("/nonexistent/kustomize")
            .unwrap()
            .program()
            .unwrap_err();
        assert!(err.contains("`/nonexistent/kustomize` not found"), "{err}");
        assert_eq!(
            KustomizeCommand::parse("/nonexistent/kustomize")
                .unwrap()
                .version(),
            None
        );
    }
}
