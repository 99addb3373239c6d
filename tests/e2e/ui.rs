//! Browser tests of the web UI (`kubemint ui`) in Debian's Chromium, driven by
//! playwright-core (tests/ui/driver.js; installed by tests/ui/install.sh):
//! a release, a failed release reverted automatically, and a revert, each
//! followed live on pages that are never reloaded; hostile commit subjects
//! and file names shown as text; axe-core on every page; page timings.

use crate::browser;
use crate::fixture;
use crate::gitserver;
use crate::support;

use std::path::Path;
use std::time::{Duration, Instant};

use browser::{Browser, UiProcess};
use fixture::manifests::{config_map, deployment};
use fixture::release::{revisions_in, workload, SMOKE_TEST};
use fixture::revert::pushable;
use fixture::{apply_channel_with, install_crd, kubemint, wait_applied, Operator};
use gitserver::{GitRepo, HttpServer, HTTP_PASSWORD, HTTP_USER};
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use kubemint::controller::Channel;
use kubemint::source::notes::{self, DeploymentNote, NoteTimes, NoteWrite};
use serde_json::json;
use support::{hold_revision, release_revision, wait_for};

/// A commit subject that would run if it were markup.
const XSS_SUBJECT: &str = "<script>alert(1)</script>";
/// A file name that would be an image with a handler if it were markup.
const XSS_FILE: &str = "web/\"><img src=x onerror=alert(2)>.yaml";

/// A namespace `prefix-N` of the test cluster with the CRD installed and a
/// pushable repository (see [`pushable`]).
async fn setup(prefix: &str) -> (Client, String, GitRepo, HttpServer) {
    let client = support::cluster().client().await;
    install_crd(&client).await;
    let ns = support::cluster().namespace(prefix).await;
    let (upstream, server) = pushable(&client, &ns).await;
    (client, ns, upstream, server)
}

/// Asserts axe-core finds no serious or critical violation on tab `name`.
async fn accessible(b: &mut Browser, name: &str) {
    let violations = b.axe(name).await;
    assert!(violations.is_empty(), "{name}: {violations:#?}");
}

/// Asserts that no injected script ran and no page logged an error (a CSP
/// violation among them), then closes the browser.
async fn nothing_ran_and_no_errors(mut b: Browser) {
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

#[tokio::test]
async fn a_release_a_failure_reverted_automatically_and_a_revert_seen_live() {
    let (client, ns, upstream, server) = setup("ui").await;
    let kubeconfig = support::cluster().kubeconfig();
    let sha1 = upstream
        .write(&workload("web", "web:1.0", "a"))
        .commit("web 1.0");
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
    let h2 = revisions_in(upstream.path())["web"].clone();
    hold_revision(&ns, &h2).await;
    let sha2 = upstream.commit(XSS_SUBJECT);
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
    hold_revision(&ns, &revisions_in(upstream.path())["web"]).await;
    let sha3 = upstream.commit("web 1.2");
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
    upstream
        .write(&[(file, "kind: [\n")])
        .commit("a broken file");
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
    let keep = config_map("keep", &[("a", "b")]);
    let pruning = upstream.write(&[("keep.yaml", keep)]).commit("retire web");
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

    nothing_ran_and_no_errors(b).await;
}

/// A Secret value the same in both releases.
const UNCHANGED_SECRET: &str = "c2FtZS1pbi1ib3RoLXMzY3IzdA";

/// A Secret whose value must never reach a page.
fn secret(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: web-token\nstringData:\n  token: {value}\n  \
         other: {UNCHANGED_SECRET}\n"
    )
}

/// A ConfigMap in a file named like markup, holding markup.
const XSS_CONFIG_FILE: &str = "web/\"><img src=x onerror=alert(3)>.yaml";
fn hostile_config(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hostile\ndata:\n  html: '<img src=x onerror=alert(4)> {value}'\n"
    )
}

