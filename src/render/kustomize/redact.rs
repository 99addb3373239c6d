//! kustomize's error output, made fit for a status condition: kubectl's log
//! wrapping removed, work-directory paths made repository-relative, and
//! anything secret replaced by `***`.

use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;

/// Longest message kept (the status condition holds 4 KiB in all).
const MAX_MESSAGE: usize = 2048;
/// Shorter known values are not searched for: they would mask ordinary words.
const MIN_SECRET: usize = 4;

/// The message of a failed build: `stderr` of kustomize run on the copy in
/// `workdir`, with every value of `secrets` and anything that looks secret hidden.
pub(crate) fn message(stderr: &[u8], workdir: &Path, secrets: &[String]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut text = unwrap_klog(&text);
    // Paths in the copy read as repository paths.
    let root = format!("{}/", workdir.display());
    text = text
        .replace(&root, "")
        .replace(&workdir.display().to_string(), ".");
    let text = redact(&text, secrets);
    let text = text.trim();
    if text.len() <= MAX_MESSAGE {
        return text.to_string();
    }
    let mut end = MAX_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

/// Hides known secret values, `password: x`-style values and base64 blobs.
pub(crate) fn redact(text: &str, secrets: &[String]) -> String {
    static KEYED: OnceLock<Regex> = OnceLock::new();
    static BLOB: OnceLock<Regex> = OnceLock::new();
    let mut known: Vec<&str> = secrets
        .iter()
        .map(|s| s.as_str())
        .filter(|s| s.len() >= MIN_SECRET)
        .collect();
    // Longest first, so a secret containing another is hidden whole.
    known.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for secret in known {
        out = out.replace(secret, "***");
    }
    let keyed = KEYED.get_or_init(|| {
        Regex::new(
            r#"(?i)((?:password|passwd|secret|token|api[_-]?key|credentials?|private[_-]?key|auth)[A-Za-z0-9_-]*["']?\s*[:=]\s*["']?)([^\s"',}\]]+)"#,
        )
        .expect("valid regex")
    });
    out = keyed.replace_all(&out, "${1}***").into_owned();
    let blob = BLOB.get_or_init(|| Regex::new(r"[A-Za-z0-9+/]{24,}={0,2}").expect("valid regex"));
    blob.replace_all(&out, |c: &regex::Captures<'_>| {
        let s = &c[0];
        // Base64 mixes cases and digits; paths and words rarely do.
        let mixed = s.chars().any(|c| c.is_ascii_uppercase())
            && s.chars().any(|c| c.is_ascii_lowercase())
            && s.chars().any(|c| c.is_ascii_digit());
        if mixed {
            "***".to_string()
        } else {
            s.to_string()
        }
    })
    .into_owned()
}

/// kubectl logs its errors through klog:
/// `E0101 12:00:00.000000  123 run.go:72] "command failed" err="..."`, the
/// message Go-quoted, or `err=<` followed by tab-indented lines and ` >`.
/// kustomize prints `Error: ...`. Either way, only the message is kept.
fn unwrap_klog(text: &str) -> String {
    static KLOG: OnceLock<Regex> = OnceLock::new();
    let klog = KLOG.get_or_init(|| {
        Regex::new(r#"^[IWEF]\d{4} [0-9:.]+\s+\d+ [^\]]*\] "command failed" err=(.*)$"#)
            .expect("valid regex")
    });
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(caps) = klog.captures(line) else {
            out.push(line.strip_prefix("Error: ").unwrap_or(line).to_string());
            continue;
        };
        let err = &caps[1];
        if err == "<" {
            for inner in lines.by_ref() {
                if inner.trim() == ">" {
                    break;
                }
                out.push(inner.strip_prefix('\t').unwrap_or(inner).to_string());
            }
        } else {
            // Go's %q is JSON for all that kustomize prints.
            out.push(serde_json::from_str::<String>(err).unwrap_or_else(|_| err.to_string()));
        }
    }
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_wrapping_and_work_paths_are_removed() {
        let work = Path::new("/tmp/.tmpAbC/repo");
        let stderr = b"E1201 21:52:28.743454   22500 run.go:72] \"command failed\" err=\"accumulating resources: accumulation err='accumulating resources from '../base': evalsymlink failure on '/tmp/.tmpAbC/repo/base' : lstat /tmp/.tmpAbC/repo/base: no such file or directory'\"\n";
        assert_eq!(
            message(stderr, work, &[]),
            "accumulating resources: accumulation err='accumulating resources from '../base': \
             evalsymlink failure on 'base' : lstat base: no such file or directory'"
        );
        let multi = b"E1201 21:52:28.793156   22506 run.go:72] \"command failed\" err=<\n\ttrouble configuring builtin PatchTransformer with config: `\n\tpath: ../base/cm.yaml\n\t`: security; file '/tmp/.tmpAbC/repo/base/cm.yaml' is not in or below '/tmp/.tmpAbC/repo/ov'\n >\n";
        assert_eq!(
            message(multi, work, &[]),
            "trouble configuring builtin PatchTransformer with config: `\npath: ../base/cm.yaml\n`: \
             security; file 'base/cm.yaml' is not in or below 'ov'"
        );
        assert_eq!(
            message(b"Error: no matches for Id Deployment.v1.apps/api.[noNs]; failed to find unique target for patch Deployment.v1.apps/api.[noNs]\n", work, &[]),
            "no matches for Id Deployment.v1.apps/api.[noNs]; failed to find unique target for patch Deployment.v1.apps/api.[noNs]"
        );
    }

    #[test]
    fn secrets_are_hidden() {
        let text = "map[apiVersion:v1 data:map[password:c2VjcmV0IQ== DB_URL:cG9zdGdyZXM6Ly9hZG1pbjpodW50ZXIyQGRi] \
                    kind:Secret stringData:map[api_key:abc123 note:hunter2-long]] token=xyz \"clientSecret\": \"shh\"";
        let out = redact(text, &["hunter2-long".into(), "ab".into()]);
        for hidden in [
            "c2VjcmV0IQ==",
            "cG9zdGdyZXM6",
            "abc123",
            "hunter2-long",
            "xyz",
            "shh",
        ] {
            assert!(!out.contains(hidden), "{hidden} in {out}");
        }
        // Short known values are not searched for; ordinary words stay.
        assert!(out.contains("kind:Secret"), "{out}");
        assert!(out.contains("DB_URL:***"), "{out}");
        let path = "overlays/production/kustomization.yaml: Deployment.v1.apps/web-7f9c6b8d4d";
        assert_eq!(redact(path, &[]), path);
    }

    #[test]
    fn long_messages_are_cut() {
        let long = "x".repeat(10_000);
        let m = message(long.as_bytes(), Path::new("/w"), &[]);
        assert!(m.len() <= MAX_MESSAGE + 3 && m.ends_with("..."));
    }
}
