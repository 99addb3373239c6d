//! The documentation is checked against the code: `docs/reference.md` is what
//! `kubemint reference` generates, every Channel in a yaml block of README.md
//! and docs/*.md is a valid `kubemint::api::Channel` (the API server's strict
//! check of the same documents is `tests/e2e/docs.rs`), every `kubemint ...`
//! command line of a shell block parses, and every `kubemint plan examples/...`
//! line runs and exits 0. A block that is deliberately not runnable carries
//! `<!-- not-run: reason -->` on the line before its fence (see
//! `tests/docs/markdown.rs`).

use std::process::Command;

use clap::Parser as _;
use kubemint::api::Channel;
use kubemint::cli::args::Cli;

use crate::markdown::{self, blocks, channels, command_lines, parse, without_comment};

#[test]
fn the_reference_is_up_to_date() {
    let path = markdown::root().join("docs/reference.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = kubemint::cli::reference::markdown();
    assert!(
        committed == generated,
        "docs/reference.md is out of date: run `{}`",
        kubemint::cli::reference::REGENERATE
    );
}

#[test]
fn every_documented_channel_deserializes() {
    let docs = channels(&blocks());
    // The README's first release and the pages' examples, at least.
    assert!(docs.len() >= 4, "only {} Channels found", docs.len());
    let mut failures = Vec::new();
    for doc in &docs {
        if let Err(e) = serde_yaml::from_value::<Channel>(doc.value.clone()) {
            failures.push(format!("{}: {e}", doc.place));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_documented_command_line_parses() {
    let lines = command_lines(&blocks());
    assert!(
        lines.len() >= 20,
        "only {} command lines found",
        lines.len()
    );
    let mut failures = Vec::new();
    for line in &lines {
        if let Err(e) = Cli::try_parse_from(&line.words) {
            failures.push(format!("{}: `{}`:\n{e}", line.place, line.text));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_documented_plan_of_an_example_runs() {
    let plans: Vec<_> = command_lines(&blocks())
        .into_iter()
        .filter(|l| l.words.get(1).is_some_and(|w| w == "plan"))
        .filter(|l| l.words.get(2).is_some_and(|w| w.starts_with("examples/")))
        .collect();
    assert!(
        plans
            .iter()
            .any(|l| l.words[..] == ["kubemint", "plan", "examples/shop"]),
        "the README's first command is `cargo run -- plan examples/shop`"
    );
    for line in plans {
        let out = Command::new(env!("CARGO_BIN_EXE_kubemint"))
            .args(&line.words[1..])
            .current_dir(markdown::root())
            .output()
            .expect("running kubemint");
        assert!(
            out.status.success(),
            "{}: `{}` exited {}:\n{}",
            line.place,
            line.text,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// What `kubemint plan examples/...` prints where a page shows it after a
/// `$ ` prompt, line for line (kustomize's version line aside: it is the
/// installed kustomize's).
#[test]
fn documented_plan_output_is_what_plan_prints() {
    let mut shown = 0;
    for block in blocks().iter().filter(|b| b.not_run.is_none()) {
        let mut lines = block.text.lines();
        let Some(command) = lines
            .next()
            .and_then(|l| l.strip_prefix("$ kubemint plan examples/"))
        else {
            continue;
        };
        let out = Command::new(env!("CARGO_BIN_EXE_kubemint"))
            .arg("plan")
            .arg(format!("examples/{command}"))
            .current_dir(markdown::root())
            .output()
            .expect("running kubemint");
        let printed = String::from_utf8_lossy(&out.stdout);
        let keep = |l: &&str| !l.starts_with("Built   with kustomize");
        let expected: Vec<&str> = lines.filter(keep).collect();
        let actual: Vec<&str> = printed.lines().filter(keep).collect();
        assert_eq!(
            expected,
            actual,
            "{}: the output shown is not what `kubemint plan examples/{command}` prints",
            block.place()
        );
        shown += 1;
    }
    assert!(
        shown >= 2,
        "the README shows plan's output of examples/shop"
    );
}

#[test]
fn blocks_markers_and_command_lines_are_read_as_written() {
    let page = "text\n\n<!-- not-run: needs a forge -->\n```sh\nkubemint revert shop --push\n```\n\n- item\n\n  ```sh\n  cargo run -- plan examples/shop   # the main job\n  kubemint diff shop -n 'a b' | less\n  kubemint revert shop \\\n    --push\n  git log\n  ```\n\n```\n$ kubemint status app\nChannel app\n```\n";
    let blocks = parse("x.md", page);
    assert_eq!(blocks.len(), 3);
    assert_eq!(blocks[0].not_run.as_deref(), Some("needs a forge"));
    assert_eq!(blocks[1].not_run, None);
    assert_eq!(blocks[1].line, 10);
    let lines = command_lines(&blocks);
    let words: Vec<Vec<String>> = lines.iter().map(|l| l.words.clone()).collect();
    let expected: Vec<Vec<&str>> = vec![
        vec!["kubemint", "plan", "examples/shop"],
        vec!["kubemint", "diff", "shop", "-n", "a b"],
        vec!["kubemint", "revert", "shop", "--push"],
        vec!["kubemint", "status", "app"],
    ];
    assert_eq!(words, expected);
    assert_eq!(without_comment("a '#b' # c"), "a '#b' ");
}
