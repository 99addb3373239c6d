//! The fenced blocks of the project's Markdown (README.md and docs/*.md), as
//! the docs tests read them: the Channel documents of yaml blocks, and the
//! `kubemint ...` command lines of shell blocks.
//!
//! A block that is deliberately not runnable is marked by an HTML comment on
//! the last non-blank line before its fence, which readers of the rendered
//! page do not see but readers of the source do:
//!
//! ```text
//! <!-- not-run: the reason, in words -->
//! ```
//!
//! Its Channels and commands are then left out, and the tests say which.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// One fenced block.
pub struct Block {
    /// The file, relative to the repository (`docs/releases.md`).
    pub file: String,
    /// The line of the opening fence, from 1.
    pub line: usize,
    /// The info string (`yaml`, `sh`, or empty).
    pub info: String,
    /// The lines between the fences, without the fence's indentation.
    pub text: String,
    /// The reason given by a `<!-- not-run: reason -->` marker, if any.
    pub not_run: Option<String>,
}

impl Block {
    /// `file:line`, for messages.
    pub fn place(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    fn is_shell(&self) -> bool {
        matches!(
            self.info.as_str(),
            "sh" | "shell" | "bash" | "console" | "shell-session"
        )
    }
}

/// The repository's root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, in path order.
pub fn pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("reading docs/")
        .map(|e| e.expect("reading docs/").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    pages.insert(0, root().join("README.md"));
    pages
}

/// Every fenced block of every page.
pub fn blocks() -> Vec<Block> {
    let mut blocks = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{page:?}: {e}"));
        let file = page
            .strip_prefix(root())
            .unwrap_or(&page)
            .to_string_lossy()
            .into_owned();
        blocks.extend(parse(&file, &text));
    }
    blocks
}

/// The fenced blocks of one page.
pub fn parse(file: &str, text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut last_text_line = "";
    // The block being read, and the indentation of its opening fence.
    let mut open: Option<(Block, usize)> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        match &mut open {
            None if trimmed.starts_with("```") => {
                let block = Block {
                    file: file.to_string(),
                    line: index + 1,
                    info: trimmed.trim_start_matches('`').trim().to_string(),
                    text: String::new(),
                    not_run: marker(last_text_line),
                };
                open = Some((block, line.len() - trimmed.len()));
            }
            None => {
                if !line.trim().is_empty() {
                    last_text_line = line;
                }
            }
            Some(_) if trimmed.trim_end() == "```" => {
                let (mut block, _) = open.take().unwrap();
                if block.text.ends_with('\n') {
                    block.text.pop();
                }
                blocks.push(block);
                last_text_line = "";
            }
            Some((block, indent)) => {
                let strip = line.len() - trimmed.len();
                block.text.push_str(&line[strip.min(*indent)..]);
                block.text.push('\n');
            }
        }
    }
    assert!(open.is_none(), "{file}: a fenced block is never closed");
    blocks
}

/// The reason of a `<!-- not-run: reason -->` line.
fn marker(line: &str) -> Option<String> {
    let inner = line
        .trim()
        .strip_prefix("<!--")?
        .strip_suffix("-->")?
        .trim();
    let reason = inner.strip_prefix("not-run:")?.trim();
    assert!(
        !reason.is_empty(),
        "a not-run marker gives its reason: {line}"
    );
    Some(reason.to_string())
}

/// A document of a yaml block whose `kind` is `Channel`.
pub struct ChannelDoc {
    /// Where: `file:line #n` (the n-th document of the block, from 1).
    pub place: String,
    /// The document as written.
    pub value: serde_yaml::Value,
}

/// Every Channel of every yaml block that is not marked not-run.
pub fn channels(blocks: &[Block]) -> Vec<ChannelDoc> {
    let mut docs = Vec::new();
    for block in blocks {
        if !matches!(block.info.as_str(), "yaml" | "yml") || block.not_run.is_some() {
            continue;
        }
        for (n, doc) in serde_yaml::Deserializer::from_str(&block.text).enumerate() {
            let value = <serde_yaml::Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: the yaml does not parse: {e}", block.place()));
            if value.get("kind").and_then(serde_yaml::Value::as_str) == Some("Channel") {
                docs.push(ChannelDoc {
                    place: format!("{} #{}", block.place(), n + 1),
                    value,
                });
            }
        }
    }
    docs
}

/// One `kubemint` command line of a block.
pub struct CommandLine {
    /// `file:line` of the block.
    pub place: String,
    /// The line as written.
    pub text: String,
    /// Its words, `kubemint` first (`cargo run -- plan x` is `kubemint plan x`),
    /// without a trailing comment or what follows a pipe, `&&`, `;` or a redirection.
    pub words: Vec<String>,
}

/// Every `kubemint ...` (or `cargo run -- ...`) line of the shell blocks, and
/// every `$ kubemint ...` line of any block, that is not marked not-run.
pub fn command_lines(blocks: &[Block]) -> Vec<CommandLine> {
    let mut lines = Vec::new();
    for block in blocks.iter().filter(|b| b.not_run.is_none()) {
        let mut pending = String::new();
        for line in block.text.lines() {
            // A trailing backslash continues the command on the next line.
            if let Some(start) = line.trim_end().strip_suffix('\\') {
                pending.push_str(start);
                continue;
            }
            let line = std::mem::take(&mut pending) + line;
            let command = line.trim();
            let command = match command.strip_prefix("$ ") {
                Some(prompted) => prompted,
                None if block.is_shell() => command,
                None => continue,
            };
            let command = ["cargo run -q -- ", "cargo run -- "]
                .iter()
                .find_map(|p| {
                    command
                        .strip_prefix(p)
                        .map(|rest| format!("kubemint {rest}"))
                })
                .unwrap_or_else(|| command.to_string());
            if !command.starts_with("kubemint ") {
                continue;
            }
            let words = shlex::split(&without_comment(&command))
                .unwrap_or_else(|| panic!("{}: cannot split `{command}`", block.place()));
            let end = words
                .iter()
                .position(|w| matches!(w.as_str(), "|" | "||" | "&&" | ";" | ">" | "2>"))
                .unwrap_or(words.len());
            lines.push(CommandLine {
                place: block.place(),
                text: command.clone(),
                words: words[..end].to_vec(),
            });
        }
    }
    lines
}

/// `line` up to a `#` that starts a shell comment (after a blank, outside quotes).
pub fn without_comment(line: &str) -> String {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if c == q => quote = None,
            (None, '#') if previous.is_whitespace() => return line[..i].to_string(),
            _ => {}
        }
        previous = c;
    }
    line.to_string()
}
