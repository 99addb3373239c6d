//! Checking every kustomization a build reaches before kustomize runs: remote
//! bases and paths leaving the repository are refused, and what the build
//! needs on disk (and which values are secret) is gathered.
//!
//! Paths follow kustomize's own rules, so the check sees what kustomize will:
//! each kustomization root is the real directory (symlinks resolved, as
//! kustomize's `EvalSymlinks`), and references are joined to it lexically (as
//! Go's `filepath.Join`), then resolved through the tree's symlinks.

use std::collections::{BTreeSet, VecDeque};

use serde_yaml::Value;

use crate::render::walk::{join, normalize, Index, KustomizationDir, Resolved};

/// Most kustomizations one build may reach: a backstop, kustomize itself
/// rejects cycles.
const MAX_REACHED: usize = 256;

/// What a build needs.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    /// Real directory of every kustomization reached, the unit's first.
    pub dirs: Vec<String>,
    /// Values that must never appear in a message: `secretGenerator` literals
    /// and the contents of its files, and the data of Secret manifests.
    pub secrets: Vec<String>,
}

/// A kustomization that may not be built, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The kustomization file holding the reference, as the user sees it.
    pub file: String,
    /// What is refused and what to do instead.
    pub message: String,
}

/// How a kustomization field uses its paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    /// `resources`, `bases`, `components`: a file or another kustomization.
    Resource,
    /// A file read by kustomize (patches, configurations, generator configs...).
    File,
    /// A `configMapGenerator` / `secretGenerator` source: `key=path` or `path`.
    Source { secret: bool, env: bool },
}

/// Walks every kustomization reachable from `unit`.
pub(crate) fn reach(index: &Index<'_>, unit: &KustomizationDir) -> Result<Reach, Refusal> {
    let mut out = Reach::default();
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([unit.real.clone()]);
    while let Some(dir) = queue.pop_front() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let Some(name) = index.kustomization_in(&dir) else {
            // A directory resource without a kustomization: kustomize says so.
            out.dirs.push(dir);
            continue;
        };
        let file = join(&dir, name);
        let shown = if out.dirs.is_empty() {
            unit.file.clone()
        } else {
            file.clone()
        };
        if out.dirs.len() >= MAX_REACHED {
            return Err(Refusal {
                file: unit.file.clone(),
                message: format!("reaches more than {MAX_REACHED} kustomizations"),
            });
        }
        out.dirs.push(dir.clone());
        let refuse = |message: String| Refusal {
            file: shown.clone(),
            message,
        };
        let bytes = match index.resolve(&file) {
            Resolved::File(bytes) => bytes,
            Resolved::Outside(target) => {
                return Err(refuse(format!(
                    "is a symlink out of the repository (-> {target})"
                )))
            }
            // Nothing to check: kustomize reports what it cannot read.
            _ => continue,
        };
        // Unreadable YAML is kustomize's to report, with its own message.
        let Some(doc) = std::str::from_utf8(bytes)
            .ok()
            .and_then(|text| serde_yaml::from_str::<Value>(text).ok())
        else {
            continue;
        };
        for field in ["helmCharts", "helmChartInflationGenerator", "helmGlobals"] {
            if doc.get(field).is_some() {
                return Err(refuse(format!(
                    "uses `{field}`: Helm charts are fetched and rendered outside the repository; \
                     render the chart into the repository (helm template) and list the result in `resources`"
                )));
            }
        }
        for (field, path, how) in references(&doc) {
            if let Some(next) = check(index, &dir, field, path, how).map_err(&refuse)? {
                queue.push_back(next);
            }
            if let Use::Source { secret: true, env } = how {
                let on_disk = source_path(path);
                if let Resolved::File(bytes) =
                    normalize(&join(&dir, on_disk)).map_or(Resolved::Missing, |p| index.resolve(&p))
                {
                    secret_file_values(bytes, env, &mut out.secrets);
                }
            }
            if how == Use::Resource {
                if let Some(Resolved::File(bytes)) =
                    normalize(&join(&dir, path)).map(|p| index.resolve(&p))
                {
                    secret_manifest_values(bytes, &mut out.secrets);
                }
            }
        }
        secret_literals(&doc, &mut out.secrets);
    }
    Ok(out)
}

