//! Browser tests of the UI the operator serves to a team (`kubemint run --ui`):
//! sign-in with a ServiceAccount token, what RBAC lets it see, an action
//! refused without its verb and done with it, and cross-site requests
//! refused. Its own test binary: the operator here watches every namespace.

use crate::browser;
use crate::fixture;
use crate::support;

use std::time::Duration;

use browser::Browser;
use fixture::{apply_channel_with, install_crd, Operator};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, PostParams};
use kube::Client;
use kubemint::controller::Channel;
use serde_json::json;
use support::wait_for;

/// A ServiceAccount `name` in `ns` that may `verbs` channels there; returns its token.
async fn account(client: &Client, ns: &str, name: &str, verbs: &[&str]) -> String {
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": name},
        "rules": [{"apiGroups": ["kubemint.io"], "resources": ["channels"], "verbs": verbs}]
    }))
    .unwrap();
    Api::<Role>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    fixture::service_account_token(client, ns, name).await
}

/// The CSRF token in a page's forms.
fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF token")
        + 19;
    html[at..].split('"').next().unwrap().to_string()
}

async fn reconcile_annotation(client: &Client, ns: &str, name: &str) -> Option<String> {
    let ch = Api::<Channel>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .unwrap();
    ch.metadata
        .annotations?
        .get(kubemint::api::RECONCILE_ANNOTATION)
        .cloned()
}

