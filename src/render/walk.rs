//! Finding the manifest files under the render path, resolving symlinks inside the tree.
//!
//! Symlinks are resolved lexically against the tree itself, never the filesystem,
//! so a repository cannot make render read anything outside it.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::{EntryKind, Problem, RenderError, RepoTree};

/// Name of the image override file, directly at the render path.
pub(crate) const IMAGES_FILE: &str = "images.yaml";

/// Longest chain of symlinks followed for one path (Linux uses 40 too).
const MAX_HOPS: usize = 40;
/// Deepest directory nesting walked, a backstop against loops through directory links.
const MAX_DEPTH: usize = 64;

/// One file to render, under the path the user sees (the link's path for a symlink).
#[derive(Debug, Clone)]
pub(crate) struct SourceFile<'a> {
    pub path: String,
    pub bytes: &'a [u8],
}

/// A directory holding a kustomization: built with kustomize as one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KustomizationDir {
    /// The directory as the user sees it (through any symlinked directory).
    pub path: String,
    /// The real directory in the tree, symlinks resolved.
    pub real: String,
    /// The kustomization file as the user sees it, for messages and `Object::file`.
    pub file: String,
}

/// What lies under the render path.
#[derive(Debug, Default)]
pub(crate) struct Collected<'a> {
    /// Manifest files, sorted by path.
    pub manifests: Vec<SourceFile<'a>>,
    /// Directories holding a kustomization, sorted by path; their files are
    /// not in `manifests`.
    pub kustomizations: Vec<KustomizationDir>,
    /// `images.yaml` at the path root, if any.
    pub images: Option<SourceFile<'a>>,
    /// Symlink problems.
    pub problems: Vec<Problem>,
    /// Manifest files left unread by the tree's reader (over a limit), and their sizes.
    pub unread: Vec<(String, u64)>,
}

/// Normalises a repository-relative path: drops empty and `.` components and a
/// leading `/`, applies `..`. `None` if it climbs above the root.
pub(crate) fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// `dir/name`, or `name` at the root.
pub(crate) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// File names that make a directory a kustomization, in kustomize's own order of preference.
pub(crate) const KUSTOMIZATION_FILES: [&str; 3] =
    ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Whether a file name is rendered as a manifest.
