//! Table tests of [`plan`](super::plan): a small model of the cluster carries
//! the actions out, pods become ready between passes, and after every prefix of
//! every pass's actions the next passes must converge without a pinned Service
//! that served ready pods ever selecting none.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::render::{render, EntryKind, RenderOptions, RepoTree, TreeEntry};

const NS: &str = "shop";

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + secs).unwrap()
}

fn deployment(name: &str, image: &str, replicas: i32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers: [{{name: {name}, image: \"{image}\", envFrom: [{{configMapRef: {{name: {name}-config}}}}]}}]\n"
    )
}

fn service(name: &str) -> String {
    format!("apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: 80}}]\n")
}

fn config(name: &str, value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}-config}}\ndata: {{VALUE: \"{value}\"}}\n")
}

/// Files of one workload with its Service and ConfigMap.
fn workload(name: &str, image: &str, value: &str) -> Vec<(String, String)> {
    vec![
        (format!("{name}/deploy.yaml"), deployment(name, image, 2)),
        (format!("{name}/svc.yaml"), service(name)),
        (format!("{name}/config.yaml"), config(name, value)),
    ]
}

fn desired(files: &[(String, String)], commit: &str) -> DesiredRelease {
    let tree = RepoTree {
        entries: files
            .iter()
            .map(|(p, c)| TreeEntry {
                path: p.clone(),
                kind: EntryKind::File(c.as_bytes().to_vec()),
            })
            .collect(),
    };
    let release = render(
        &tree,
        &RenderOptions {
            path: ".".into(),
            namespace: Some(NS.into()),
            ..Default::default()
        },
    )
    .unwrap();
    let minted = mint(&release, &|_| None);
    DesiredRelease::new(&release.id, commit, "ops.shop", &minted, &|o| {
        Some(o.namespace.clone().unwrap_or_else(|| NS.to_string()))
    })
}

fn settings() -> Settings {
    Settings {
        ready_timeout: Duration::from_secs(600),
        test_timeout: Duration::from_secs(300),
        drain: Duration::from_secs(30),
        keep: 2,
        prune: true,
        retry: String::new(),
    }
}

/// The simulator, strict: a Service that served ready pods and selects none fails the test.
#[derive(Clone)]
struct World(Simulator);

impl std::ops::Deref for World {
    type Target = Simulator;
    fn deref(&self) -> &Simulator {
        &self.0
    }
}

impl std::ops::DerefMut for World {
    fn deref_mut(&mut self) -> &mut Simulator {
        &mut self.0
    }
}

impl World {
    fn new() -> Self {
        let mut sim = Simulator::new(Observed::default(), Vec::new(), t(0));
        sim.strict = true;
        World(sim)
    }

    /// Passes until the release is active (or failed for good); the phases seen.
    fn converge(&mut self, desired: &DesiredRelease, settings: &Settings) -> Vec<Phase> {
        let plans = self.0.converge(desired, settings);
        let phases: Vec<Phase> = plans.iter().map(|p| p.phase.clone()).collect();
        assert!(
            Simulator::converged(&plans),
            "no convergence; phases: {phases:?}"
        );
        phases
    }

    fn serving(&self, service: &str) -> Option<String> {
        self.serving_in(NS, service)
    }
}

fn hash_of(desired: &DesiredRelease, workload: &str) -> String {
    desired
        .revisions
        .iter()
        .find(|r| r.workload.1 == workload)
        .unwrap()
        .hash
        .clone()
}