#[tokio::test]
async fn signed_in_tokens_see_and_do_only_what_rbac_allows() {
    // Its operator watches every namespace.
    let _alone = crate::CONTROL_PLANE.write().await;
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns_a = cluster.namespace("teama").await;
    let ns_b = cluster.namespace("teamb").await;
    let suspended = json!({"suspend": true});
    let url = "https://github.com/acme/deploy.git";
    apply_channel_with(&client, &ns_a, "alpha", url, ".", suspended.clone()).await;
    apply_channel_with(&client, &ns_b, "beta", url, ".", suspended).await;
    let viewer = account(&client, &ns_a, "viewer", &["get", "list", "watch"]).await;
    let deployer = account(
        &client,
        &ns_a,
        "deployer",
        &["get", "list", "watch", "patch"],
    )
    .await;
    let op = Operator::start_cluster_wide(cluster.kubeconfig(), "ui-auth", &["--ui"]);
    let base = format!("http://{}", op.http_addr().await);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Without a token: the sign-in page, for pages and live fragments alike.
    let mut b = Browser::start();
    b.open("viewer", &format!("{base}/ui/")).await;
    b.wait_text("viewer", "h1", "Sign in").await;
    let response = http
        .get(format!("{base}/ui/?fragment=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    b.screenshot("viewer", "sign-in").await;
    let violations = b.axe("viewer").await;
    assert!(violations.is_empty(), "{violations:#?}");

    // A wrong token is refused; the viewer's token shows namespace A only.
    b.call(json!({"op": "fill", "name": "viewer", "selector": "#token", "value": "not-a-token"}))
        .await;
    b.call(json!({"op": "submit", "name": "viewer", "selector": "button[type=submit]"}))
        .await;
    b.wait_text("viewer", "[role=alert]", "not accepted").await;
    b.call(json!({"op": "fill", "name": "viewer", "selector": "#token", "value": viewer}))
        .await;
    b.call(json!({"op": "submit", "name": "viewer", "selector": "button[type=submit]"}))
        .await;
    b.wait_text("viewer", "h1", "Channels").await;
    b.wait_text("viewer", "tbody th", "alpha").await;
    assert_eq!(b.texts("viewer", "tbody th").await, ["alpha"]);
    assert_eq!(
        b.count("viewer", &format!("h2:has-text(\"{ns_b}\")")).await,
        0
    );
    b.wait_text(
        "viewer",
        "header",
        &format!("system:serviceaccount:{ns_a}:viewer"),
    )
    .await;
    let violations = b.axe("viewer").await;
    assert!(violations.is_empty(), "{violations:#?}");
    b.call(json!({"op": "goto", "name": "viewer", "url": format!("{base}/ui/{ns_b}/beta")}))
        .await;
    b.wait_text("viewer", "main", "No channel").await;
    // An auth proxy's Authorization header works the same.
    let page = http
        .get(format!("{base}/ui/"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(">alpha</a>") && !page.contains("beta"),
        "{page}"
    );

    // An action without its verb is refused, after the confirmation.
    b.call(json!({"op": "goto", "name": "viewer", "url": format!("{base}/ui/{ns_a}/alpha")}))
        .await;
    b.call(json!({"op": "follow", "name": "viewer", "selector": "a:has-text(\"Sync now\")"}))
        .await;
    b.wait_text("viewer", "h1", "Sync now").await;
    b.call(json!({"op": "submit", "name": "viewer", "selector": "button:has-text(\"Sync now\")"}))
        .await;
    b.wait_text("viewer", "main", "You may not patch channels")
        .await;
    assert_eq!(reconcile_annotation(&client, &ns_a, "alpha").await, None);

    // With the verb it is done: the channel gets kubemint.io/reconcile.
    let open = json!({"op": "open", "name": "deployer", "context": "deployer", "url": format!("{base}/ui/sign-in")});
    b.call(open).await;
    b.call(json!({"op": "fill", "name": "deployer", "selector": "#token", "value": deployer}))
        .await;
    b.call(json!({"op": "submit", "name": "deployer", "selector": "button[type=submit]"}))
        .await;
    b.call(
        json!({"op": "goto", "name": "deployer", "url": format!("{base}/ui/{ns_a}/alpha/do/sync")}),
    )
    .await;
    let url = b
        .call(json!({"op": "submit", "name": "deployer", "selector": "button:has-text(\"Sync now\")"}))
        .await;
    assert!(
        url.as_str()
            .unwrap()
            .ends_with(&format!("/ui/{ns_a}/alpha")),
        "{url}"
    );
    wait_for(Duration::from_secs(10), || async {
        reconcile_annotation(&client, &ns_a, "alpha").await
    })
    .await;

    // A cross-site POST is refused even with the session cookie and a valid
    // CSRF token; the same request from the UI's own origin goes through.
    let cookie = format!("kubemint_token={deployer}");
    let confirm = http
        .get(format!("{base}/ui/{ns_a}/alpha/do/sync"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&confirm);
    let post = |origin: &str, site: &str| {
        http.post(format!("{base}/ui/{ns_a}/alpha/do/sync"))
            .header("cookie", &cookie)
            .header("origin", origin)
            .header("sec-fetch-site", site)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}"))
            .send()
    };
    let host = base.trim_start_matches("http://");
    let own = format!("http://{host}");
    for (origin, site, want) in [
        ("http://evil.example", "cross-site", 403),
        (own.as_str(), "same-site", 403),
        (own.as_str(), "same-origin", 303),
    ] {
        let status = post(origin, site).await.unwrap().status();
        assert_eq!(status, want, "Origin {origin}, Sec-Fetch-Site {site}");
    }
    // A forged form without the CSRF token, from the UI's own origin, is refused too.
    let forged = http
        .post(format!("{base}/ui/{ns_a}/alpha/do/sync"))
        .header("cookie", &cookie)
        .header("origin", format!("http://{host}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=0000")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    // The sign-in cookie cannot be read by scripts nor sent by other sites.
    let signed = http
        .post(format!("{base}/ui/sign-in"))
        .header("origin", format!("http://{host}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={viewer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let set_cookie = signed.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"),
        "{set_cookie}"
    );
    let cross_sign_in = http
        .post(format!("{base}/ui/sign-in"))
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={viewer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(cross_sign_in.status(), 403);

    // With reviews cached, a signed-in page view is served from memory.
    let mut times = Vec::new();
    for _ in 0..21 {
        let start = std::time::Instant::now();
        let response = http
            .get(format!("{base}/ui/{ns_a}/alpha"))
            .bearer_auth(&viewer)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap();
        times.push(start.elapsed());
    }
    times.remove(0);
    times.sort();
    println!(
        "operator UI, channel page with a token (reviews cached): median {:?}, slowest {:?}",
        times[10], times[19]
    );
    assert!(times[10] < Duration::from_millis(100), "{times:?}");

    let log = op.log_text();
    for token in [&viewer, &deployer] {
        assert!(
            !log.contains(token.as_str()),
            "a token reached the operator's log"
        );
    }
    assert_eq!(b.dialogs().await, Vec::<String>::new());
    b.close().await;
}
