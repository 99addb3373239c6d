//! Browser tests of the web UI (`kubemint ui`) in Debian's Chromium, driven by
//! playwright-core (tests/ui/driver.js; installed by tests/ui/install.sh):
//! a release, a failed release reverted automatically, and a revert, each
//! followed live on pages that are never reloaded; hostile commit subjects
//! and file names shown as text; axe-core on every page; page timings.

#[path = "ui/browser.rs"]
mod browser;
mod fixture;
mod gitserver;
mod support;

use std::time::{Duration, Instant};

use browser::{Browser, UiProcess};
use fixture::release::{deployment, revisions_in, workload};
use fixture::{apply_channel_with, create_secret, install_crd, kubemint, wait_applied, Operator};
use gitserver::{HttpServer, Upstream, HTTP_PASSWORD, HTTP_USER};
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use kubemint::controller::Channel;
use serde_json::json;
use support::{hold_revision, release_revision, wait_for};

/// A commit subject that would run if it were markup.
const XSS_SUBJECT: &str = "<script>alert(1)</script>";
/// A file name that would be an image with a handler if it were markup.
const XSS_FILE: &str = "web/\"><img src=x onerror=alert(2)>.yaml";

/// A repository the operator can push to (for automatic reverts) over HTTP,
/// with its credentials in Secret `git-creds`.
async fn pushable(client: &Client, ns: &str) -> (Upstream, HttpServer) {
    let upstream = Upstream::new();
    upstream.git(&["config", "receive.denyCurrentBranch", "updateInstead"]);
    let server = HttpServer::start(upstream.root());
    create_secret(
        client,
        ns,
        "git-creds",
        json!({"username": HTTP_USER, "password": HTTP_PASSWORD}),
    )
    .await;
    (upstream, server)
}

/// Asserts axe-core finds no serious or critical violation on tab `name`.
async fn accessible(b: &mut Browser, name: &str) {
    let violations = b.axe(name).await;
    assert!(violations.is_empty(), "{name}: {violations:#?}");
}