/// Converges `desired` from `world` after every prefix of every pass, and
/// returns the world converged without interruption.
fn converge_from_every_prefix(world: &World, desired: &DesiredRelease, s: &Settings) -> World {
    let mut straight = world.clone();
    let mut passes = 0;
    loop {
        let plan = straight.plan(desired, s);
        for k in 0..=plan.actions.len() {
            let mut crashed = straight.clone();
            for action in &plan.actions[..k] {
                crashed.act(action, desired);
            }
            crashed.settle();
            let phases = crashed.converge(desired, s);
            assert!(
                matches!(phases.last(), Some(Phase::Active | Phase::Failed { .. })),
                "after {k} actions of pass {passes}: {phases:?}"
            );
        }
        let done = plan.phase == Phase::Active && plan.actions.is_empty();
        for action in &plan.actions {
            straight.act(action, desired);
        }
        straight.inventory = plan.inventory.clone();
        if done || passes > 12 {
            return straight;
        }
        straight.settle();
        straight.now = straight
            .now
            .checked_add(
                plan.requeue
                    .unwrap_or(Duration::from_secs(1))
                    .max(Duration::from_secs(1)),
            )
            .unwrap();
        passes += 1;
    }
}

fn shop(web_image: &str, value: &str) -> Vec<(String, String)> {
    let mut files = workload("web", web_image, value);
    files.extend(workload("api", "api:1", "a"));
    files
}

#[test]
fn first_delivery_creates_everything_and_pins_services_to_the_new_revisions() {
    let a = desired(&shop("web:1", "x"), "c1");
    let world = World::new();
    let plan = world.plan(&a, &settings());
    let kinds: Vec<&str> = plan.actions.iter().map(Action::kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "create-revision").count(), 2);
    assert!(matches!(plan.phase, Phase::Progressing { .. }));
    let world = converge_from_every_prefix(&world, &a, &settings());
    assert_eq!(world.serving("web"), Some(hash_of(&a, "web")));
    // Nothing left to do: no writes when nothing changes.
    assert!(world.plan(&a, &settings()).actions.is_empty());
    let mut world = world;
    world.converge(&a, &settings());
}

#[test]
fn an_image_bump_writes_only_the_new_revision_the_switch_and_the_drain() {
    let a = desired(&shop("web:1", "x"), "c1");
    let b = desired(&shop("web:2", "x"), "c2");
    let mut world = World::new();
    world.converge(&a, &settings());
    let mut writes = Vec::new();
    for _ in 0..10 {
        let plan = world.run(&b, &settings());
        writes.extend(plan.actions.iter().map(|a| a.kind()));
        if plan.phase == Phase::Active && plan.actions.is_empty() {
            break;
        }
        world.settle();
        world.now = world.now.checked_add(Duration::from_secs(31)).unwrap();
    }
    assert_eq!(
        writes,
        ["create-revision", "switch", "mark-promoted", "drain"],
        "one image bump"
    );
    assert_eq!(world.serving("web"), Some(hash_of(&b, "web")));
    assert_eq!(world.serving("api"), Some(hash_of(&a, "api")));
}

#[test]
fn every_prefix_of_an_image_and_config_change_converges() {
    let a = desired(&shop("web:1", "x"), "c1");
    let b = desired(&shop("web:2", "y"), "c2");
    let mut world = World::new();
    world.converge(&a, &settings());
    let world = converge_from_every_prefix(&world, &b, &settings());
    assert_eq!(world.serving("web"), Some(hash_of(&b, "web")));
    let old = format!("web-{}", hash_of(&a, "web"));
    assert_eq!(
        world.replicas(&old),
        Some(0),
        "the previous revision is drained"
    );
}

#[test]
fn going_back_to_a_kept_release_scales_it_up_before_switching() {
    let a = desired(&shop("web:1", "x"), "c1");
    let b = desired(&shop("web:2", "x"), "c2");
    let mut world = World::new();
    world.converge(&a, &settings());
    world.converge(&b, &settings());
    let a_web = format!("web-{}", hash_of(&a, "web"));
    assert_eq!(world.replicas(&a_web), Some(0));
    // Force-push back to A: B serves until A is ready again.
    let plan = world.plan(&a, &settings());
    assert!(plan.actions.iter().all(|x| x.kind() != "switch"));
    assert!(plan.actions.iter().all(|x| x.kind() != "drain"));
    assert!(matches!(plan.phase, Phase::Progressing { .. }));
    let world = converge_from_every_prefix(&world, &a, &settings());
    assert_eq!(world.serving("web"), Some(hash_of(&a, "web")));
}

