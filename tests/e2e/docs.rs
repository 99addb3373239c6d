//! Every Channel in a yaml block of README.md and docs/*.md is accepted by a
//! real API server: a server-side apply dry run with strict field validation,
//! so a field the CRD does not have (a typo, a field renamed since) fails with
//! the page and line of the example. Blocks marked `<!-- not-run: reason -->`
//! are left out (see `tests/docs/markdown.rs`).

use crate::fixture::install_crd;
use crate::markdown::{blocks, channels};
use crate::support;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, ValidationDirective};
use kubemint::api::Channel;

#[tokio::test]
async fn every_documented_channel_is_accepted_by_the_api_server() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    // The examples name namespaces of their own (shop, shop-dev, ...); a dry
    // run needs one that exists, and this test's keeps it apart from others.
    let namespace = cluster.namespace("docs").await;
    let resource = ApiResource::erase::<Channel>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &resource);
    let params = PatchParams::apply("kubemint-docs-test")
        .dry_run()
        .validation(ValidationDirective::Strict);
    let docs = channels(&blocks());
    assert!(docs.len() >= 4, "only {} Channels found", docs.len());
    let mut failures = Vec::new();
    for doc in docs {
        let mut object: serde_json::Value = serde_json::to_value(&doc.value).expect("YAML as JSON");
        object["metadata"]["namespace"] = namespace.clone().into();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: the Channel has no name", doc.place))
            .to_string();
        if let Err(e) = api.patch(&name, &params, &Patch::Apply(&object)).await {
            failures.push(format!("{}: {e}", doc.place));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
