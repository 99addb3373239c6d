//! The documentation is checked against the code: `docs/reference.md` is what
//! `kubemint reference` generates.

#[test]
fn the_reference_is_up_to_date() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reference.md");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = kubemint::cli::reference::markdown();
    assert!(
        committed == generated,
        "docs/reference.md is out of date: run `{}`",
        kubemint::cli::reference::REGENERATE
    );
}