#[test]
fn drain_seconds_zero_promotes_and_drains_in_one_pass() {
    let a = desired(&shop("web:1", "x"), "c1");
    let b = desired(&shop("web:2", "x"), "c2");
    let s = Settings {
        drain: Duration::ZERO,
        ..settings()
    };
    let mut world = World::new();
    world.converge(&a, &s);
    world.run(&b, &s);
    world.settle();
    let plan = world.plan(&b, &s);
    let kinds: Vec<&str> = plan.actions.iter().map(Action::kind).collect();
    assert_eq!(kinds, ["switch", "mark-promoted", "drain"]);
    converge_from_every_prefix(&world, &b, &s);
}

#[test]
fn a_release_not_ready_in_time_fails_keeps_traffic_and_is_held_until_retried() {
    let a = desired(&shop("web:1", "x"), "c1");
    let b = desired(&shop("web:2", "x"), "c2");
    let mut world = World::new();
    world.converge(&a, &settings());
    let b_web = format!("web-{}", hash_of(&b, "web"));
    world.broken.insert(b_web.clone());
    world.run(&b, &settings());
    world.settle();
    world.now = world.now.checked_add(Duration::from_secs(601)).unwrap();
    let phases = world.converge(&b, &settings());
    assert!(
        matches!(phases.last(), Some(Phase::Failed { .. })),
        "{phases:?}"
    );
    assert_eq!(world.serving("web"), Some(hash_of(&a, "web")));
    assert_eq!(world.replicas(&b_web), Some(0));
    // Held: the next passes do not scale it up again.
    let held = world.plan(&b, &settings());
    assert!(held.actions.is_empty(), "{:?}", held.actions);
    assert!(matches!(held.phase, Phase::Failed { now: false, .. }));
    // A retry request scales it up again.
    world.broken.clear();
    let retry = Settings {
        retry: "1".into(),
        ..settings()
    };
    let plan = world.plan(&b, &retry);
    assert!(plan.retrying);
    assert!(plan.actions.iter().any(|x| x.kind() == "create-revision"));
    world.converge(&b, &retry);
    assert_eq!(world.serving("web"), Some(hash_of(&b, "web")));
}

#[test]
fn a_removed_workload_is_pruned_at_promotion_and_its_revisions_deleted_after_the_drain() {
    let a = desired(&shop("web:1", "x"), "c1");
    let b = desired(&workload("web", "web:2", "x"), "c2");
    let mut world = World::new();
    world.converge(&a, &settings());
    let world = converge_from_every_prefix(&world, &b, &settings());
    assert!(world.observed.revisions.iter().all(|r| r.workload != "api"));
    assert!(world.serving("api").is_none(), "its Service is pruned");
    assert!(world.inventory.iter().all(|e| !e.name.starts_with("api")));
    assert!(world
        .observed
        .copies
        .iter()
        .all(|c| !c.name.starts_with("api-config")));
}

#[test]
fn revisions_past_keep_releases_are_deleted_and_their_config_copies_with_them() {
    let s = Settings {
        keep: 1,
        ..settings()
    };
    let mut world = World::new();
    let releases: Vec<DesiredRelease> = (1..=4)
        .map(|i| {
            desired(
                &shop(&format!("web:{i}"), &format!("v{i}")),
                &format!("c{i}"),
            )
        })
        .collect();
    for r in &releases {
        world.converge(r, &s);
    }
    let web: Vec<&LiveRevision> = world
        .observed
        .revisions
        .iter()
        .filter(|r| r.workload == "web")
        .collect();
    assert_eq!(web.len(), 2, "the serving revision and one kept");
    let copies: BTreeMap<&str, usize> =
        world
            .observed
            .copies
            .iter()
            .fold(BTreeMap::new(), |mut m, c| {
                *m.entry(c.name.split('-').next().unwrap()).or_default() += 1;
                m
            });
    assert_eq!(
        copies.get("web"),
        Some(&2),
        "copies read by the two revisions"
    );
}

