//! Render errors and the problems that make a release invalid.

use std::fmt;

/// Why a repository tree could not be rendered into a release.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// One or more problems in the manifests; nothing from this tree may be applied.
    #[error("{}", list_problems(.0))]
    Invalid(Vec<Problem>),
    /// `spec.git.path` does not name a directory of the tree.
    #[error("path {0:?} not found in the repository (check spec.git.path)")]
    PathNotFound(String),
    /// The path rendered zero objects; applying that would prune everything, so it is held.
    #[error("path {0:?} renders no objects; refusing to apply an empty release (it would delete everything)")]
    Empty(String),
    /// A kustomization could not be built; nothing from this tree may be applied.
    #[error("{file}: {message}")]
    Kustomize {
        /// The kustomization file, repository-relative (the one holding a
        /// refused reference, or the one whose build failed).
        file: String,
        /// What kind of failure, for the condition reason.
        failure: KustomizeFailure,
        /// What went wrong, with kustomize's own message (secrets redacted).
        message: String,
    },
    /// A file the release needs is over the limit of one file; it was not read.
    #[error("{file} is {}, over the limit of {} for one file (--max-file-size); split it, or raise the limit", super::limits::show(*.size), super::limits::show(*.limit))]
    FileTooLarge {
        /// The file, repository-relative.
        file: String,
        /// Its size in bytes.
        size: u64,
        /// The limit in bytes.
        limit: u64,
    },
    /// The commit holds more than the limit of one release, counted up to `file`.
    #[error("{file}: the commit holds more than {} of manifests (--max-release-size); nothing past this file was read; make the release smaller, or raise the limit", super::limits::show(*.limit))]
    ReleaseTooLarge {
        /// The file at which the limit was passed.
        file: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The commit declares more objects than the limit, counted up to `file`.
    #[error("{file}: the release has more than {limit} objects (--max-objects); split it over several channels, or raise the limit")]
    TooManyObjects {
        /// The file at which the limit was passed.
        file: String,
        /// The limit.
        limit: usize,
    },
    /// A file or directory could not be read (from [`super::RepoTree::from_dir`]).
    #[error("reading {path}: {source}")]
    Io {
        /// The path that failed, as given on disk.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl RenderError {
    /// A CamelCase reason, used for Kubernetes condition reasons and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            RenderError::Invalid(_) => "ValidationFailed",
            RenderError::PathNotFound(_) => "PathNotFound",
            RenderError::Empty(_) => "EmptyRelease",
            RenderError::Kustomize { failure, .. } => failure.reason(),
            RenderError::FileTooLarge { .. } => "FileTooLarge",
            RenderError::ReleaseTooLarge { .. } => "ReleaseTooLarge",
            RenderError::TooManyObjects { .. } => "TooManyObjects",
            RenderError::Io { .. } => "ReadFailed",
        }
    }

    /// The same error with every file path passed through `f` (e.g. to show
    /// paths relative to the directory a user named).
    pub fn map_files(self, f: impl Fn(&str) -> String) -> RenderError {
        match self {
            RenderError::Invalid(problems) => RenderError::Invalid(
                problems
                    .into_iter()
                    .map(|p| Problem {
                        file: f(&p.file),
                        ..p
                    })
                    .collect(),
            ),
            RenderError::Kustomize {
                file,
                failure,
                message,
            } => RenderError::Kustomize {
                file: f(&file),
                failure,
                message,
            },
            RenderError::FileTooLarge { file, size, limit } => RenderError::FileTooLarge {
                file: f(&file),
                size,
                limit,
            },
            RenderError::ReleaseTooLarge { file, limit } => RenderError::ReleaseTooLarge {
                file: f(&file),
                limit,
            },
            RenderError::TooManyObjects { file, limit } => RenderError::TooManyObjects {
                file: f(&file),
                limit,
            },
            other => other,
        }
    }

    /// Whether the same commit may render if tried again: only when the
    /// render worker was lost during the build, not the commit's fault.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            RenderError::Kustomize {
                failure: KustomizeFailure::WorkerLost,
                ..
            }
        )
    }

    /// The problems, when the error is [`RenderError::Invalid`]; empty otherwise.
    pub fn problems(&self) -> &[Problem] {
        match self {
            RenderError::Invalid(p) => p,
            _ => &[],
        }
    }
}

/// Why a kustomization was not built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KustomizeFailure {
    /// It reaches outside the repository (a remote base, a path or symlink out of it, a Helm chart).
    Refused,
    /// kustomize rejected it, or ran too long or printed too much.
    Failed,
    /// The kustomize command is not installed or cannot start.
    Unavailable,
    /// The render worker died or hung during the build; it was restarted,
    /// and the build is retried (the only kustomize failure that is).
    WorkerLost,
}

impl KustomizeFailure {
    /// A CamelCase reason, used for Kubernetes condition reasons and metric labels.
    pub fn reason(self) -> &'static str {
        match self {
            KustomizeFailure::Refused => "KustomizeRefused",
            KustomizeFailure::Failed => "KustomizeFailed",
            KustomizeFailure::Unavailable => "KustomizeUnavailable",
            KustomizeFailure::WorkerLost => "KustomizeWorkerLost",
        }
    }
}

fn list_problems(problems: &[Problem]) -> String {
    let mut out = match problems.len() {
        1 => "invalid release (1 problem):".to_string(),
        n => format!("invalid release ({n} problems):"),
    };
    for p in problems {
        out.push('\n');
        out.push_str(&p.to_string());
    }
    out
}

/// One thing wrong with one file of the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Repository-relative path of the file.
    pub file: String,
    /// One-based line, when known.
    pub line: Option<usize>,
    /// One-based column, when known.
    pub column: Option<usize>,
    /// What is wrong and, where useful, what to do.
    pub message: String,
}

impl Problem {
    /// A problem with no position.
    pub(crate) fn new(file: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            file: file.into(),
            line: None,
            column: None,
            message: message.into(),
        }
    }

    /// A problem at a line (and column, when known).
    pub(crate) fn at(
        file: impl Into<String>,
        line: Option<usize>,
        column: Option<usize>,
        message: impl Into<String>,
    ) -> Problem {
        Problem {
            file: file.into(),
            line,
            column: line.and(column),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_display_includes_position_only_when_known() {
        let p = Problem::at("deploy/web/svc.yaml", Some(3), Some(7), "bad");
        assert_eq!(p.to_string(), "deploy/web/svc.yaml:3:7: bad");
        assert_eq!(
            Problem::at("a.yaml", Some(2), None, "x").to_string(),
            "a.yaml:2: x"
        );
        assert_eq!(Problem::new("a.yaml", "x").to_string(), "a.yaml: x");
    }

    #[test]
    fn invalid_lists_every_problem_on_its_own_line() {
        let e = RenderError::Invalid(vec![
            Problem::new("a.yaml", "one"),
            Problem::new("b.yaml", "two"),
        ]);
        let text = e.to_string();
        assert_eq!(text.lines().count(), 3);
        assert!(text.contains("\na.yaml: one\nb.yaml: two"));
        assert_eq!(e.reason(), "ValidationFailed");
        assert_eq!(
            RenderError::PathNotFound("x".into()).reason(),
            "PathNotFound"
        );
        assert_eq!(RenderError::Empty("x".into()).reason(), "EmptyRelease");
    }
}
