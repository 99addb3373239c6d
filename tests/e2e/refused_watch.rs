//! End-to-end (issue 18): a channel whose ServiceAccount may not list and
//! watch what the channel needs (here Secrets: kubemint watches the Secret
//! copies it mints) is `Stalled`, reason `Forbidden`, naming the account, the
//! verb and the resource; its refused watches back off instead of being retried
//! every second (counted in the API server's audit log); and once the
//! RoleBinding is fixed, a sync request delivers the commit.

use crate::fixture;
use crate::support;

use std::time::Duration;

use fixture::release::workload;
use fixture::tenancy::{deployer_rules, service_account};
use fixture::{
    apply_channel_with, condition, install_crd, request, wait_applied, wait_refused, GitRepo,
    Operator,
};
use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

/// Requests the API server refused (403) to `user`, impersonated, received in `[from, to)`.
fn refused_requests(
    log: &std::path::Path,
    user: &str,
    from: Timestamp,
    to: Timestamp,
) -> Vec<String> {
    let text = std::fs::read_to_string(log).expect("reading the audit log");
    let mut seen = std::collections::HashSet::new();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["stage"] == "ResponseComplete")
        .filter(|e| e["impersonatedUser"]["username"] == user)
        .filter(|e| e["responseStatus"]["code"] == 403)
        .filter(|e| {
            let at: Option<Timestamp> = e["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse().ok());
            at.is_some_and(|at| at >= from && at < to)
        })
        .filter(|e| seen.insert(e["auditID"].as_str().unwrap_or_default().to_string()))
        .map(|e| {
            format!(
                "{} {} {}",
                e["requestReceivedTimestamp"].as_str().unwrap_or_default(),
                e["verb"].as_str().unwrap_or_default(),
                e["requestURI"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[tokio::test]
async fn a_refused_watch_stalls_the_channel_backs_off_and_delivers_once_the_role_binding_is_fixed()
{
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("refused-watch").await;
    // Everything the channel delivers, but no Secrets.
    let rules = json!([
        {"apiGroups": ["apps", "batch"], "resources": ["*"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["configmaps", "services", "pods", "pods/log"], "verbs": ["*"]}
    ]);
    service_account(&client, &ns, "deployer", rules).await;
    let repo = GitRepo::new();
    let sha = repo
        .write(&workload("web", "nginx:1.0", "one"))
        .commit("web 1.0");
    let op = Operator::start_with(cluster.kubeconfig(), &ns, "", &[]);
    let start = Timestamp::now();
    let spec = json!({"serviceAccountName": "deployer"});
    apply_channel_with(&client, &ns, "web", &repo.url(), ".", spec).await;

    let message = wait_refused(&client, &ns, "web", "Forbidden", &op).await;
    for part in [
        format!("ServiceAccount {ns}/deployer may not list and watch secrets in namespace {ns}"),
        format!("system:serviceaccount:{ns}:deployer"),
        ".yaml: ".to_string(),
    ] {
        assert!(message.contains(&part), "{part:?} not in {message:?}");
    }
    let ch = fixture::channel(&client, &ns, "web").await;
    assert_eq!(condition(&ch, "Stalled").expect("Stalled").0, "True");

    // The channel passes every 2 s (its interval); its refused watch does not.
    let user = format!("system:serviceaccount:{ns}:deployer");
    let minute = Duration::from_secs(60);
    let after_one = start.checked_add(minute).unwrap();
    let after_two = after_one.checked_add(minute).unwrap();
    let wait = after_two.duration_since(Timestamp::now()).as_secs_f64() + 2.0;
    tokio::time::sleep(Duration::from_secs_f64(wait.max(0.0))).await;
    let log = cluster.audit_log();
    let first = refused_requests(&log, &user, start, after_one);
    let second = refused_requests(&log, &user, after_one, after_two);
    println!(
        "refused requests: {} in the first minute, {} in the second",
        first.len(),
        second.len()
    );
    assert!(!first.is_empty(), "the watch was refused at least once");
    assert!(
        second.len() <= 10,
        "{} refused requests in the second minute:\n{}",
        second.len(),
        second.join("\n")
    );

    // The RoleBinding is fixed: a sync request retries the watch at once and delivers.
    service_account(&client, &ns, "deployer", deployer_rules()).await;
    request(&client, &ns, "web", "kubemint.io/reconcile").await;
    wait_applied(&client, &ns, "web", &sha, &op).await;
}

#[tokio::test]
async fn a_service_the_account_may_not_list_is_refused_naming_its_file() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("refused-list").await;
    // Everything but Services.
    let rules = json!([
        {"apiGroups": ["apps", "batch"], "resources": ["*"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["configmaps", "secrets", "pods"], "verbs": ["*"]}
    ]);
    service_account(&client, &ns, "deployer", rules).await;
    let repo = GitRepo::new();
    repo.write(&workload("web", "nginx:1.0", "one"))
        .commit("web 1.0");
    let op = Operator::start_with(cluster.kubeconfig(), &ns, "", &[]);
    let spec = json!({"serviceAccountName": "deployer"});
    apply_channel_with(&client, &ns, "web", &repo.url(), ".", spec).await;
    let message = wait_refused(&client, &ns, "web", "Forbidden", &op).await;
    assert!(
        message.starts_with(&format!(
            "web/service.yaml: Service/{ns}/web rejected by the API server: "
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!("system:serviceaccount:{ns}:deployer"))
            // The commit's own read of the Services it pins (a get) or the watch (a list).
            && (message.contains("cannot get resource \"services\"")
                || message.contains("cannot list resource \"services\"")),
        "{message}"
    );
    let ch = fixture::channel(&client, &ns, "web").await;
    assert_eq!(condition(&ch, "Stalled").expect("Stalled").0, "True");
}