#[test]
fn an_adopted_service_keeps_its_live_selector_until_the_first_revision_is_ready() {
    let a = desired(&shop("web:1", "x"), "c1");
    let mut world = World::new();
    world.observed.services.insert(
        (NS.into(), "web".into()),
        LiveService {
            selector: [("app".to_string(), "web".to_string())].into(),
        },
    );
    world.observed.objects.insert(
        ObjectId {
            group: String::new(),
            kind: "Service".into(),
            namespace: Some(NS.into()),
            name: "web".into(),
        },
        LiveObject {
            applied_hash: None,
            foreign_managers: vec!["kubectl-client-side-apply".into()],
            edited_by: None,
            edits: Vec::new(),
        },
    );
    let plan = world.run(&a, &settings());
    assert_eq!(world.serving("web"), None, "still the hand-made selector");
    assert!(plan.actions.iter().all(|x| x.kind() != "switch"));
    world.settle();
    world.converge(&a, &settings());
    assert_eq!(world.serving("web"), Some(hash_of(&a, "web")));
}

#[test]
fn a_hand_edit_is_put_back_and_an_unchanged_object_is_not_written() {
    // An edit of fields the release does not declare (a controller's own) is no drift.
    {
        let a = desired(&shop("web:1", "x"), "c1");
        let mut world = World::new();
        world.converge(&a, &settings());
        let id = a
            .objects
            .iter()
            .find(|o| o.id.kind == "Service")
            .unwrap()
            .id
            .clone();
        let live = world.observed.objects.get_mut(&id).unwrap();
        live.edited_by = Some("kube-controller-manager".into());
        live.edits = vec![("kube-controller-manager".into(), vec!["/secrets".into()])];
        assert!(world.plan(&a, &settings()).actions.is_empty());
    }
    let a = desired(&shop("web:1", "x"), "c1");
    let mut world = World::new();
    world.converge(&a, &settings());
    let id = a
        .objects
        .iter()
        .find(|o| o.id.kind == "Service")
        .unwrap()
        .id
        .clone();
    let live = world.observed.objects.get_mut(&id).unwrap();
    live.edited_by = Some("kubectl-patch".into());
    live.edits = vec![("kubectl-patch".into(), vec!["/spec/ports".into()])];
    let plan = world.plan(&a, &settings());
    assert_eq!(plan.actions.len(), 1);
    assert!(matches!(
        &plan.actions[0],
        Action::Apply { reason: ApplyReason::Drift { manager }, .. } if manager == "kubectl-patch"
    ));
}

#[test]
fn a_service_pointed_by_hand_at_unready_pods_is_put_back_to_the_serving_revision() {
    let a = desired(&shop("web:1", "x"), "c1");
    let b = desired(&shop("web:2", "x"), "c2");
    let mut world = World::new();
    world.converge(&a, &settings());
    world.converge(&b, &settings());
    // Someone points web at A's drained revision.
    let a_hash = hash_of(&a, "web");
    world
        .observed
        .services
        .get_mut(&(NS.to_string(), "web".to_string()))
        .unwrap()
        .selector
        .insert(REVISION_LABEL.into(), a_hash);
    let id = a
        .objects
        .iter()
        .find(|o| o.id.name == "web" && o.id.kind == "Service")
        .unwrap()
        .id
        .clone();
    let live = world.observed.objects.get_mut(&id).unwrap();
    live.edited_by = Some("kubectl-edit".into());
    live.edits = vec![("kubectl-edit".into(), vec!["/spec/selector".into()])];
    world.served.clear();
    world.run(&b, &settings());
    assert_eq!(world.serving("web"), Some(hash_of(&b, "web")));
}

fn hpa(name: &str, min: i32, max: i32) -> (String, String) {
    (
        format!("{name}/hpa.yaml"),
        format!("apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: {name}}}\nspec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {name}}}\n  minReplicas: {min}\n  maxReplicas: {max}\n"),
    )
}