fn is_manifest(path: &str) -> bool {
    [".yaml", ".yml", ".json"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// What a repository path resolves to, symlinks followed inside the tree.
pub(crate) enum Resolved<'a> {
    File(&'a [u8]),
    /// A file left unread by the tree's reader (over a limit), and its size.
    Unread(u64),
    Dir(String),
    Missing,
    /// Absolute, or climbs above the root; carries the offending target.
    Outside(String),
    Loop,
}

/// The tree by path, for lookups and symlink resolution.
pub(crate) struct Index<'a> {
    entries: BTreeMap<&'a str, &'a EntryKind>,
}

impl<'a> Index<'a> {
    pub(crate) fn new(tree: &'a RepoTree) -> Index<'a> {
        let entries = tree
            .entries
            .iter()
            .map(|e| (e.path.as_str(), &e.kind))
            .collect();
        Index { entries }
    }

    /// The entry at exactly `path` (no symlink resolution).
    pub(crate) fn get(&self, path: &str) -> Option<&'a EntryKind> {
        self.entries.get(path).copied()
    }

    /// The kustomization file name in real directory `dir`, if it holds one.
    pub(crate) fn kustomization_in(&self, dir: &str) -> Option<&'static str> {
        KUSTOMIZATION_FILES
            .into_iter()
            .find(|name| self.entries.contains_key(join(dir, name).as_str()))
    }

    fn is_dir(&self, dir: &str) -> bool {
        if dir.is_empty() {
            return true;
        }
        let prefix = format!("{dir}/");
        self.entries
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .next()
            .is_some_and(|(k, _)| k.starts_with(&prefix))
    }

    /// The directories a render of `path` read, given the kustomization
    /// directories it reached: what must not change for the render to be the
    /// same. Nested directories are folded into the one above them. The whole
    /// tree (`""`) when the path is not a real directory (a symlink, a file) or
    /// a symlink lies under any of them, since a link's target may be anywhere.
    pub(crate) fn inputs(&self, path: &str, reached: &[String]) -> Vec<String> {
        let mut dirs: Vec<&str> = std::iter::once(path)
            .chain(reached.iter().map(String::as_str))
            .collect();
        let linked = |dir: &str| {
            self.under(dir)
                .any(|(_, kind)| matches!(kind, EntryKind::Symlink(_)))
        };
        if dirs.iter().any(|d| !self.is_dir(d) || linked(d)) {
            return vec![String::new()];
        }
        dirs.sort_unstable();
        dirs.dedup();
        let within = |inner: &str, outer: &str| {
            outer.is_empty()
                || inner
                    .strip_prefix(outer)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        dirs.iter()
            .filter(|d| !dirs.iter().any(|o| o != *d && within(d, o)))
            .map(|d| d.to_string())
            .collect()
    }

    /// The entries below a real directory (`""`: all), each with its path
    /// relative to the directory.
    fn under<'s>(&'s self, dir: &str) -> impl Iterator<Item = (&'a str, &'a EntryKind)> + 's {
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        let len = prefix.len();
        self.entries
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(&prefix))
            .map(move |(k, v)| {
                let k: &'a str = k;
                (&k[len..], *v)
            })
    }

    /// Immediate child names of a real directory.
    pub(crate) fn children(&self, dir: &str) -> BTreeSet<&'a str> {
        self.under(dir)
            .filter_map(|(rest, _)| rest.split('/').next())
            .filter(|n| !n.is_empty())
            .collect()
    }

    /// Follows symlinks in every component of a normalised path.
    pub(crate) fn resolve(&self, path: &str) -> Resolved<'a> {
        let mut pending = path.to_string();
        let mut hops = 0;
        'restart: loop {
            let comps: Vec<String> = pending
                .split('/')
                .filter(|c| !c.is_empty())
                .map(String::from)
                .collect();
            let mut cur = String::new();
            for (i, comp) in comps.iter().enumerate() {
                let next = join(&cur, comp);
                match self.entries.get(next.as_str()) {
                    None => cur = next,
                    Some(EntryKind::File(bytes)) if i + 1 == comps.len() => {
                        return Resolved::File(bytes)
                    }
                    Some(EntryKind::Unread { size }) if i + 1 == comps.len() => {
                        return Resolved::Unread(*size)
                    }
                    Some(EntryKind::File(_) | EntryKind::Unread { .. }) => {
                        return Resolved::Missing
                    }
                    Some(EntryKind::Symlink(target)) => {
                        hops += 1;
                        if hops > MAX_HOPS {
                            return Resolved::Loop;
                        }
                        if target.starts_with('/') {
                            return Resolved::Outside(target.clone());
                        }
                        // The target is relative to the link's directory, which is `cur`.
                        let mut joined = join(&cur, target);
                        for rest in &comps[i + 1..] {
                            joined = join(&joined, rest);
                        }
                        match normalize(&joined) {
                            Some(n) => {
                                pending = n;
                                continue 'restart;
                            }
                            None => return Resolved::Outside(target.clone()),
                        }
                    }
                }
            }
            return if self.is_dir(&cur) {
                Resolved::Dir(cur)
            } else {
                Resolved::Missing
            };
        }
    }

    /// Walks real directory `rdir`, presented as `vdir`.
    fn walk(
        &self,
        vdir: &str,
        rdir: &str,
        top: bool,
        via: &mut Vec<String>,
        out: &mut Collected<'a>,
    ) {
        // A kustomization is built as a whole by kustomize: its files are its
        // inputs (bases, patches, generator sources), not manifests of their own.
        if let Some(name) = self.kustomization_in(rdir) {
            out.kustomizations.push(KustomizationDir {
                path: vdir.to_string(),
                real: rdir.to_string(),
                file: join(vdir, name),
            });
            // images.yaml at the render path still applies on top of the build.
            if top {
                match self.resolve(&join(rdir, IMAGES_FILE)) {
                    Resolved::File(bytes) => add_file(out, join(vdir, IMAGES_FILE), bytes, true),
                    Resolved::Unread(size) => out.unread.push((join(vdir, IMAGES_FILE), size)),
                    _ => {}
                }
            }
            return;
        }
        for name in self.children(rdir) {
            // Hidden files and directories (.github, .gitlab-ci.yml, ...) are not manifests.
            if name.starts_with('.') {
                continue;
            }
            let vpath = join(vdir, name);
            let rpath = join(rdir, name);
            match self.entries.get(rpath.as_str()) {
                None => self.walk(&vpath, &rpath, false, via, out),
                Some(EntryKind::File(bytes)) => add_file(out, vpath, bytes, top && name == IMAGES_FILE),
                Some(EntryKind::Unread { size }) => add_unread(out, vpath, *size, top && name == IMAGES_FILE),
                Some(EntryKind::Symlink(target)) => match self.resolve(&rpath) {
                    Resolved::File(bytes) => add_file(out, vpath, bytes, top && name == IMAGES_FILE),
                    Resolved::Unread(size) => add_unread(out, vpath, size, top && name == IMAGES_FILE),
                    Resolved::Dir(real) => {
                        let ancestor = real.is_empty() || rdir == real || rdir.starts_with(&format!("{real}/"));
                        if ancestor || via.contains(&real) || via.len() >= MAX_DEPTH {
                            out.problems.push(Problem::new(
                                vpath,
                                format!("symlink loop: points to a directory that contains it (-> {target})"),
                            ));
                        } else {
                            via.push(real.clone());
                            self.walk(&vpath, &real, false, via, out);
                            via.pop();
                        }
                    }
                    Resolved::Missing if is_manifest(&vpath) => out.problems.push(Problem::new(
                        vpath,
                        format!("symlink target does not exist in the repository (-> {target})"),
                    )),
                    Resolved::Missing => {}
                    Resolved::Outside(_) => out.problems.push(outside(vpath, target)),
                    Resolved::Loop => out.problems.push(Problem::new(
                        vpath,
                        format!("symlink chain is circular or longer than {MAX_HOPS} links (-> {target})"),
                    )),
                },
            }
        }
    }
}