/// Checks one reference; a kustomization directory it names is returned to be walked.
fn check(
    index: &Index<'_>,
    dir: &str,
    field: &str,
    reference: &str,
    how: Use,
) -> Result<Option<String>, String> {
    let path = match how {
        Use::Source { .. } => source_path(reference),
        _ => reference,
    };
    if is_remote(path) {
        return Err(format!(
            "{field}: {reference:?} is remote; kubemint builds only what is in the repository \
             and fetches nothing while rendering: copy (vendor) it into the repository and \
             refer to it by a relative path"
        ));
    }
    if path.starts_with('/') {
        return Err(format!(
            "{field}: {reference:?} is an absolute path; refer to files inside the repository by relative paths"
        ));
    }
    let Some(joined) = normalize(&join(dir, path)) else {
        return Err(format!(
            "{field}: {reference:?} leaves the repository; a kustomization may only use files inside it (the repository is the git checkout; outside git, the directory given: name the directory that holds the bases, with --path)"
        ));
    };
    match index.resolve(&joined) {
        Resolved::Dir(real) if how == Use::Resource => Ok(Some(real)),
        Resolved::Outside(target) => Err(format!(
            "{field}: {reference:?} is a symlink out of the repository (-> {target})"
        )),
        Resolved::Missing if how == Use::Resource && looks_like_host(path) => Err(format!(
            "{field}: {reference:?} is not in the repository and looks like a remote base; \
             kubemint fetches nothing while rendering: vendor it into the repository"
        )),
        // Files, and what does not exist: kustomize reports a missing path itself.
        _ => Ok(None),
    }
}

/// URLs, scp-like and go-getter references: `https://...`, `git@host:org/repo`,
/// `git::...`, anything with a query (`?ref=v1`).
fn is_remote(path: &str) -> bool {
    path.contains("://") || path.starts_with("git@") || path.contains("git::") || path.contains('?')
}

/// `github.com/org/repo//dir`, `host:org/repo`: what kustomize would try to clone.
fn looks_like_host(path: &str) -> bool {
    let first = path.split('/').next().unwrap_or_default();
    path.contains("//")
        || first.contains(':')
        || (path.contains('/') && first.contains('.') && !first.starts_with('.'))
}

/// The path of a generator source: `key=path` or `path`.
fn source_path(source: &str) -> &str {
    source.split_once('=').map_or(source, |(_, path)| path)
}

/// Every path a kustomization names, with its field and how it is used.
fn references(doc: &Value) -> Vec<(&'static str, &str, Use)> {
    let mut out = Vec::new();
    fn strings(value: Option<&Value>) -> Vec<&str> {
        match value {
            Some(Value::Sequence(items)) => items.iter().filter_map(Value::as_str).collect(),
            Some(Value::String(s)) => vec![s.as_str()],
            _ => Vec::new(),
        }
    }
    // Inline YAML in a path field (a patch or generator config written in place).
    let is_path = |s: &&str| !s.contains('\n') && !s.trim_start().starts_with('{');
    for field in ["resources", "bases", "components"] {
        for s in strings(doc.get(field)).into_iter().filter(is_path) {
            out.push((field, s, Use::Resource));
        }
    }
    for field in [
        "patchesStrategicMerge",
        "crds",
        "configurations",
        "generators",
        "transformers",
        "validators",
    ] {
        for s in strings(doc.get(field)).into_iter().filter(is_path) {
            out.push((field, s, Use::File));
        }
    }
    for field in ["patches", "patchesJson6902", "replacements"] {
        if let Some(Value::Sequence(items)) = doc.get(field) {
            for path in items.iter().filter_map(|i| i.get("path")?.as_str()) {
                out.push((field, path, Use::File));
            }
        }
    }
    if let Some(path) = doc.get("openapi").and_then(|o| o.get("path")?.as_str()) {
        out.push(("openapi", path, Use::File));
    }
    for (field, secret) in [("configMapGenerator", false), ("secretGenerator", true)] {
        let Some(Value::Sequence(generators)) = doc.get(field) else {
            continue;
        };
        for generator in generators {
            for s in strings(generator.get("files")) {
                out.push((field, s, Use::Source { secret, env: false }));
            }
            for s in strings(generator.get("envs"))
                .into_iter()
                .chain(strings(generator.get("env")))
            {
                out.push((field, s, Use::Source { secret, env: true }));
            }
        }
    }
    out
}

