//! `kubemint reference`: the reference page `docs/reference.md`, generated
//! from the two definitions it describes, so that it cannot drift from them:
//! the Channel's openAPIV3Schema (from [`Channel::crd`]) and the command line
//! (from [`Cli`] through [`clap::CommandFactory`]). The output depends on
//! nothing else (no version, no date, sorted fields), so a test can compare
//! it with the checked-in page.

use std::fmt::Write as _;

use clap::CommandFactory;
use kube::CustomResourceExt;
use serde_json::Value;

use super::args::Cli;
use crate::api::Channel;

/// The command that regenerates the page, as the page and its test say it.
pub const REGENERATE: &str = "cargo run -q -- reference > docs/reference.md";

/// The whole page, Markdown.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str("# Reference\n\n");
    let _ = writeln!(
        out,
        "Generated from the code; do not edit. Regenerate with `{REGENERATE}`\n\
         (a test fails when this page is out of date).\n"
    );
    out.push_str("- [The Channel resource](#the-channel-resource)\n");
    out.push_str("  - [spec](#spec)\n  - [status](#status)\n");
    out.push_str("- [The kubemint command](#the-kubemint-command)\n");
    let cli = cli();
    for command in visible(&cli) {
        let name = command.get_name();
        let _ = writeln!(out, "  - [kubemint {name}](#kubemint-{name})");
    }
    out.push('\n');
    channel(&mut out);
    commands(&mut out, &cli);
    out
}

/// The Channel section: every field of `spec` and `status`.
fn channel(out: &mut String) {
    let crd = Channel::crd();
    out.push_str("## The Channel resource\n\n");
    let _ = writeln!(
        out,
        "`{}/{}`, kind `{}`, namespaced (short name `chan`). One row per field: its path, \
         its type (`required` where the API server requires it), the default the API server \
         fills in, and what it means.\n",
        crd.spec.group,
        crd.spec
            .versions
            .first()
            .map(|v| v.name.as_str())
            .unwrap_or_default(),
        crd.spec.names.kind,
    );
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref())
        .map(|s| serde_json::to_value(s).unwrap_or(Value::Null))
        .unwrap_or(Value::Null);
    for part in ["spec", "status"] {
        let _ = writeln!(out, "### {part}\n");
        let _ = writeln!(
            out,
            "{}\n",
            one_line(text(&schema["properties"][part], "description"))
        );
        out.push_str("| field | type | default | description |\n|---|---|---|---|\n");
        let mut rows = Vec::new();
        fields(&schema["properties"][part], part, &mut rows);
        for row in rows {
            out.push_str(&row);
        }
        out.push('\n');
    }
}

/// One row per field under `schema` (an object's properties, an array's items), depth first.
fn fields(schema: &Value, path: &str, rows: &mut Vec<String>) {
    let object = if schema["type"] == "array" {
        &schema["items"]
    } else {
        schema
    };
    let required: Vec<&str> = object["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = object["properties"].as_object() else {
        return;
    };
    let prefix = if schema["type"] == "array" {
        format!("{path}[]")
    } else {
        path.to_string()
    };
    for (name, field) in properties {
        let field_path = format!("{prefix}.{name}");
        rows.push(format!(
            "| `{field_path}` | {} | {} | {} |\n",
            type_of(field, required.contains(&name.as_str())),
            field
                .get("default")
                .map(|d| format!("`{}`", cell(&default_value(d))))
                .unwrap_or_default(),
            cell(&one_line(text(field, "description"))),
        ));
        fields(field, &field_path, rows);
    }
}

/// A default as a user writes it: `5m` rather than `"5m"`; objects as JSON.
fn default_value(value: &Value) -> String {
    match value.as_str() {
        Some(text) if !text.is_empty() => text.to_string(),
        _ => value.to_string(),
    }
}

/// A field's type as the table says it: `integer (int64, 0 to 1)`, `array of object`,
/// the allowed values of an enum, `required` where it is.
fn type_of(field: &Value, required: bool) -> String {
    let mut kind = match text(field, "type") {
        "array" => format!("array of {}", text(&field["items"], "type")),
        "" => "any".to_string(),
        other => other.to_string(),
    };
    let mut notes = Vec::new();
    if let Some(format) = field["format"].as_str() {
        notes.push(format.to_string());
    }
    match (field["minimum"].as_f64(), field["maximum"].as_f64()) {
        (Some(min), Some(max)) => notes.push(format!("{min} to {max}")),
        (Some(min), None) => notes.push(format!("at least {min}")),
        (None, Some(max)) => notes.push(format!("at most {max}")),
        (None, None) => {}
    }
    if let Some(values) = field["enum"].as_array() {
        let values: Vec<String> = values
            .iter()
            .map(|v| {
                format!(
                    "`{}`",
                    v.as_str().map_or_else(|| v.to_string(), str::to_string)
                )
            })
            .collect();
        notes.push(format!("one of {}", values.join(", ")));
    }
    if !notes.is_empty() {
        let _ = write!(kind, " ({})", notes.join("; "));
    }
    if required {
        kind.push_str(", required");
    }
    cell(&kind)
}

