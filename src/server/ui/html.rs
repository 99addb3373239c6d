//! HTML of the pages, from the view models. Every string from the cluster or
//! git goes through [`Html::text`] or [`Html::attr`]; markup is only ever
//! `&'static str`, so an untrusted string cannot become markup by mistake.

use super::git::{DiffState, GitFacts};
use super::model::{
    age, ChannelSummary, CommitView, Entry, EventView, Health, Overview, Pods, RanView, Timeline,
};
use crate::api::ReleasePhase;
use crate::render::diff::{Difference, ObjectDiff};
use k8s_openapi::jiff::Timestamp;

/// Where the UI is mounted.
pub const BASE: &str = "/ui";

/// An HTML document under construction.
#[derive(Default)]
pub struct Html(String);

impl Html {
    /// Markup written in this file.
    pub fn raw(&mut self, markup: &'static str) -> &mut Self {
        self.0.push_str(markup);
        self
    }

    /// Text, escaped for element content and quoted attribute values.
    pub fn text(&mut self, text: &str) -> &mut Self {
        for c in text.chars() {
            match c {
                '&' => self.0.push_str("&amp;"),
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&#39;"),
                c => self.0.push(c),
            }
        }
        self
    }

    /// ` name="value"`, the value escaped.
    pub fn attr(&mut self, name: &'static str, value: &str) -> &mut Self {
        self.raw(" ").raw(name).raw("=\"").text(value).raw("\"")
    }

    /// `<a href="href">text</a>`.
    pub fn link(&mut self, href: &str, text: &str) -> &mut Self {
        self.raw("<a")
            .attr("href", href)
            .raw(">")
            .text(text)
            .raw("</a>")
    }

    /// The document.
    pub fn finish(self) -> String {
        self.0
    }
}

/// What surrounds a page's `main`: title, breadcrumbs, the live URL, the
/// signed-in user.
pub struct Chrome {
    title: String,
    crumbs: Vec<(String, String)>,
    live: Option<String>,
    user: Option<(String, String)>,
}

impl Chrome {
    /// A page titled `title`, for `viewer` (a sign-out button when signed in).
    pub fn new(title: &str, viewer: Option<&super::access::Viewer>) -> Chrome {
        Chrome {
            title: title.to_string(),
            crumbs: Vec::new(),
            live: None,
            user: viewer
                .filter(|v| v.signed_in())
                .map(|v| (v.name().unwrap_or_default().to_string(), v.csrf())),
        }
    }

    /// Adds a breadcrumb.
    pub fn crumb(mut self, href: &str, label: &str) -> Chrome {
        self.crumbs.push((href.to_string(), label.to_string()));
        self
    }

    /// The URL the live script polls for a fresh `main`.
    pub fn live(mut self, url: &str) -> Chrome {
        self.live = Some(url.to_string());
        self
    }
}

