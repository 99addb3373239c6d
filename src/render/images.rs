//! `images.yaml`: image overrides in kustomize `images:` syntax.

use serde_json::Value;

use super::{pods, Object, Problem};

/// One entry of `images.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageOverride {
    /// Image name to match: registry and repository, no tag or digest.
    pub name: String,
    pub new_name: Option<String>,
    pub new_tag: Option<String>,
    pub digest: Option<String>,
    /// Line of the entry in `images.yaml`, for problems.
    pub line: Option<usize>,
}

/// A parsed image reference: `name[:tag][@digest]`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ImageRef<'a> {
    pub name: &'a str,
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

/// Splits an image reference. The tag is a `:` after the last `/`, so a registry
/// port (`localhost:5000/app:1`) is part of the name.
pub(crate) fn split_image(image: &str) -> ImageRef<'_> {
    let (rest, digest) = match image.split_once('@') {
        Some((rest, digest)) => (rest, Some(digest)),
        None => (image, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(i) => ImageRef {
            name: &rest[..last_slash + i],
            tag: Some(&rest[last_slash + i + 1..]),
            digest,
        },
        None => ImageRef {
            name: rest,
            tag: None,
            digest,
        },
    }
}

impl ImageOverride {
    /// The new image for `image`, if this override matches it.
    fn apply(&self, image: &str) -> Option<String> {
        let old = split_image(image);
        if old.name != self.name {
            return None;
        }
        let name = self.new_name.as_deref().unwrap_or(old.name);
        // As kustomize: a digest wins over a tag; a new tag drops the old digest.
        Some(match (&self.digest, &self.new_tag) {
            (Some(digest), _) => format!("{name}@{digest}"),
            (None, Some(tag)) => format!("{name}:{tag}"),
            (None, None) => {
                let mut out = name.to_string();
                if let Some(tag) = old.tag {
                    out = format!("{out}:{tag}");
                }
                if let Some(digest) = old.digest {
                    out = format!("{out}@{digest}");
                }
                out
            }
        })
    }
}

/// Parses `images.yaml`. Problems are reported for unknown keys, a missing
/// `name`, unquoted float tags, malformed digests and duplicate names.
pub(crate) fn parse_images(file: &str, text: &str) -> (Vec<ImageOverride>, Vec<Problem>) {
    let mut problems = Vec::new();
    let root: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let loc = e.location();
            let msg = super::parse::strip_position(&e.to_string());
            problems.push(Problem::at(
                file,
                loc.as_ref().map(|l| l.line()),
                loc.as_ref().map(|l| l.column()),
                format!("invalid YAML: {msg}"),
            ));
            return (Vec::new(), problems);
        }
    };
    let root = match root {
        serde_yaml::Value::Null => return (Vec::new(), problems),
        serde_yaml::Value::Mapping(m) => m,
        _ => {
            problems.push(Problem::new(
                file,
                "expected a mapping with an `images:` list",
            ));
            return (Vec::new(), problems);
        }
    };
    let mut images = None;
    for (key, value) in root {
        match key.as_str() {
            Some("images") => images = Some(value),
            // Allowed so a kustomization.yaml-style file works unchanged.
            Some("apiVersion" | "kind") => {}
            _ => problems.push(Problem::new(
                file,
                format!("unknown key {} (expected `images:`)", describe_key(&key)),
            )),
        }
    }
    let entries = match images {
        None | Some(serde_yaml::Value::Null) => Vec::new(),
        Some(serde_yaml::Value::Sequence(entries)) => entries,
        Some(_) => {
            problems.push(Problem::new(
                file,
                "`images` must be a list of {name, newName, newTag, digest}",
            ));
            return (Vec::new(), problems);
        }
    };
    let mut out: Vec<ImageOverride> = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        if let Some(o) = parse_entry(file, text, i, entry, &mut problems) {
            if out.iter().any(|prev| prev.name == o.name) {
                problems.push(Problem::at(
                    file,
                    o.line,
                    None,
                    format!("image `{}` is listed twice; keep one entry", o.name),
                ));
            } else {
                out.push(o);
            }
        }
    }
    (out, problems)
}

