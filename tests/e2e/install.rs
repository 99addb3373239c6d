//! The install manifests a user applies (`manifests/install.yaml` and the CRD)
//! are accepted by a real API server: a server-side dry run of every object.

use crate::support;

use std::path::Path;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use kube::ResourceExt;
use serde::Deserialize;

fn documents(file: &str) -> Vec<DynamicObject> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let text = std::fs::read_to_string(&path).expect("reading the manifest");
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| DynamicObject::deserialize(doc).unwrap_or_else(|e| panic!("{file}: {e}")))
        .collect()
}

#[tokio::test]
async fn install_manifests_are_accepted_by_the_api_server() {
    let client = support::cluster().client().await;
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let mut objects = documents("manifests/crds/channel.yaml");
    objects.extend(documents("manifests/install.yaml"));
    let kinds: Vec<String> = objects
        .iter()
        .map(|o| o.types.as_ref().unwrap().kind.clone())
        .collect();
    for kind in [
        "CustomResourceDefinition",
        "Namespace",
        "ServiceAccount",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no {kind} in the install manifests"
        );
    }
    for object in objects {
        let types = object.types.clone().unwrap();
        let gvk = kube::api::GroupVersionKind::try_from(&types).unwrap();
        let (resource, caps) = discovery
            .resolve_gvk(&gvk)
            .unwrap_or_else(|| panic!("the API server does not know {gvk:?}"));
        let name = object.name_any();
        let api: Api<DynamicObject> = match (caps.scope, object.namespace()) {
            (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), &ns, &resource),
            (Scope::Namespaced, None) => panic!("{} {name} has no namespace", types.kind),
            (Scope::Cluster, _) => Api::all_with(client.clone(), &resource),
        };
        // The namespace is created for real so that the dry runs inside it can be checked.
        let mut params = PatchParams::apply("kubemint-install-test").force();
        if types.kind != "Namespace" {
            params = params.dry_run();
        }
        api.patch(&name, &params, &Patch::Apply(&object))
            .await
            .unwrap_or_else(|e| panic!("{} {name} rejected: {e}", types.kind));
    }
}

/// The API server warns about nothing in the install manifests (1.37 warns,
/// for one, about OpenAPI formats it does not know, such as `uint32`), as
/// kubectl, which prints the server's `Warning` headers, shows a user.
#[tokio::test]
async fn install_manifests_draw_no_warnings() {
    let cluster = support::cluster();
    for file in ["manifests/crds/channel.yaml", "manifests/install.yaml"] {
        let out = std::process::Command::new(&cluster.kubectl)
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args(["apply", "--server-side", "--dry-run=server", "-f"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
            .output()
            .expect("running kubectl");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{file}: {stderr}");
        assert!(!stderr.contains("Warning"), "{file}: {stderr}");
    }
}