/// The commands section: every command that is not hidden, with its arguments.
fn commands(out: &mut String, cli: &clap::Command) {
    out.push_str("## The kubemint command\n\n");
    let _ = writeln!(
        out,
        "{}. Every flag with an environment variable can be set by it instead \
         (the flag wins). Exit status: 0 when the command did what was asked, 1 on an \
         error; `kubemint diff` follows `kubectl diff` (0 no changes, 1 changes, 2 an \
         error or a refusal).\n",
        cli.get_about().map(ToString::to_string).unwrap_or_default()
    );
    for command in visible(cli) {
        let _ = writeln!(out, "### kubemint {}\n", command.get_name());
        let about = command
            .get_long_about()
            .or_else(|| command.get_about())
            .map(ToString::to_string)
            .unwrap_or_default();
        let _ = writeln!(out, "{}\n", about.trim());
        let usage = command.clone().render_usage().to_string();
        let usage = usage.trim_start_matches("Usage: ");
        let _ = writeln!(out, "```text\n{usage}\n```\n");
        let arguments: Vec<&clap::Arg> = command
            .get_arguments()
            .filter(|a| !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version"))
            .collect();
        if arguments.is_empty() {
            continue;
        }
        out.push_str("| argument | environment | default | description |\n|---|---|---|---|\n");
        for arg in arguments {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                cell(&argument(arg)),
                arg.get_env()
                    .map(|e| format!("`{}`", e.to_string_lossy()))
                    .unwrap_or_default(),
                cell(&default_of(arg)),
                cell(&help_of(arg)),
            );
        }
        out.push('\n');
    }
}

/// The command line, built as `kubemint` parses it (so usages read `kubemint run ...`).
fn cli() -> clap::Command {
    let mut cli = Cli::command();
    cli.build();
    cli
}

/// The subcommands a user sees in `kubemint --help`.
fn visible(cli: &clap::Command) -> Vec<&clap::Command> {
    cli.get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .collect()
}

/// How an argument is written: `<TARGET>`, `--path <PATH>`, `-n, --namespace <NAMESPACE>`.
fn argument(arg: &clap::Arg) -> String {
    let value = arg
        .get_value_names()
        .map(|names| {
            names
                .iter()
                .map(|n| format!("<{n}>"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| format!("<{}>", arg.get_id().as_str().to_uppercase()));
    if arg.is_positional() {
        return format!(
            "`{value}`{}",
            if arg.is_required_set() {
                ""
            } else {
                " (optional)"
            }
        );
    }
    let long = arg
        .get_long()
        .map(|l| {
            format!(
                "--{l}{}",
                if takes_value(arg) {
                    format!(" {value}")
                } else {
                    String::new()
                }
            )
        })
        .unwrap_or_default();
    match arg.get_short() {
        Some(short) => format!("`-{short}, {long}`"),
        None => format!("`{long}`"),
    }
}

/// Whether an argument takes a value (a flag such as `--push` does not).
fn takes_value(arg: &clap::Arg) -> bool {
    arg.get_num_args().is_some_and(|n| n.takes_values())
}

/// The default of an argument, as it is typed.
fn default_of(arg: &clap::Arg) -> String {
    let defaults: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|d| d.to_string_lossy().into_owned())
        // A flag's implicit `false` is no default worth a cell.
        .filter(|d| d != "false" || takes_value(arg))
        .collect();
    if defaults.is_empty() {
        String::new()
    } else {
        format!("`{}`", defaults.join(" "))
    }
}

/// The help text, with the values an argument accepts when they are a fixed set.
fn help_of(arg: &clap::Arg) -> String {
    let mut help = arg
        .get_long_help()
        .or_else(|| arg.get_help())
        .map(|h| one_line(&h.to_string()))
        .unwrap_or_default();
    let values: Vec<String> = arg
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| format!("`{}`", v.get_name()))
        .collect();
    if !values.is_empty() && takes_value(arg) {
        let _ = write!(help, " (one of {})", values.join(", "));
    }
    help
}

/// A string property of a schema, or "".
fn text<'v>(schema: &'v Value, key: &str) -> &'v str {
    schema[key].as_str().unwrap_or_default()
}

/// Text on one line: a table cell cannot hold a line break.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Text safe inside a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_and_every_command_has_a_row() {
        let page = markdown();
        for row in [
            "| `spec.git.url` | string, required |",
            "| `spec.rollout.drainSeconds` | integer (int64; at least 0) | `30` |",
            "| `spec.git.verify.mode` | string (one of `HEAD`, `AllCommits`) | `HEAD` |",
            "| `status.inventory.entries[].kind` | string, required |",
            "| `--cache-dir <CACHE_DIR>` | `KUBEMINT_CACHE_DIR` | `/var/cache/kubemint` |",
            "| `-n, --namespace <NAMESPACE>` |  |  | Its namespace",
            "### kubemint plan",
            "```text\nkubemint plan [OPTIONS] <TARGET>\n```",
        ] {
            assert!(page.contains(row), "missing {row:?} in:\n{page}");
        }
        assert!(
            !page.contains("### kubemint reference"),
            "the hidden command is not documented"
        );
    }

    #[test]
    fn cells_keep_to_one_line() {
        assert_eq!(cell(&one_line("a |\n  b")), "a \\| b");
        assert_eq!(markdown(), markdown(), "the page is deterministic");
    }
}