fn hpa_target(plan: &Plan) -> Option<String> {
    plan.actions.iter().find_map(|a| match a {
        Action::Apply { id, manifest, .. } | Action::Switch { id, manifest, .. }
            if id.kind == "HorizontalPodAutoscaler" =>
        {
            manifest["spec"]["scaleTargetRef"]["name"]
                .as_str()
                .map(str::to_string)
        }
        _ => None,
    })
}

#[test]
fn an_autoscaled_workload_starts_at_the_serving_size_and_its_autoscaler_follows_the_switch() {
    let mut a_files = shop("web:1", "x");
    a_files.push(hpa("web", 2, 8));
    let mut b_files = shop("web:2", "x");
    b_files.push(hpa("web", 2, 8));
    let a = desired(&a_files, "c1");
    let b = desired(&b_files, "c2");
    let a_web = format!("web-{}", hash_of(&a, "web"));
    let b_web = format!("web-{}", hash_of(&b, "web"));
    let mut world = World::new();
    let first = world.plan(&a, &settings());
    assert_eq!(
        hpa_target(&first),
        Some(a_web.clone()),
        "retargeted to the ReplicaSet"
    );
    world.converge(&a, &settings());

    // The autoscaler scales the serving revision up: kubemint leaves it there.
    let rs = world.revision_mut(NS, &a_web).expect("revision exists");
    rs.replicas = 6;
    rs.ready = 6;
    rs.available = 6;
    rs.meta.edited_by = Some("kube-controller-manager".into());
    assert!(
        world.plan(&a, &settings()).actions.is_empty(),
        "no fight over replicas"
    );

    // The next release starts at the serving size, not the Deployment's 2.
    let plan = world.run(&b, &settings());
    let created = plan.actions.iter().find_map(|x| match x {
        Action::ApplyRevision { name, replicas, .. } if *name == b_web => Some(*replicas),
        _ => None,
    });
    assert_eq!(created, Some(6));
    assert_eq!(
        hpa_target(&plan),
        None,
        "the autoscaler stays on the serving revision"
    );
    world.settle();
    let plan = world.plan(&b, &settings());
    let switch = plan.actions.iter().any(|x| {
        matches!(x, Action::Switch { id, to, .. } if id.kind == "HorizontalPodAutoscaler" && *to == b_web)
    });
    assert!(switch, "retargeted with the Services: {:?}", plan.actions);
    world.converge(&b, &settings());
    assert_eq!(world.serving("web"), Some(hash_of(&b, "web")));
    assert_eq!(world.replicas(&b_web), Some(6));

    // Without its autoscaler the workload returns to the Deployment's replicas.
    let c = desired(&shop("web:2", "x"), "c3");
    world.converge(&c, &settings());
    assert_eq!(world.replicas(&b_web), Some(2));
}

#[test]
fn a_revision_of_zero_replicas_is_ready_before_its_controller_has_seen_it() {
    // The ReplicaSet controller may take seconds to report on hundreds of new
    // ReplicaSets (its client is rate limited); one that runs no pods has
    // nothing to wait for, whatever its status says.
    let files = vec![
        ("web.yaml".to_string(), deployment("web", "web:1", 0)),
        ("web-svc.yaml".to_string(), service("web")),
    ];
    let a = desired(&files, "c1");
    let mut world = World::new();
    world.run(&a, &settings());
    for r in &mut world.observed.revisions {
        r.observed = false;
    }
    let plan = world.run(&a, &settings());
    assert!(
        !matches!(plan.phase, Phase::Progressing { .. }),
        "{:?}",
        plan.phase
    );
    assert_eq!(world.serving("web"), Some(hash_of(&a, "web")));

    // A revision that runs pods still waits for its controller.
    let b = desired(&shop("web:2", "x"), "c2");
    let mut world = World::new();
    world.run(&b, &settings());
    for r in &mut world.observed.revisions {
        r.observed = false;
        r.ready = r.replicas;
        r.available = r.replicas;
    }
    let plan = world.run(&b, &settings());
    assert!(
        matches!(plan.phase, Phase::Progressing { .. }),
        "{:?}",
        plan.phase
    );
}
