//! A local cluster for development, by hand: `cargo run --example dev-cluster`.
//!
//! Starts the tests' control plane and node (`tests/cluster/up.sh`: etcd,
//! kube-apiserver, kube-controller-manager and kube-scheduler of the release
//! that `tests/cluster/install.sh` builds, and kwok simulating the node's
//! kubelet), prints the kubeconfig, and keeps them running until interrupted
//! (Ctrl-C); they stop with this process. Pods scheduled to the node are
//! marked Running and Ready; a pod annotated `sim.kubemint.io/unready: "true"`
//! stays unready, and a Job's pod annotated `sim.kubemint.io/fail: "true"`
//! fails (the ConfigMap `kubemint-sim/control` sets these on new pods; see
//! `tests/cluster/kwok/policy.yaml`).

#[path = "../support/mod.rs"]
mod support;

fn main() {
    let cluster = support::cluster();
    let kubeconfig = cluster.kubeconfig().display().to_string();
    let state = cluster.state_dir.as_ref().map(|d| d.display().to_string());
    println!(
        "A local control plane runs, with the node `{}` (kubelet simulated by kwok).",
        support::NODE_NAME
    );
    println!("  export KUBECONFIG={kubeconfig}");
    if let Some(state) = state {
        println!("  logs and the audit log: {state}");
    }
    println!("Ctrl-C stops it.");
    loop {
        std::thread::park();
    }
}