#[tokio::test]
async fn a_release_a_failure_reverted_automatically_and_a_revert_seen_live() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("ui").await;
    let kubeconfig = cluster.kubeconfig();
    let (upstream, server) = pushable(&client, &ns).await;
    let sha1 = upstream.commit_files(&workload("web", "web:1.0", "a"), "web 1.0");
    apply_channel_with(
        &client,
        &ns,
        "shop",
        &server.url("work"),
        ".",
        json!({"git": {"secretRef": {"name": "git-creds"}},
               "rollout": {"readyTimeout": "20s", "drainSeconds": 0, "onFailure": "revert"}}),
    )
    .await;
    let op = Operator::start(kubeconfig, &ns);
    wait_applied(&client, &ns, "shop", &sha1, &op).await;

    // The person running `kubemint ui`, as git config names them.
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        home.path().join(".gitconfig"),
        "[user]\n\tname = Katherine Johnson\n\temail = kj@example.com\n",
    )
    .unwrap();
    let ui = UiProcess::start_as(kubeconfig, &ns, Some(home.path())).await;
    let mut b = Browser::start();
    let csp = b.open("overview", &ui.url("/ui/")).await;
    assert!(
        csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    b.open("timeline", &ui.url(&format!("/ui/{ns}/shop"))).await;
    b.wait_text("timeline", "li.entry.active h3", "web 1.0")
        .await;
    b.wait_text("overview", "tbody tr", "Ready").await;

    // A release, followed live: its pods held unready, then let go. Its
    // subject is hostile: it must read as text and never run.
    std::fs::write(
        upstream.path().join("web/deployment.yaml"),
        deployment("web", "web:1.1", 2),
    )
    .unwrap();
    let h2 = revisions_in(&upstream.path())["web"].clone();
    hold_revision(&ns, &h2).await;
    let sha2 = upstream.commit_files(&[], XSS_SUBJECT);
    b.wait_text("timeline", "li.entry.progressing", "0/2 pods ready")
        .await;
    b.wait_text("overview", "tbody tr", "Rolling out").await;
    b.wait_text("overview", "tbody tr", "0/2 pods ready").await;
    b.screenshot("timeline", "timeline-rolling-out").await;
    release_revision(&client, &ns, &h2).await;
    b.wait_text("timeline", "li.entry.active h3", XSS_SUBJECT)
        .await;
    b.wait_text("timeline", "li.entry.active", "web:1.0 → web:1.1")
        .await;
    b.wait_text("overview", "tbody tr", XSS_SUBJECT).await;
    assert_eq!(
        b.texts("timeline", "li.entry.active h3").await,
        [XSS_SUBJECT]
    );

    // A release whose pods never get ready fails; kubemint pushes its revert
    // and delivers it. The page says so, both ways linked.
    std::fs::write(
        upstream.path().join("web/deployment.yaml"),
        deployment("web", "web:1.2-broken", 2),
    )
    .unwrap();
    hold_revision(&ns, &revisions_in(&upstream.path())["web"]).await;
    let sha3 = upstream.commit_files(&[], "web 1.2");
    let failed = format!("li#c-{}", &sha3[..12]);
    b.wait_text("timeline", &failed, "Why it failed").await;
    b.wait_text("timeline", &failed, "0/2 pods ready").await;
    b.wait_text("timeline", &failed, "Automatic revert: Pushed")
        .await;
    b.wait_text("timeline", "li.entry.active h3", "Revert failed release")
        .await;
    b.wait_text("timeline", &format!("{failed} .reverted-by"), "Reverted by")
        .await;
    let reverts = b.texts("timeline", "li.entry.active .reverts").await;
    assert!(reverts[0].contains(&sha3[..12]), "{reverts:?}");
    b.screenshot("timeline", "timeline-auto-revert").await;

    // A revert by hand (`kubemint revert --push`) of the hostile commit.
    let run = kubemint(
        kubeconfig,
        &[
            "revert",
            "shop",
            "-n",
            &ns,
            "--commit",
            &sha2,
            "--push",
            "--author-name",
            "Grace Hopper",
            "--author-email",
            "grace@example.com",
        ],
        &[HTTP_PASSWORD],
    );
    assert!(run.ok, "{}\n{}", run.stdout, run.stderr);
    let by_hand = run
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("commit "))
        .and_then(|l| l.split_whitespace().next())
        .expect("the revert's sha")
        .to_string();
    let reverted = format!("li#c-{}", &sha2[..12]);
    b.wait_text(
        "timeline",
        "li.entry.active h3",
        &format!("Revert \"{XSS_SUBJECT}\""),
    )
    .await;
    b.wait_text("timeline", "li.entry.active .reverts", &sha2[..12])
        .await;
    b.wait_text("timeline", "li.entry.active", "Grace Hopper")
        .await;
    b.wait_text(
        "timeline",
        &format!("{reverted} .reverted-by"),
        "Reverted by",
    )
    .await;
    b.wait_text("overview", "tbody tr", "Revert \"<script>")
        .await;
    assert_eq!(b.navigations("timeline").await, 1, "the timeline reloaded");
    assert_eq!(b.navigations("overview").await, 1, "the overview reloaded");
    b.screenshot("timeline", "timeline").await;
    // The README's picture (docs/ui-timeline.png): the top of the page.
    let readme = browser::screenshot_dir().join("timeline-readme.png");
    b.call(json!({"op": "screenshot", "name": "timeline", "file": readme, "fullPage": false}))
        .await;
    b.screenshot("overview", "overview").await;
    accessible(&mut b, "overview").await;
    accessible(&mut b, "timeline").await;

    // The release page, reached from the timeline with the keyboard.
    let url = b
        .call(json!({"op": "follow", "name": "timeline", "selector": format!("{reverted} h3 a")}))
        .await;
    assert!(url.as_str().unwrap().contains("/release/"), "{url}");
    b.wait_text("timeline", "h1", XSS_SUBJECT).await;
    b.wait_text("timeline", "table td code", &h2).await;
    b.wait_text("timeline", ".reverted-by", "Reverted by").await;
    b.screenshot("timeline", "release").await;
    accessible(&mut b, "timeline").await;

    // Reverting in the UI: the revert by hand, from its release page, confirmed.
    let page = format!("/ui/{ns}/shop/release/{}", &by_hand[..12]);
    b.call(json!({"op": "goto", "name": "timeline", "url": ui.url(&page)}))
        .await;
    b.call(json!({"op": "follow", "name": "timeline", "selector": "a:has-text(\"Revert this release\")"}))
        .await;
    b.wait_text("timeline", "h1", "Revert the release").await;
    b.wait_text("timeline", "main", "kubemint revert --release")
        .await;
    accessible(&mut b, "timeline").await;
    let url = b
        .call(json!({"op": "submit", "name": "timeline", "selector": "button:has-text(\"Revert the release\")"}))
        .await;
    let shown = b.texts("timeline", "main").await;
    assert!(
        url.as_str().unwrap().ends_with(&format!("/ui/{ns}/shop")),
        "{url}: {shown:?}"
    );
    b.wait_text("timeline", "li.entry.active h3", "Revert release")
        .await;
    b.wait_text("timeline", "li.entry.active .reverts", &by_hand[..12])
        .await;
    b.wait_text("timeline", "li.entry.active", "Katherine Johnson")
        .await;
    b.wait_text("timeline", "li.entry.active", "web:1.0 → web:1.1")
        .await;

    // A file named like markup: the commit is refused, the page names the file as text.
    let file = XSS_FILE.to_string();
    upstream.commit_files(&[(file, "kind: [\n".into())], "a broken file");
    b.wait_text("overview", "tr.alarm", "Stalled").await;
    b.wait_text("overview", "tr.alarm", "onerror=alert(2)")
        .await;
    assert_eq!(b.count("overview", "img").await, 0);
    b.open("channel-stalled", &ui.url(&format!("/ui/{ns}/shop")))
        .await;
    b.wait_text("channel-stalled", ".summary", "onerror=alert(2)")
        .await;
    assert_eq!(b.count("channel-stalled", "img").await, 0);
    b.screenshot("overview", "overview-stalled").await;
    accessible(&mut b, "overview").await;

    // A commit that would prune nearly everything is held; approving it in the UI lets it through.
    upstream.git(&["rm", "-q", "-r", "web"]);
    let keep = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep\ndata:\n  a: b\n";
    let pruning = upstream.commit_files(&[("keep.yaml".into(), keep.into())], "retire web");
    b.wait_text("overview", "tr.alarm", "Held").await;
    b.wait_text("channel-stalled", ".summary", "PruneHeld")
        .await;
    b.call(json!({"op": "follow", "name": "channel-stalled", "selector": "a:has-text(\"Approve the held prune\")"}))
        .await;
    b.wait_text("channel-stalled", "main", &pruning).await;
    accessible(&mut b, "channel-stalled").await;
    b.call(json!({"op": "submit", "name": "channel-stalled", "selector": "button:has-text(\"Approve the prune\")"}))
        .await;
    b.wait_text("channel-stalled", "li.entry.active h3", "retire web")
        .await;
    b.wait_text("overview", "tbody tr", "Ready").await;
    // The hold is in the story, as the event of its time.
    b.wait_text("channel-stalled", "li.entry ul.events", "PruneHeld")
        .await;

    // Readable without JavaScript, and in the dark.
    let nojs = b
        .call(json!({"op": "open", "name": "nojs", "url": ui.url(&format!("/ui/{ns}/shop")), "js": false}))
        .await;
    assert_eq!(nojs["status"], 200);
    assert!(b.count("nojs", "li.entry").await >= 4);
    b.wait_text("nojs", "li.entry h3", XSS_SUBJECT).await;
    b.call(json!({"op": "open", "name": "dark", "url": ui.url(&format!("/ui/{ns}/shop")), "colorScheme": "dark"}))
        .await;
    b.screenshot("dark", "timeline-dark").await;
    accessible(&mut b, "dark").await;

    assert_eq!(
        b.dialogs().await,
        Vec::<String>::new(),
        "injected script ran"
    );
    let errors: Vec<String> =
        serde_json::from_value(b.call(json!({"op": "errors"})).await).unwrap();
    assert!(errors.is_empty(), "console errors (CSP?): {errors:#?}");
    b.close().await;
}