/// Values of `secretGenerator` literals (`KEY=value`).
fn secret_literals(doc: &Value, secrets: &mut Vec<String>) {
    let Some(Value::Sequence(generators)) = doc.get("secretGenerator") else {
        return;
    };
    for literals in generators
        .iter()
        .filter_map(|g| g.get("literals")?.as_sequence())
    {
        for literal in literals.iter().filter_map(Value::as_str) {
            let value = literal.split_once('=').map_or(literal, |(_, v)| v);
            secrets.push(value.trim_matches(['"', '\'']).to_string());
        }
    }
}

/// The values of an env file (`KEY=value` lines), or a whole file and its lines.
fn secret_file_values(bytes: &[u8], env: bool, secrets: &mut Vec<String>) {
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if env {
            if line.starts_with('#') {
                continue;
            }
            if let Some((_, value)) = line.split_once('=') {
                secrets.push(value.to_string());
            }
        } else {
            secrets.push(line.to_string());
        }
    }
    if !env {
        secrets.push(text.trim().to_string());
    }
}

/// The `data` and `stringData` values of Secret manifests in a file.
fn secret_manifest_values(bytes: &[u8], secrets: &mut Vec<String>) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    for de in serde_yaml::Deserializer::from_str(text) {
        let Ok(doc) = <Value as serde::Deserialize>::deserialize(de) else {
            return;
        };
        if doc.get("kind").and_then(Value::as_str) != Some("Secret") {
            continue;
        }
        for field in ["data", "stringData"] {
            if let Some(Value::Mapping(data)) = doc.get(field) {
                secrets.extend(data.values().filter_map(Value::as_str).map(str::to_string));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::RepoTree;

    fn tree(entries: &[(&str, Result<&str, &str>)]) -> RepoTree {
        RepoTree::for_tests(entries)
    }

    fn unit(dir: &str) -> KustomizationDir {
        KustomizationDir {
            path: dir.into(),
            real: dir.into(),
            file: format!("{dir}/kustomization.yaml"),
        }
    }

    fn refused(entries: &[(&str, Result<&str, &str>)], dir: &str) -> Refusal {
        let t = tree(entries);
        reach(&Index::new(&t), &unit(dir)).expect_err("refused")
    }

    #[test]
    fn overlays_reach_their_bases_and_components() {
        let t = tree(&[
            ("base/kustomization.yaml", Ok("resources: [web.yaml, ../shared]")),
            ("base/web.yaml", Ok("")),
            ("shared/kustomization.yaml", Ok("resources: [a.yaml]")),
            ("components/tls/kustomization.yaml", Ok("kind: Component")),
            (
                "overlays/dev/kustomization.yaml",
                Ok("resources: [../../base]\ncomponents: [../../components/tls]\npatches:\n- path: patch.yaml\n- patch: |\n    inline: yes\n"),
            ),
            ("overlays/dev/patch.yaml", Ok("")),
        ]);
        let r = reach(&Index::new(&t), &unit("overlays/dev")).unwrap();
        assert_eq!(r.dirs, ["overlays/dev", "base", "components/tls", "shared"]);
    }

    #[test]
    fn remote_bases_are_refused_wherever_they_are() {
        for remote in [
            "github.com/kubernetes-sigs/kustomize/examples/helloWorld?ref=v3.3.1",
            "https://github.com/acme/deploy//base",
            "git@github.com:acme/deploy.git/base",
            "git::https://example.com/repo.git",
            "https://raw.githubusercontent.com/acme/x/main/deploy.yaml",
            "ssh://git@example.com/acme/base",
            "gitlab.com/acme/base",
        ] {
            let base = format!("resources: [\"{remote}\"]");
            let r = refused(
                &[
                    ("base/kustomization.yaml", Ok(&base)),
                    ("dev/kustomization.yaml", Ok("resources: [../base]")),
                ],
                "dev",
            );
            // Named where the remote reference is written.
            assert_eq!(r.file, "base/kustomization.yaml", "{remote}");
            assert!(r.message.contains("remote"), "{remote}: {}", r.message);
            assert!(r.message.contains(remote), "{}", r.message);
        }
        let r = refused(
            &[(
                "dev/kustomization.yaml",
                Ok("bases: [\"github.com/acme/base\"]"),
            )],
            "dev",
        );
        assert_eq!(r.file, "dev/kustomization.yaml");
        let r = refused(
            &[(
                "dev/kustomization.yaml",
                Ok("patches:\n- path: https://example.com/patch.yaml\n"),
            )],
            "dev",
        );
        assert!(r.message.starts_with("patches: "), "{}", r.message);
    }

    #[test]
    fn helm_charts_are_refused() {
        let r = refused(
            &[(
                "dev/kustomization.yaml",
                Ok("helmCharts:\n- name: redis\n  repo: https://charts.example.com\n"),
            )],
            "dev",
        );
        assert!(r.message.contains("helmCharts"), "{}", r.message);
    }

    #[test]
    fn paths_outside_the_repository_are_refused() {
        for (field, yaml) in [
            ("resources", "resources: [../../../etc]"),
            ("resources", "resources: [/etc/kubernetes]"),
            (
                "patchesStrategicMerge",
                "patchesStrategicMerge: [../../../x.yaml]",
            ),
            (
                "configMapGenerator",
                "configMapGenerator:\n- name: c\n  files: [passwd=../../../etc/passwd]\n",
            ),
            (
                "secretGenerator",
                "secretGenerator:\n- name: s\n  envs: [/root/.env]\n",
            ),
        ] {
            let r = refused(&[("a/dev/kustomization.yaml", Ok(yaml))], "a/dev");
            assert_eq!(r.file, "a/dev/kustomization.yaml");
            assert!(
                r.message.starts_with(&format!("{field}: ")),
                "{}",
                r.message
            );
            assert!(
                r.message.contains("leaves the repository") || r.message.contains("absolute path"),
                "{}",
                r.message
            );
        }
        // Going up is fine while it stays inside.
        let t = tree(&[
            ("a/dev/kustomization.yaml", Ok("resources: [../../base]")),
            ("base/kustomization.yaml", Ok("")),
        ]);
        assert!(reach(&Index::new(&t), &unit("a/dev")).is_ok());
    }

    #[test]
    fn symlinks_out_of_the_repository_are_refused() {
        let r = refused(
            &[
                ("dev/kustomization.yaml", Ok("resources: [base]")),
                ("dev/base", Err("/srv/other-repo/base")),
            ],
            "dev",
        );
        assert!(
            r.message.contains("symlink out of the repository"),
            "{}",
            r.message
        );
        let r = refused(&[("dev/kustomization.yaml", Err("../../k.yaml"))], "dev");
        assert!(r.message.contains("symlink out"), "{}", r.message);
    }

    #[test]
    fn symlinked_bases_are_followed_to_their_real_directory() {
        let t = tree(&[
            (
                "shared/base/kustomization.yaml",
                Ok("resources: [../extra]"),
            ),
            ("shared/extra/kustomization.yaml", Ok("")),
            ("base", Err("shared/base")),
            ("dev/kustomization.yaml", Ok("resources: [../base]")),
        ]);
        let r = reach(&Index::new(&t), &unit("dev")).unwrap();
        // ../extra is relative to the real directory, as kustomize resolves it.
        assert_eq!(r.dirs, ["dev", "shared/base", "shared/extra"]);
    }

    #[test]
    fn cycles_end() {
        let t = tree(&[
            ("a/kustomization.yaml", Ok("resources: [../b]")),
            ("b/kustomization.yaml", Ok("resources: [../a]")),
        ]);
        assert_eq!(reach(&Index::new(&t), &unit("a")).unwrap().dirs, ["a", "b"]);
    }

    #[test]
    fn secret_values_are_gathered_for_redaction() {
        let t = tree(&[
            (
                "dev/kustomization.yaml",
                Ok("resources: [secret.yaml]\nsecretGenerator:\n- name: db\n  literals: [password=hunter2]\n  envs: [db.env]\n  files: [tls.key]\nconfigMapGenerator:\n- name: c\n  literals: [color=blue]\n"),
            ),
            ("dev/db.env", Ok("# comment\nUSER=admin\nTOKEN=s3cr3t-t0ken\n")),
            ("dev/tls.key", Ok("-----BEGIN KEY-----\nAAAA\n")),
            (
                "dev/secret.yaml",
                Ok("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: c2VjcmV0}\nstringData: {p: plain-secret}\n---\nkind: ConfigMap\ndata: {x: visible}\n"),
            ),
        ]);
        let r = reach(&Index::new(&t), &unit("dev")).unwrap();
        for secret in [
            "hunter2",
            "admin",
            "s3cr3t-t0ken",
            "AAAA",
            "c2VjcmV0",
            "plain-secret",
        ] {
            assert!(
                r.secrets.iter().any(|s| s == secret),
                "{secret}: {:?}",
                r.secrets
            );
        }
        for public in ["blue", "visible"] {
            assert!(!r.secrets.iter().any(|s| s == public), "{public}");
        }
    }
}