fn outside(path: String, target: &str) -> Problem {
    Problem::new(
        path,
        format!(
            "symlink points outside the repository (-> {target}); link only to files inside it"
        ),
    )
}

/// A file render would read, left unread by the tree's reader: the commit is refused.
fn add_unread(out: &mut Collected<'_>, path: String, size: u64, is_images: bool) {
    if is_images || is_manifest(&path) {
        out.unread.push((path, size));
    }
}

fn add_file<'a>(out: &mut Collected<'a>, path: String, bytes: &'a [u8], is_images: bool) {
    if is_images {
        out.images = Some(SourceFile { path, bytes });
    } else if is_manifest(&path) {
        out.manifests.push(SourceFile { path, bytes });
    }
}

/// Collects the files under `path` (already normalised).
pub(crate) fn collect<'a>(tree: &'a RepoTree, path: &str) -> Result<Collected<'a>, RenderError> {
    let index = Index::new(tree);
    let mut out = Collected::default();
    match index.resolve(path) {
        Resolved::Dir(real) => index.walk(path, &real, true, &mut Vec::new(), &mut out),
        Resolved::File(_) | Resolved::Unread(_) | Resolved::Missing => {
            return Err(RenderError::PathNotFound(path.to_string()))
        }
        Resolved::Outside(target) => {
            return Err(RenderError::Invalid(vec![outside(
                path.to_string(),
                &target,
            )]))
        }
        Resolved::Loop => {
            return Err(RenderError::Invalid(vec![Problem::new(
                path,
                "symlink chain is circular or too long",
            )]))
        }
    }
    out.manifests.sort_by(|a, b| a.path.cmp(&b.path));
    out.kustomizations.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, Result<&str, &str>)]) -> RepoTree {
        RepoTree::for_tests(entries)
    }

    fn paths(c: &Collected) -> Vec<String> {
        c.manifests.iter().map(|f| f.path.clone()).collect()
    }

    #[test]
    fn a_render_reads_its_path_and_the_kustomizations_it_reaches() {
        let t = tree(&[
            ("apps/web/kustomization.yaml", Ok("resources: [../../base]")),
            ("apps/web/patch.yaml", Ok("")),
            ("apps/web/sub/x.yaml", Ok("")),
            ("apps/api/deploy.yaml", Ok("")),
            ("base/kustomization.yaml", Ok("")),
            ("base/deploy.yaml", Ok("")),
            ("linked/app.yaml", Err("../base/deploy.yaml")),
            ("file.yaml", Ok("")),
        ]);
        let index = Index::new(&t);
        let rows: Vec<(&str, &str, Vec<&str>, Vec<&str>)> = vec![
            (
                "plain manifests: the path alone",
                "apps/api",
                vec![],
                vec!["apps/api"],
            ),
            (
                "an overlay: the path and its base",
                "apps/web",
                vec!["apps/web", "base"],
                vec!["apps/web", "base"],
            ),
            (
                "nested kustomizations fold into the path",
                "apps",
                vec!["apps/web", "base"],
                vec!["apps", "base"],
            ),
            (
                "a symlink under the path: the whole tree",
                "linked",
                vec![],
                vec![""],
            ),
            (
                "a path that is no directory: the whole tree",
                "file.yaml",
                vec![],
                vec![""],
            ),
            ("the root", "", vec![], vec![""]),
        ];
        for (name, path, reached, want) in rows {
            let reached: Vec<String> = reached.into_iter().map(String::from).collect();
            assert_eq!(index.inputs(path, &reached), want, "{name}");
        }
    }

    #[test]
    fn normalize_handles_dots_and_escapes() {
        assert_eq!(normalize("./deploy/").as_deref(), Some("deploy"));
        assert_eq!(normalize(".").as_deref(), Some(""));
        assert_eq!(normalize("a/../b/./c").as_deref(), Some("b/c"));
        assert_eq!(normalize("a/../.."), None);
    }

    #[test]
    fn collects_sorted_manifests_skipping_hidden_and_other_files() {
        let t = tree(&[
            ("d/b.yaml", Ok("")),
            ("d/a/z.json", Ok("")),
            ("d/a.yml", Ok("")),
            ("d/README.md", Ok("")),
            ("d/.hidden/x.yaml", Ok("")),
            ("d/.pre-commit-config.yaml", Ok("")),
            ("d/images.yaml", Ok("images: []")),
            ("d/sub/images.yaml", Ok("")),
            ("other.yaml", Ok("")),
        ]);
        let c = collect(&t, "d").unwrap();
        assert_eq!(
            paths(&c),
            ["d/a.yml", "d/a/z.json", "d/b.yaml", "d/sub/images.yaml"]
        );
        assert_eq!(c.images.unwrap().path, "d/images.yaml");
    }

    #[test]
    fn symlinks_inside_the_tree_are_followed_under_the_link_path() {
        let t = tree(&[
            ("base/cm.yaml", Ok("cm")),
            ("base/sub/x.yaml", Ok("x")),
            ("d/file.yaml", Err("../base/cm.yaml")),
            ("d/dir", Err("../base")),
            ("d/chain.yaml", Err("file.yaml")),
        ]);
        let c = collect(&t, "d").unwrap();
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        assert_eq!(
            paths(&c),
            [
                "d/chain.yaml",
                "d/dir/cm.yaml",
                "d/dir/sub/x.yaml",
                "d/file.yaml"
            ]
        );
        assert_eq!(c.manifests[0].bytes, b"cm");
    }

    #[test]
    fn render_path_may_itself_be_a_symlink() {
        let t = tree(&[("envs/prod/a.yaml", Ok("a")), ("deploy", Err("envs/prod"))]);
        let c = collect(&t, "deploy").unwrap();
        assert_eq!(paths(&c), ["deploy/a.yaml"]);
    }

    #[test]
    fn symlinks_outside_the_repository_are_problems() {
        let t = tree(&[
            ("d/abs.yaml", Err("/etc/passwd")),
            ("d/up.yaml", Err("../../secret.yaml")),
            ("d/dir", Err("../..")),
        ]);
        let c = collect(&t, "d").unwrap();
        let files: Vec<&str> = c.problems.iter().map(|p| p.file.as_str()).collect();
        assert_eq!(files, ["d/abs.yaml", "d/dir", "d/up.yaml"]);
        assert!(c.problems[0]
            .message
            .starts_with("symlink points outside the repository (-> /etc/passwd)"));
        assert!(c.problems[2].message.contains("(-> ../../secret.yaml)"));
    }

    #[test]
    fn symlink_loops_are_problems_not_hangs() {
        let t = tree(&[
            ("d/a.yaml", Err("b.yaml")),
            ("d/b.yaml", Err("a.yaml")),
            ("d/self", Err(".")),
            ("d/up", Err("..")),
            ("d/x/y", Err("../z")),
            ("d/z/w", Err("../x")),
        ]);
        let c = collect(&t, "d").unwrap();
        let files: Vec<&str> = c.problems.iter().map(|p| p.file.as_str()).collect();
        assert!(
            files.contains(&"d/a.yaml") && files.contains(&"d/b.yaml"),
            "{files:?}"
        );
        assert!(
            files.contains(&"d/self") && files.contains(&"d/up"),
            "{files:?}"
        );
        assert!(
            c.problems.iter().any(|p| p.file.starts_with("d/x/")),
            "{files:?}"
        );
    }

    #[test]
    fn kustomization_directories_are_units_and_their_files_are_not_manifests() {
        let t = tree(&[
            ("d/plain.yaml", Ok("")),
            ("d/app/kustomization.yaml", Ok("")),
            ("d/app/deployment.yaml", Ok("")),
            ("d/app/nested/x.yaml", Ok("")),
            ("d/other/Kustomization", Ok("")),
            ("d/linked", Err("../shared")),
            ("shared/kustomization.yml", Ok("")),
        ]);
        let c = collect(&t, "d").unwrap();
        assert_eq!(paths(&c), ["d/plain.yaml"]);
        let units: Vec<(&str, &str, &str)> = c
            .kustomizations
            .iter()
            .map(|k| (k.path.as_str(), k.real.as_str(), k.file.as_str()))
            .collect();
        assert_eq!(
            units,
            [
                ("d/app", "d/app", "d/app/kustomization.yaml"),
                ("d/linked", "shared", "d/linked/kustomization.yml"),
                ("d/other", "d/other", "d/other/Kustomization"),
            ]
        );

        // At the path itself: one unit, and images.yaml beside it still applies.
        let t = tree(&[
            ("o/kustomization.yaml", Ok("")),
            ("o/images.yaml", Ok("images: []")),
            ("o/patch.yaml", Ok("")),
        ]);
        let c = collect(&t, "o").unwrap();
        assert!(c.manifests.is_empty());
        assert_eq!(c.kustomizations[0].file, "o/kustomization.yaml");
        assert_eq!(c.images.unwrap().path, "o/images.yaml");
    }

    #[test]
    fn missing_path_or_file_path_is_not_found() {
        let t = tree(&[("d/a.yaml", Ok(""))]);
        assert!(matches!(
            collect(&t, "nope"),
            Err(RenderError::PathNotFound(_))
        ));
        assert!(matches!(
            collect(&t, "d/a.yaml"),
            Err(RenderError::PathNotFound(_))
        ));
    }
}