/// A record of release `i` of 50.
fn release_record(i: usize) -> serde_json::Value {
    let phase = match i {
        0 => "Active",
        7 | 21 => "Failed",
        _ => "Superseded",
    };
    json!({
        "id": format!("{i:012x}"),
        "commit": {"sha": format!("{i:040x}"), "author": "Ada <ada@example.com>",
                   "subject": format!("web 1.{}", 50 - i), "time": "2026-11-22T10:00:00Z"},
        "appliedAt": "2026-11-22T10:01:00Z",
        "promotedAt": "2026-11-22T10:02:00Z",
        "phase": phase,
        "message": (phase == "Failed").then_some("release failed: not ready within 5s: web has 0/2 pods ready"),
        "revisions": [{"workload": "web", "revision": format!("h{i}")},
                      {"workload": "worker", "revision": format!("w{}", i / 2)}]
    })
}

/// Median and slowest of `n` GETs of `url`, after one to warm up.
async fn timed(url: &str, n: usize) -> (Duration, Duration) {
    let http = reqwest::Client::new();
    let mut times = Vec::new();
    for i in 0..=n {
        let start = Instant::now();
        let response = http.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url}");
        response.text().await.unwrap();
        if i > 0 {
            times.push(start.elapsed());
        }
    }
    times.sort();
    (times[n / 2], times[n - 1])
}

#[tokio::test]
async fn a_channel_page_with_50_releases_answers_within_100ms() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("uitime").await;
    apply_channel_with(
        &client,
        &ns,
        "big",
        "https://github.com/acme/deploy.git",
        ".",
        json!({}),
    )
    .await;
    let releases: Vec<serde_json::Value> = (0..50).map(release_record).collect();
    Api::<Channel>::namespaced(client.clone(), &ns)
        .patch_status(
            "big",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"status": {"activeRelease": format!("{:012x}", 0), "releases": releases}}),
            ),
        )
        .await
        .unwrap();
    let ui = UiProcess::start(cluster.kubeconfig(), &ns).await;
    let page = ui.url(&format!("/ui/{ns}/big"));
    let html = wait_for(Duration::from_secs(30), || async {
        let body = reqwest::get(&page).await.ok()?.text().await.ok()?;
        (body.matches("<li class=\"entry").count() == 50).then_some(body)
    })
    .await;
    assert!(
        html.contains("https://github.com/acme/deploy/commit/"),
        "forge links"
    );
    let (overview_median, overview_max) = timed(&ui.url("/ui/"), 20).await;
    let (channel_median, channel_max) = timed(&page, 20).await;
    println!(
        "overview: median {overview_median:?}, slowest {overview_max:?}; \
         channel with 50 releases: median {channel_median:?}, slowest {channel_max:?} ({} bytes)",
        html.len()
    );
    assert!(
        channel_median < Duration::from_millis(100),
        "{channel_median:?}"
    );
    assert!(
        overview_median < Duration::from_millis(100),
        "{overview_median:?}"
    );
}