/// A whole page around `main` (already HTML).
pub fn page(chrome: &Chrome, main: &str) -> String {
    let mut h = Html::default();
    h.raw("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
        .raw("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
        .raw("<meta name=\"color-scheme\" content=\"light dark\">")
        .raw("<title>")
        .text(&chrome.title)
        .raw(" · kubemint</title>")
        .raw("<link rel=\"stylesheet\" href=\"/ui/assets/ui.css\">")
        .raw("<link rel=\"icon\" href=\"/ui/assets/icon.svg\" type=\"image/svg+xml\">")
        .raw("<script src=\"/ui/assets/ui.js\" defer></script></head>\n<body>")
        .raw("<a class=\"skip\" href=\"#main\">Skip to content</a>")
        .raw("<header><nav aria-label=\"Breadcrumb\"><ol><li><a href=\"/ui/\">kubemint</a></li>");
    for (href, label) in &chrome.crumbs {
        h.raw("<li>").link(href, label).raw("</li>");
    }
    h.raw("</ol></nav>");
    if let Some((user, csrf)) = &chrome.user {
        h.raw("<form class=\"session\" method=\"post\" action=\"/ui/sign-out\">")
            .raw("<span>Signed in as <strong>")
            .text(user)
            .raw("</strong></span> <input type=\"hidden\" name=\"csrf\"")
            .attr("value", csrf)
            .raw("><button type=\"submit\">Sign out</button></form>");
    }
    h.raw("</header>\n<main id=\"main\" tabindex=\"-1\"");
    if let Some(live) = &chrome.live {
        h.attr("data-live", live);
    }
    h.raw(">");
    let mut out = h.finish();
    out.push_str(main);
    out.push_str(
        "</main>\n<footer><p id=\"live-status\" role=\"status\"></p></footer></body></html>\n",
    );
    out
}

/// The sign-in page's `main`.
pub fn sign_in(message: Option<&str>) -> String {
    let mut h = Html::default();
    h.raw("<h1>Sign in</h1>");
    if let Some(m) = message {
        h.raw("<p class=\"error\" role=\"alert\">")
            .text(m)
            .raw("</p>");
    }
    h.raw("<p>Paste a Kubernetes bearer token (for example from <code>kubectl create token NAME</code>). ")
        .raw("You will see the channels your RBAC lets you read. The token is kept in a cookie ")
        .raw("no script can read, and checked with the API server on every request.</p>")
        .raw("<form method=\"post\" action=\"/ui/sign-in\" class=\"sign-in\">")
        .raw("<label for=\"token\">Bearer token</label>")
        .raw("<input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required>")
        .raw("<button type=\"submit\">Sign in</button></form>");
    h.finish()
}

/// The confirmation page of `action` on a channel.
pub fn confirm(
    s: &ChannelSummary,
    action: super::actions::Action,
    release: Option<&Entry>,
    csrf: &str,
) -> String {
    use super::actions::Action;
    let mut h = Html::default();
    h.raw("<h1>")
        .text(action.label())
        .raw(": <span class=\"ns\">")
        .text(&s.namespace)
        .raw("/</span>")
        .text(&s.name)
        .raw("</h1>");
    match action {
        Action::Sync => {
            h.raw("<p>Fetch the channel's ref and deliver it now, instead of at the next poll ")
                .raw("(sets the <code>kubemint.io/reconcile</code> annotation).</p>");
        }
        Action::ApprovePrune => match &s.held_commit {
            Some(commit) => {
                h.raw("<p>The prune guard holds commit <code>")
                    .text(commit)
                    .raw("</code>: ")
                    .text(&s.message)
                    .raw("</p><p>Approving lets it delete those objects ")
                    .raw("(sets <code>kubemint.io/approve-prune</code> to the commit).</p>");
            }
            None => {
                h.raw("<p>The channel holds no prune now.</p>");
            }
        },
        Action::Revert => {
            if let Some(e) = release {
                h.raw("<p>Commit and push the revert of release <code>")
                    .text(&e.id)
                    .raw("</code> (commit <code>")
                    .text(e.commit.short())
                    .raw("</code> “")
                    .text(&e.commit.subject)
                    .raw("”) to the channel's branch, with the channel's credentials: ")
                    .raw("the same commit as <code>kubemint revert --release ")
                    .text(&e.id)
                    .raw(" --push</code>. The channel then delivers it like any commit.</p>");
            }
        }
    }
    let path = format!(
        "{}/do/{}",
        channel_path(&s.namespace, &s.name),
        action.name()
    );
    h.raw("<form method=\"post\"")
        .attr("action", &path)
        .raw(">")
        .raw("<input type=\"hidden\" name=\"csrf\"")
        .attr("value", csrf)
        .raw(">");
    if let (Action::ApprovePrune, Some(commit)) = (action, &s.held_commit) {
        h.raw("<input type=\"hidden\" name=\"commit\"")
            .attr("value", commit)
            .raw(">");
    }
    if let (Action::Revert, Some(e)) = (action, release) {
        h.raw("<input type=\"hidden\" name=\"commit\"")
            .attr("value", &e.commit.sha)
            .raw(">");
    }
    h.raw("<button type=\"submit\">")
        .text(action.label())
        .raw("</button> ")
        .link(&channel_path(&s.namespace, &s.name), "Cancel")
        .raw("</form>");
    h.finish()
}

fn health_badge(h: &mut Html, health: Health) {
    let class = match health {
        Health::Failed => "badge bad",
        Health::Held | Health::Stalled => "badge warn",
        Health::Progressing => "badge busy",
        Health::Ready => "badge good",
        Health::Suspended | Health::Unknown => "badge",
    };
    badge(h, class, health.label());
}

/// `<span class="badge ...">label</span>`.
fn badge(h: &mut Html, class: &str, label: &str) {
    h.raw("<span")
        .attr("class", class)
        .raw(">")
        .text(label)
        .raw("</span>");
}

fn phase_badge(h: &mut Html, phase: ReleasePhase) {
    let (class, label) = match phase {
        ReleasePhase::Progressing => ("badge busy", "Progressing"),
        ReleasePhase::Active => ("badge good", "Active"),
        ReleasePhase::Superseded => ("badge", "Superseded"),
        ReleasePhase::Failed => ("badge bad", "Failed"),
    };
    badge(h, class, label);
}

fn pods_text(p: Pods) -> String {
    format!("{}/{} pods ready", p.ready, p.wanted)
}

fn progress(h: &mut Html, p: Pods) {
    h.raw("<span class=\"pods\"><progress")
        .attr("max", &p.wanted.max(1).to_string())
        .attr("value", &p.ready.to_string())
        .attr("aria-label", "ready pods")
        .raw("></progress> ")
        .text(&pods_text(p))
        .raw("</span>");
}

/// The path of a channel's timeline.
pub fn channel_path(namespace: &str, name: &str) -> String {
    format!("{BASE}/{namespace}/{name}")
}

/// The path of a release page (by its commit's short sha).
pub fn release_path(namespace: &str, name: &str, short: &str) -> String {
    format!("{BASE}/{namespace}/{name}/release/{short}")
}

fn commit_sha(h: &mut Html, c: &CommitView) {
    match &c.url {
        Some(url) => {
            h.raw("<a class=\"sha\"")
                .attr("href", url)
                .raw(">")
                .text(c.short())
                .raw("</a>");
        }
        None => {
            h.raw("<code class=\"sha\">").text(c.short()).raw("</code>");
        }
    }
}

fn time(h: &mut Html, t: &str, now: Option<Timestamp>) {
    h.raw("<time").attr("datetime", t).attr("title", t).raw(">");
    let ago = age(t, now);
    h.text(if ago.is_empty() { t } else { &ago }).raw("</time>");
}

/// The overview's `main`.
pub fn overview(groups: &Overview, now: Option<Timestamp>) -> String {
    let mut h = Html::default();
    h.raw("<h1>Channels</h1>");
    if groups.is_empty() {
        h.raw("<p>No channels you may read.</p>");
    }
    for (ns, channels) in groups {
        h.raw("<section><h2>Namespace <span class=\"ns\">")
            .text(ns)
            .raw("</span></h2>");
        h.raw("<table class=\"channels\"><thead><tr><th scope=\"col\">Channel</th><th scope=\"col\">Status</th>")
            .raw("<th scope=\"col\">Serving</th><th scope=\"col\">Author</th><th scope=\"col\">Promoted</th>")
            .raw("<th scope=\"col\">Rollout</th></tr></thead><tbody>");
        for c in channels {
            overview_row(&mut h, c, now);
        }
        h.raw("</tbody></table></section>");
    }
    h.finish()
}

fn overview_row(h: &mut Html, c: &ChannelSummary, _now: Option<Timestamp>) {
    h.raw("<tr");
    if c.health.alarming() {
        h.attr("class", "alarm");
    }
    h.raw("><th scope=\"row\">")
        .link(&channel_path(&c.namespace, &c.name), &c.name)
        .raw("</th><td>");
    health_badge(h, c.health);
    if c.health != Health::Ready && !c.message.is_empty() {
        h.raw("<div class=\"why\">").text(&c.message).raw("</div>");
    }
    h.raw("</td>");
    match &c.serving {
        Some((_, commit, since)) => {
            h.raw("<td><span class=\"subject\">")
                .text(&commit.subject)
                .raw("</span> ");
            commit_sha(h, commit);
            h.raw("</td><td>")
                .text(&commit.author)
                .raw("</td><td>")
                .text(since)
                .raw("</td>");
        }
        None => {
            h.raw("<td colspan=\"3\">nothing serving yet</td>");
        }
    }
    h.raw("<td>");
    if let Some(p) = c.rollout {
        progress(h, p);
    }
    h.raw("</td></tr>");
}

fn summary_block(h: &mut Html, s: &ChannelSummary) {
    h.raw("<dl class=\"summary\"><dt>Status</dt><dd>");
    health_badge(h, s.health);
    if !s.reason.is_empty() {
        h.raw(" <span class=\"reason\">")
            .text(&s.reason)
            .raw("</span>");
    }
    if !s.message.is_empty() {
        h.raw("<div class=\"why\">").text(&s.message).raw("</div>");
    }
    h.raw("</dd><dt>Source</dt><dd>")
        .text(&s.source)
        .raw("</dd>");
    if let Some((id, commit, since)) = &s.serving {
        h.raw("<dt>Serving</dt><dd>release <code>")
            .text(id)
            .raw("</code> ")
            .text(&commit.subject)
            .raw(" (")
            .text(&commit.author)
            .raw(", promoted ")
            .text(since)
            .raw(")</dd>");
    }
    if let Some(p) = s.rollout {
        h.raw("<dt>Rollout</dt><dd>");
        progress(h, p);
        h.raw("</dd>");
    }
    h.raw("</dl>");
}

fn events_list(h: &mut Html, events: &[EventView], now: Option<Timestamp>) {
    if events.is_empty() {
        return;
    }
    h.raw("<ul class=\"events\">");
    for e in events {
        h.raw("<li");
        if e.type_ == "Warning" {
            h.attr("class", "warning");
        }
        h.raw("><span class=\"reason\">")
            .text(&e.reason)
            .raw("</span> ");
        time(h, &e.time, now);
        if e.count > 1 {
            h.raw(" <span class=\"count\">×")
                .text(&e.count.to_string())
                .raw("</span>");
        }
        h.raw("<div class=\"message\">")
            .text(&e.message)
            .raw("</div></li>");
    }
    h.raw("</ul>");
}

fn times(h: &mut Html, e: &Entry, now: Option<Timestamp>) {
    h.raw("<dl class=\"times\">");
    for (label, t) in [
        ("Committed", Some(&e.commit.time)),
        ("Applied", e.applied_at.as_ref()),
        ("Promoted", e.promoted_at.as_ref()),
        ("Failed", e.failed_at.as_ref()),
        ("Drained", e.drained_at.as_ref()),
    ] {
        if let Some(t) = t {
            h.raw("<dt>").text(label).raw("</dt><dd>");
            time(h, t, now);
            h.raw("</dd>");
        }
    }
    h.raw("</dl>");
}

fn entry_body(h: &mut Html, ns: &str, name: &str, e: &Entry, now: Option<Timestamp>) {
    h.raw("<p class=\"meta\">");
    phase_badge(h, e.phase);
    h.raw(" release <code>")
        .text(&e.id)
        .raw("</code> · commit ");
    commit_sha(h, &e.commit);
    h.raw(" by <span class=\"author\">")
        .text(&e.commit.author)
        .raw("</span></p>");
    times(h, e, now);
    if let Some(p) = e.rollout {
        h.raw("<p class=\"rollout\">Rolling out: ");
        progress(h, p);
        h.raw("</p>");
    }
    if !e.changes.is_empty() {
        h.raw("<h4>Changed workloads</h4><ul class=\"changes\">");
        for c in &e.changes {
            h.raw("<li><span class=\"workload\">")
                .text(&c.workload)
                .raw("</span> ");
            match (&c.from, &c.to) {
                (None, Some(to)) => {
                    h.raw("new, revision <code>").text(to).raw("</code>");
                }
                (Some(from), None) => {
                    h.raw("removed (was <code>").text(from).raw("</code>)");
                }
                (Some(from), Some(to)) => {
                    h.raw("<code>")
                        .text(from)
                        .raw("</code> → <code>")
                        .text(to)
                        .raw("</code>");
                }
                (None, None) => {}
            }
            if !c.images_from.is_empty() || !c.images_to.is_empty() {
                h.raw(" <span class=\"images\">");
                if !c.images_from.is_empty() && c.images_from != c.images_to {
                    h.text(&c.images_from.join(", ")).raw(" → ");
                }
                h.text(&c.images_to.join(", ")).raw("</span>");
            }
            h.raw("</li>");
        }
        h.raw("</ul>");
    }
    if let Some(test) = &e.test {
        let (class, outcome) = if test.passed {
            ("test passed", "Passed")
        } else {
            ("test failed", "Failed")
        };
        h.raw("<div")
            .attr("class", class)
            .raw("><p>Pre-promotion test: <strong>")
            .text(outcome)
            .raw("</strong> (Job <code>")
            .text(&test.job)
            .raw("</code>)</p>");
        if let Some(logs) = &test.logs {
            h.raw("<details open><summary>Its last log lines</summary><pre class=\"logs\">")
                .text(logs)
                .raw("</pre></details>");
        }
        h.raw("</div>");
    }
    if let Some(f) = &e.failure {
        h.raw("<div class=\"failure\"><h4>Why it failed</h4><pre>")
            .text(f)
            .raw("</pre></div>");
    }
    if let Some(a) = &e.auto_revert {
        h.raw("<p class=\"auto-revert\">Automatic revert: <strong>")
            .text(&a.outcome.to_string())
            .raw("</strong> ");
        if let Some(c) = &a.commit {
            h.raw("— ")
                .link(&format!("#c-{c}"), &format!("revert commit {c}"))
                .raw(" ");
        }
        h.raw("<span class=\"message\">")
            .text(&a.message)
            .raw("</span></p>");
    }
    if let Some(r) = &e.reverts {
        h.raw("<p class=\"reverts\">Reverts ")
            .link(
                &release_path(ns, name, &r.short),
                &format!("{} “{}”", r.short, r.subject),
            )
            .raw("</p>");
    }
    if let Some(r) = &e.reverted_by {
        h.raw("<p class=\"reverted-by\">Reverted by ")
            .link(
                &release_path(ns, name, &r.short),
                &format!("{} “{}”", r.short, r.subject),
            )
            .raw("</p>");
    }
    if !e.events.is_empty() {
        h.raw("<h4>Events</h4>");
        events_list(h, &e.events, now);
    }
}

/// A channel's timeline `main`.
pub fn timeline(t: &Timeline, now: Option<Timestamp>) -> String {
    let s = &t.summary;
    let mut h = Html::default();
    h.raw("<h1>Channel <span class=\"ns\">")
        .text(&s.namespace)
        .raw("/</span>")
        .text(&s.name)
        .raw("</h1>");
    summary_block(&mut h, s);
    let base = channel_path(&s.namespace, &s.name);
    h.raw("<p class=\"actions\">")
        .link(&format!("{base}/do/sync"), "Sync now…");
    if s.held_commit.is_some() {
        h.raw(" ").link(
            &format!("{base}/do/approve-prune"),
            "Approve the held prune…",
        );
    }
    h.raw("</p>");
    h.raw("<h2>Releases, newest first</h2>");
    if t.entries.is_empty() {
        h.raw("<p>No releases yet.</p>");
    }
    h.raw("<ol class=\"timeline\">");
    for e in &t.entries {
        let class = match e.phase {
            ReleasePhase::Failed => "entry failed",
            ReleasePhase::Active => "entry active",
            ReleasePhase::Progressing => "entry progressing",
            ReleasePhase::Superseded => "entry",
        };
        h.raw("<li")
            .attr("class", class)
            .attr("id", &format!("c-{}", e.commit.short()));
        h.raw("><article><h3>")
            .link(
                &release_path(&s.namespace, &s.name, e.commit.short()),
                &e.commit.subject,
            )
            .raw("</h3>");
        entry_body(&mut h, &s.namespace, &s.name, e, now);
        h.raw("</article></li>");
    }
    h.raw("</ol>");
    if !t.earlier_events.is_empty() {
        h.raw("<h2>Earlier events</h2>");
        events_list(&mut h, &t.earlier_events, now);
    }
    h.finish()
}

/// A release page's `main`: the entry, its revisions, its diff and where its
/// commit ran (`git`).
pub fn release(t: &Timeline, e: &Entry, git: &GitFacts, now: Option<Timestamp>) -> String {
    let s = &t.summary;
    let mut h = Html::default();
    h.raw("<h1>Release <code>")
        .text(&e.id)
        .raw("</code>: ")
        .text(&e.commit.subject)
        .raw("</h1>");
    entry_body(&mut h, &s.namespace, &s.name, e, now);
    h.raw("<p class=\"actions\">")
        .link(
            &format!(
                "{}/do/revert?commit={}",
                channel_path(&s.namespace, &s.name),
                e.commit.short()
            ),
            "Revert this release…",
        )
        .raw("</p>");
    h.raw("<h2>Revisions</h2>");
    if e.revisions.is_empty() {
        h.raw("<p>No minted workloads.</p>");
    } else {
        h.raw("<table><thead><tr><th scope=\"col\">Workload</th><th scope=\"col\">Revision</th>")
            .raw("<th scope=\"col\">Pods</th><th scope=\"col\">Images</th><th scope=\"col\">Drained</th></tr></thead><tbody>");
        for r in &e.revisions {
            h.raw("<tr><th scope=\"row\">")
                .text(&r.namespace)
                .raw("/")
                .text(&r.workload)
                .raw("</th><td><code>")
                .text(&r.revision)
                .raw("</code></td><td>");
            match r.pods {
                Some(p) => {
                    h.text(&pods_text(p));
                }
                None => {
                    h.raw("not kept");
                }
            }
            h.raw("</td><td>")
                .text(&r.images.join(", "))
                .raw("</td><td>");
            if let Some(t) = &r.drained_at {
                time(&mut h, t, now);
            }
            h.raw("</td></tr>");
        }
        h.raw("</tbody></table>");
    }
    diff_section(&mut h, t, e, &git.diff);
    ran_section(&mut h, git, now);
    h.raw("<p>")
        .link(
            &format!(
                "{}#c-{}",
                channel_path(&s.namespace, &s.name),
                e.commit.short()
            ),
            "Back to the timeline",
        )
        .raw("</p>");
    h.finish()
}

fn diff_section(h: &mut Html, t: &Timeline, e: &Entry, diff: &DiffState) {
    let s = &t.summary;
    h.raw("<section class=\"diff\" aria-labelledby=\"diff-h\"><h2 id=\"diff-h\">Changes from ");
    match &e.before {
        Some(before) => {
            let short = crate::source::short_sha(before);
            h.raw("the release before (")
                .link(&release_path(&s.namespace, &s.name, short), short)
                .raw(")");
        }
        None => {
            h.raw("nothing (the first release)");
        }
    }
    h.raw("</h2>");
    match diff {
        DiffState::Pending => {
            h.raw("<p class=\"pending\">Reading the commits from git…</p>");
        }
        DiffState::Unavailable(why) => {
            h.raw("<p class=\"why\">The diff cannot be shown: ")
                .text(why)
                .raw("</p>");
        }
        DiffState::Ready(diffs) if diffs.is_empty() => {
            h.raw("<p>The rendered objects are the same.</p>");
        }
        DiffState::Ready(diffs) => {
            h.raw("<p>Rendered objects, Secret values masked (<code>***</code>), as <code>kubemint diff</code> shows them.</p>");
            for d in diffs.iter() {
                object_diff(h, d);
            }
        }
    }
    h.raw("</section>");
}

fn object_diff(h: &mut Html, d: &ObjectDiff) {
    let (class, word) = match d.difference {
        Difference::Added => ("badge good", "added"),
        Difference::Changed => ("badge busy", "changed"),
        Difference::Removed => ("badge bad", "removed"),
    };
    h.raw("<details class=\"object\" open><summary>");
    badge(h, class, word);
    h.raw(" <span class=\"object-name\">")
        .text(&d.object)
        .raw("</span> <span class=\"file\">")
        .text(&d.file)
        .raw("</span></summary><pre class=\"unified\" tabindex=\"0\">");
    for line in d.diff.lines() {
        let class = match line.as_bytes().first() {
            Some(b'+') if !line.starts_with("+++") => Some("add"),
            Some(b'-') if !line.starts_with("---") => Some("del"),
            Some(b'@') => Some("hunk"),
            _ => None,
        };
        match class {
            Some(c) => {
                h.raw("<span")
                    .attr("class", c)
                    .raw(">")
                    .text(line)
                    .raw("\n</span>");
            }
            None => {
                h.text(line).raw("\n");
            }
        }
    }
    h.raw("</pre></details>");
}

fn ran_section(h: &mut Html, git: &GitFacts, now: Option<Timestamp>) {
    h.raw("<section class=\"ran\" aria-labelledby=\"ran-h\"><h2 id=\"ran-h\">Where it ran</h2>");
    match (&git.ran, &git.notes_error) {
        (_, Some(why)) => {
            h.raw("<p class=\"why\">The deployment notes cannot be read: ")
                .text(why)
                .raw("</p>");
        }
        (None, None) => {
            h.raw("<p class=\"pending\">Reading the deployment notes from git…</p>");
        }
        (Some(ran), None) if ran.is_empty() => {
            h.raw("<p>No other cluster's deployment notes name this commit.</p>");
        }
        (Some(ran), None) => {
            h.raw("<p>From the deployment notes in git (<code>refs/notes/kubemint/&lt;cluster&gt;</code>).</p>")
                .raw("<table><thead><tr><th scope=\"col\">Cluster</th><th scope=\"col\">Channel</th>")
                .raw("<th scope=\"col\">How it ended</th><th scope=\"col\">When</th></tr></thead><tbody>");
            for r in ran {
                ran_row(h, r, now);
            }
            h.raw("</tbody></table>");
        }
    }
    h.raw("</section>");
}

fn ran_row(h: &mut Html, r: &RanView, now: Option<Timestamp>) {
    let class = match r.phase.as_str() {
        "Active" => "badge good",
        "Failed" => "badge bad",
        _ => "badge",
    };
    h.raw("<tr><th scope=\"row\">")
        .text(&r.cluster)
        .raw("</th><td>")
        .text(&r.channel)
        .raw("</td><td>");
    badge(h, class, &r.phase);
    if let Some(m) = &r.message {
        h.raw("<div class=\"why\">").text(m).raw("</div>");
    }
    if let Some(c) = &r.revert_commit {
        h.raw("<div class=\"why\">reverted by <code>")
            .text(c)
            .raw("</code></div>");
    }
    h.raw("</td><td>");
    if !r.time.is_empty() {
        time(h, &r.time, now);
    }
    h.raw("</td></tr>");
}

/// A page's `main` saying why there is nothing else to show.
pub fn message(heading: &str, what: &str) -> String {
    let mut h = Html::default();
    h.raw("<h1>")
        .text(heading)
        .raw("</h1><p>")
        .text(what)
        .raw("</p><p><a href=\"/ui/\">All channels</a></p>");
    h.finish()
}