fn describe_key(key: &serde_yaml::Value) -> String {
    match key.as_str() {
        Some(s) => format!("`{s}`"),
        None => format!("{key:?}"),
    }
}

fn parse_entry(
    file: &str,
    text: &str,
    index: usize,
    entry: serde_yaml::Value,
    problems: &mut Vec<Problem>,
) -> Option<ImageOverride> {
    let serde_yaml::Value::Mapping(map) = entry else {
        problems.push(Problem::new(
            file,
            format!(
                "images[{index}] must be a mapping with `name` and `newTag`, `newName` or `digest`"
            ),
        ));
        return None;
    };
    let mut o = ImageOverride {
        name: String::new(),
        new_name: None,
        new_tag: None,
        digest: None,
        line: None,
    };
    let before = problems.len();
    for (key, value) in map {
        let key_name = key.as_str().unwrap_or_default().to_string();
        let Some(slot) = (match key_name.as_str() {
            "name" => Some(&mut o.name),
            "newName" => Some(o.new_name.insert(String::new())),
            "newTag" => Some(o.new_tag.insert(String::new())),
            "digest" => Some(o.digest.insert(String::new())),
            _ => None,
        }) else {
            problems.push(Problem::new(
                file,
                format!(
                    "images[{index}]: unknown key {} (expected name, newName, newTag or digest)",
                    describe_key(&key)
                ),
            ));
            continue;
        };
        match value {
            serde_yaml::Value::String(s) => *slot = s,
            serde_yaml::Value::Number(n) if !n.is_f64() => *slot = n.to_string(),
            // YAML reads 1.10 as the number 1.1: quoting keeps the tag as written.
            serde_yaml::Value::Number(n) => problems.push(Problem::new(
                file,
                format!("images[{index}].{key_name}: {n} is read as a number; quote it (\"{n}\") so YAML keeps it as written"),
            )),
            other => problems.push(Problem::new(
                file,
                format!("images[{index}].{key_name} must be a string, not {other:?}"),
            )),
        }
    }
    if o.name.is_empty() {
        problems.push(Problem::new(
            file,
            format!("images[{index}] has no `name` (the image to override, e.g. ghcr.io/acme/web)"),
        ));
    } else {
        o.line = find_name_line(text, &o.name);
    }
    if let Some(digest) = &o.digest {
        let valid = digest.split_once(':').is_some_and(|(algo, hex)| {
            !algo.is_empty() && !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit())
        });
        if !valid {
            problems.push(Problem::at(
                file,
                o.line,
                None,
                format!("images[{index}].digest `{digest}` must look like sha256:<hex>"),
            ));
        }
    }
    if o.new_name.is_none() && o.new_tag.is_none() && o.digest.is_none() && !o.name.is_empty() {
        problems.push(Problem::at(
            file,
            o.line,
            None,
            format!("image `{}` sets none of newTag, newName or digest", o.name),
        ));
    }
    // Positions are attached now that the name (and so the line) is known.
    for p in &mut problems[before..] {
        if p.line.is_none() {
            p.line = o.line;
        }
    }
    (problems.len() == before).then_some(o)
}

/// Line of `name: <name>` in the text, for pointing at an entry.
fn find_name_line(text: &str, name: &str) -> Option<usize> {
    text.lines()
        .position(|line| {
            let t = line.trim_start().trim_start_matches("- ").trim_start();
            t.strip_prefix("name:")
                .map(|v| v.trim().trim_matches(['"', '\'']))
                .is_some_and(|v| v == name)
        })
        .map(|i| i + 1)
}

/// Applies the overrides to the containers of a pod-bearing object, marking
/// which overrides matched something.
pub(crate) fn apply_images(obj: &mut Object, overrides: &[ImageOverride], used: &mut [bool]) {
    let group = obj.group().to_string();
    let Some(spec) = pods::pod_spec_mut(&mut obj.manifest, &group, &obj.kind) else {
        return;
    };
    for container in pods::containers_mut(spec) {
        let Some(Value::String(image)) = container.get_mut("image") else {
            continue;
        };
        for (i, o) in overrides.iter().enumerate() {
            if let Some(new) = o.apply(image) {
                used[i] = true;
                *image = new;
                break;
            }
        }
    }
}