#[tokio::test]
async fn the_release_page_shows_its_diff_with_secrets_masked_and_where_it_ran() {
    let (client, ns, upstream, server) = setup("uirel").await;
    let kubeconfig = support::cluster().kubeconfig();
    let (old_secret, new_secret) = ("Zm9vYmFyLW9sZC1zM2NyM3Q", "Zm9vYmFyLW5ldy1zM2NyM3Q");
    let mut files = workload("web", "web:1.0", "a");
    files.push(("web/secret.yaml".into(), secret(old_secret)));
    files.push((XSS_CONFIG_FILE.into(), hostile_config("one")));
    files.push(("web/smoke.yaml".into(), SMOKE_TEST.into()));
    let sha1 = upstream.write(&files).commit("web 1.0");
    apply_channel_with(
        &client,
        &ns,
        "shop",
        &server.url("work"),
        ".",
        json!({"git": {"secretRef": {"name": "git-creds"}},
               "audit": {"gitNotes": true},
               "rollout": {"readyTimeout": "60s", "drainSeconds": 0}}),
    )
    .await;
    let op = Operator::start_with(kubeconfig, &ns, "", &["--cluster-name", "dev"]);
    wait_applied(&client, &ns, "shop", &sha1, &op).await;

    // The next release changes the Secret, an image and the hostile file; its subject is hostile.
    let files = vec![
        (
            "web/deployment.yaml".to_string(),
            deployment("web", "web:1.1", 2),
        ),
        ("web/secret.yaml".to_string(), secret(new_secret)),
        (XSS_CONFIG_FILE.to_string(), hostile_config("two")),
    ];
    let sha2 = upstream.write(&files).commit(XSS_SUBJECT);
    wait_applied(&client, &ns, "shop", &sha2, &op).await;
    // This cluster's own note, then another cluster's, for the same commit
    // (and one for another commit, which must not show).
    let own = wait_for(Duration::from_secs(60), || async {
        upstream.git_opt(&["notes", "--ref=kubemint/dev", "show", &sha2])
    })
    .await;
    assert!(own.contains("phase: Active"), "{own}");
    // Written as another cluster's operator would: fetch, merge, push over HTTP.
    let data = [("username", HTTP_USER), ("password", HTTP_PASSWORD)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    let credentials = kubemint::source::GitCredentials::from_secret_data(&data).unwrap();
    for (commit, phase, message) in [
        (
            &sha2,
            "Failed",
            Some("release r failed: not ready within 5m: web has 1/2 pods ready"),
        ),
        (&sha1, "Active", None),
    ] {
        let note = DeploymentNote {
            cluster: "prod-eu".into(),
            channel: format!("{ns}/shop"),
            release: "r".into(),
            phase: phase.into(),
            commit: commit.clone(),
            message: message.map(str::to_string),
            times: NoteTimes {
                applied: Some("2026-11-22T10:00:00Z".into()),
                failed: message.map(|_| "2026-11-22T10:05:00Z".to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        notes::write_note(NoteWrite {
            url: server.url("work"),
            credentials: credentials.clone(),
            cluster: "prod-eu".into(),
            commit: commit.clone(),
            document: note.to_document(),
            attempts: 5,
        })
        .await
        .unwrap();
    }

    let ui = UiProcess::start_with(
        kubeconfig,
        &ns,
        None,
        &["--cluster-name", "dev", "--cache-dir", &cluster_cache(&ns)],
    )
    .await;
    let mut b = Browser::start();
    let page = format!("/ui/{ns}/shop/release/{}", &sha2[..12]);
    b.open("timeline", &ui.url(&format!("/ui/{ns}/shop"))).await;
    // The passed test, with its log lines, on both releases.
    let entry = format!("li#c-{}", &sha2[..12]);
    b.wait_text(
        "timeline",
        &format!("{entry} .test.passed"),
        "Pre-promotion test: Passed",
    )
    .await;
    b.wait_text(
        "timeline",
        &format!("{entry} .test.passed"),
        "Its last log lines",
    )
    .await;
    // Reached from the timeline with the keyboard.
    let url = b
        .call(json!({"op": "follow", "name": "timeline", "selector": format!("{entry} h3 a")}))
        .await;
    assert!(url.as_str().unwrap().ends_with(&page), "{url}");
    b.wait_text("timeline", "h1", XSS_SUBJECT).await;
    // The diff arrives live (read from git in the background).
    b.wait_text("timeline", "section.diff summary", "Secret")
        .await;
    b.wait_text("timeline", "section.diff", "*** (after)").await;
    b.wait_text("timeline", "section.diff", "image: web:1.1")
        .await;
    b.wait_text("timeline", "section.diff summary", "onerror=alert(3)")
        .await;
    b.wait_text("timeline", "section.diff", "onerror=alert(4)")
        .await;
    b.wait_text("timeline", "section.ran th", "prod-eu").await;
    b.wait_text("timeline", "section.ran", "web has 1/2 pods ready")
        .await;
    assert_eq!(
        b.texts("timeline", "section.ran tbody th").await,
        ["prod-eu"],
        "this cluster's own note is not another place it ran"
    );
    // The revisions with their pods, and the release's events.
    b.wait_text("timeline", "table td", "2/2 pods ready").await;
    b.wait_text("timeline", "ul.events", "Promoted").await;

    // The Secret's values are nowhere: not in the page, not in the server's HTML.
    let shown = b.html("timeline").await;
    let served = reqwest::get(ui.url(&page))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for html in [&shown, &served] {
        for value in [old_secret, new_secret, UNCHANGED_SECRET] {
            assert!(!html.contains(value), "{value} leaked:\n{html}");
        }
        assert!(!html.contains("<img"), "markup from git became markup");
    }
    assert!(served.contains("section class=\"diff\""), "{served}");
    assert_eq!(b.count("timeline", "img").await, 0);
    b.screenshot("timeline", "release-diff").await;
    accessible(&mut b, "timeline").await;
    b.call(json!({"op": "open", "name": "dark", "url": ui.url(&page), "colorScheme": "dark"}))
        .await;
    b.wait_text("dark", "section.diff", "*** (after)").await;
    b.screenshot("dark", "release-diff-dark").await;
    accessible(&mut b, "dark").await;
    nothing_ran_and_no_errors(b).await;

    let (median, slowest) = timed(&ui.url(&page), 20).await;
    println!("release page with its diff: median {median:?}, slowest {slowest:?}");
    assert!(median < Duration::from_millis(100), "{median:?}");
}

#[tokio::test]
async fn the_operator_s_ui_reads_a_release_diff_from_its_own_git_cache() {
    let cluster = support::cluster();
    let client = cluster.client().await;
    install_crd(&client).await;
    let ns = cluster.namespace("uiop").await;
    let repo = fixture::GitRepo::new();
    let commit = |files: &[(String, String)], message: &str| {
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(p, c)| (p.as_str(), c.as_str()))
            .collect();
        repo.write(&refs).commit(message)
    };
    let mut files = workload("web", "web:1.0", "a");
    files.push(("web/secret.yaml".into(), secret("b3BlcmF0b3Itb2xk")));
    let sha1 = commit(&files, "web 1.0");
    apply_channel_with(
        &client,
        &ns,
        "web",
        &repo.url(),
        ".",
        json!({"rollout": {"drainSeconds": 0}}),
    )
    .await;
    let op = Operator::start_with(
        cluster.kubeconfig(),
        &ns,
        "",
        &["--ui", "--cluster-name", "dev"],
    );
    wait_applied(&client, &ns, "web", &sha1, &op).await;
    let sha2 = commit(
        &[("web/secret.yaml".into(), secret("b3BlcmF0b3ItbmV3"))],
        "rotate the token",
    );
    wait_applied(&client, &ns, "web", &sha2, &op).await;

    // A reader of channels, signed in by its token; the page fills in once
    // the operator's UI has read the commits (it does in the background).
    let rules = json!([{"apiGroups": ["kubemint.io"], "resources": ["channels"], "verbs": ["get", "list", "watch"]}]);
    fixture::tenancy::service_account(&client, &ns, "viewer", rules).await;
    let token = fixture::service_account_token(&client, &ns, "viewer").await;
    let page = format!(
        "http://{}/ui/{ns}/web/release/{}",
        op.http_addr().await,
        &sha2[..12]
    );
    let http = reqwest::Client::new();
    let html = wait_for(Duration::from_secs(60), || async {
        let response = http.get(&page).bearer_auth(&token).send().await.ok()?;
        let body = response.text().await.ok()?;
        body.contains("*** (after)").then_some(body)
    })
    .await;
    assert!(html.contains("Secret "), "{html}");
    assert!(html.contains("No other cluster"), "{html}");
    for value in ["b3BlcmF0b3Itb2xk", "b3BlcmF0b3ItbmV3", UNCHANGED_SECRET] {
        assert!(!html.contains(value), "{value} leaked:\n{html}");
    }
}

/// A git cache of the test's own for `kubemint ui`.
fn cluster_cache(ns: &str) -> String {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("ui-git-cache")
        .join(ns)
        .display()
        .to_string()
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
