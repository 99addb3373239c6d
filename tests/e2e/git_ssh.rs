//! End-to-end: a Channel on an SSH remote (real sshd on loopback) with its
//! credentials in a Secret, delivered by the real `kubemint run`; then a signed-
//! commit policy that stalls on an unsigned commit and names it.

use crate::fixture;
use crate::gitserver;
use crate::support;

use std::time::Duration;

use fixture::manifests::greeting;
use fixture::{channel, condition, install_crd, wait_applied, Operator};
use gitserver::{GitRepo, SshServer};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kubemint::controller::Channel;
use serde_json::json;
use support::wait_for;

#[tokio::test]
async fn ssh_channel_with_secret_and_signature_policy() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("gitssh").await;
    let server = SshServer::start();
    let upstream = GitRepo::new();
    let sha1 = upstream
        .write(&[("deploy/cm.yaml", &greeting("hello"))])
        .commit("first");
    let url = server.url(upstream.path());

    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "git-creds"},
        "stringData": {"identity": server.identity, "known_hosts": server.known_hosts}
    }))
    .unwrap();
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();

    let op = Operator::start(cluster.kubeconfig(), &ns);
    let channels: Api<Channel> = Api::namespaced(client.clone(), &ns);
    let spec = |verify: Option<serde_json::Value>| {
        let mut git = json!({"url": url, "ref": {"branch": "main"}, "path": "deploy",
                             "interval": "2s", "secretRef": {"name": "git-creds"}});
        if let Some(v) = verify {
            git["verify"] = v;
        }
        json!({"apiVersion": "kubemint.io/v1alpha1", "kind": "Channel",
               "metadata": {"name": "ssh", "namespace": ns}, "spec": {"git": git}})
    };
    let apply = |body: serde_json::Value| {
        let channels = channels.clone();
        async move {
            channels
                .patch(
                    "ssh",
                    &PatchParams::apply("kubemint-tests").force(),
                    &Patch::Apply(&body),
                )
                .await
                .expect("applying the Channel")
        }
    };
    apply(spec(None)).await;
    let ch = wait_applied(&client, &ns, "ssh", &sha1, &op).await;
    let applied = ch.status.unwrap().last_applied_commit.unwrap();
    assert_eq!(applied.reference.as_deref(), Some("refs/heads/main"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    assert_eq!(
        cms.get("greeting").await.unwrap().data.unwrap()["GREETING"],
        "hello"
    );

    // Require signed commits: the unsigned tip is not applied and the status names it.
    let signer = gitserver::SshSigningKey::generate();
    let keys: Secret = serde_json::from_value(json!({
        "metadata": {"name": "signers"},
        "stringData": {"allowed_signers": signer.allowed_signers("ada@example.com")}
    }))
    .unwrap();
    secrets.create(&PostParams::default(), &keys).await.unwrap();
    let sha2 = upstream
        .write(&[("deploy/cm.yaml", &greeting("unsigned"))])
        .commit("unsigned");
    apply(spec(Some(
        json!({"mode": "AllCommits", "secretRef": {"name": "signers"}}),
    )))
    .await;
    let message = wait_for(Duration::from_secs(60), || async {
        let ch = channel(&client, &ns, "ssh").await;
        condition(&ch, "Stalled")
            .filter(|c| c.0 == "True" && c.1 == "SignatureVerificationFailed")
            .map(|c| c.2)
    })
    .await;
    assert!(message.contains(&sha2), "{message}");
    assert_eq!(
        cms.get("greeting").await.unwrap().data.unwrap()["GREETING"],
        "hello"
    );

    // A signed commit on top: still stalled (AllCommits covers the unsigned one since sha1).
    let key = signer.key_path().display().to_string();
    upstream.git(&["config", "gpg.format", "ssh"]);
    upstream.git(&["config", "user.signingkey", &key]);
    let sha3 = upstream
        .write(&[("deploy/cm.yaml", &greeting("signed"))])
        .commit_with("signed", &["-S"]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let ch = channel(&client, &ns, "ssh").await;
    let stalled = condition(&ch, "Stalled").expect("still stalled");
    assert!(stalled.2.contains(&sha2), "{stalled:?}");

    // HEAD mode: the signed tip is enough.
    apply(spec(Some(
        json!({"mode": "HEAD", "secretRef": {"name": "signers"}}),
    )))
    .await;
    wait_applied(&client, &ns, "ssh", &sha3, &op).await;
    assert_eq!(
        cms.get("greeting").await.unwrap().data.unwrap()["GREETING"],
        "signed"
    );
    let log = op.log_text();
    assert!(
        !log.contains("OPENSSH PRIVATE KEY"),
        "the identity leaked into the log"
    );
}