/// Problems for overrides that matched no image.
pub(crate) fn unused_problems(
    file: &str,
    overrides: &[ImageOverride],
    used: &[bool],
) -> Vec<Problem> {
    overrides
        .iter()
        .zip(used)
        .filter(|(_, used)| !**used)
        .map(|(o, _)| {
            Problem::at(
                file,
                o.line,
                None,
                format!(
                    "image `{}` matches no container image in any manifest; check the name (registry/repository, without tag) or remove the entry",
                    o.name
                ),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(
        name: &str,
        new_name: Option<&str>,
        tag: Option<&str>,
        digest: Option<&str>,
    ) -> ImageOverride {
        ImageOverride {
            name: name.into(),
            new_name: new_name.map(String::from),
            new_tag: tag.map(String::from),
            digest: digest.map(String::from),
            line: None,
        }
    }

    #[test]
    fn split_image_handles_ports_tags_and_digests() {
        let r = split_image("localhost:5000/app:1");
        assert_eq!(
            (r.name, r.tag, r.digest),
            ("localhost:5000/app", Some("1"), None)
        );
        let r = split_image("localhost:5000/app");
        assert_eq!((r.name, r.tag), ("localhost:5000/app", None));
        let r = split_image("nginx");
        assert_eq!((r.name, r.tag), ("nginx", None));
        let r = split_image("ghcr.io/a/b:1.2@sha256:abc");
        assert_eq!(
            (r.name, r.tag, r.digest),
            ("ghcr.io/a/b", Some("1.2"), Some("sha256:abc"))
        );
    }

    #[test]
    fn override_tag_name_digest() {
        assert_eq!(
            o("web", None, Some("2"), None).apply("web:1").as_deref(),
            Some("web:2")
        );
        assert_eq!(o("web", None, Some("2"), None).apply("webx:1"), None);
        assert_eq!(
            o("web", Some("reg.io/web"), None, None)
                .apply("web:1@sha256:aa")
                .as_deref(),
            Some("reg.io/web:1@sha256:aa")
        );
        assert_eq!(
            o("web", None, Some("2"), Some("sha256:ff"))
                .apply("web:1")
                .as_deref(),
            Some("web@sha256:ff")
        );
        assert_eq!(
            o("localhost:5000/app", None, Some("2"), None)
                .apply("localhost:5000/app:1")
                .as_deref(),
            Some("localhost:5000/app:2")
        );
        assert_eq!(
            o("localhost", None, Some("2"), None).apply("localhost:5000/app:1"),
            None
        );
    }

    #[test]
    fn parse_images_reports_bad_entries_with_lines() {
        let text = "images:\n  - name: a\n    newTag: \"1\"\n  - name: b\n    newtag: 2\n  - newTag: x\n  - name: c\n    newTag: 1.10\n  - name: d\n    digest: latest\n";
        let (ok, problems) = parse_images("d/images.yaml", text);
        assert_eq!(
            ok,
            vec![ImageOverride {
                line: Some(2),
                ..o("a", None, Some("1"), None)
            }]
        );
        let msgs: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 5, "{msgs:#?}");
        assert!(
            msgs[0].starts_with("d/images.yaml:4: images[1]: unknown key `newtag`"),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("images[2] has no `name`")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("d/images.yaml:7:") && m.contains("quote it")),
            "{msgs:#?}"
        );
        assert!(
            msgs.iter()
                .any(|m| m.starts_with("d/images.yaml:9:") && m.contains("sha256:<hex>")),
            "{msgs:#?}"
        );
    }

    #[test]
    fn parse_images_rejects_unknown_top_level_and_duplicates() {
        let (ok, problems) = parse_images("i.yaml", "image:\n  - name: a\n");
        assert!(ok.is_empty());
        assert!(problems[0].message.contains("unknown key `image`"));
        let (ok, problems) = parse_images(
            "i.yaml",
            "images:\n- name: a\n  newTag: '1'\n- name: a\n  newTag: '2'\n",
        );
        assert_eq!(ok.len(), 1);
        assert!(problems[0].message.contains("listed twice"));
        let (ok, problems) = parse_images("i.yaml", "images: [\n");
        assert!(ok.is_empty());
        assert!(problems[0].line.is_some());
    }
}
