//! Kubernetes defaults of list-map keys, filled in before applying.
//!
//! Service and container ports are keyed by `(port|containerPort, protocol)`.
//! Kubernetes 1.20 refused a server-side apply that left `protocol` out
//! ("associative list with keys has an element that omits key field"); 1.37
//! accepts it (observed). The defaults stay: they are what the server sets
//! anyway, and the revision hash of every workload whose ports leave
//! `protocol` out includes them, so dropping them would re-mint such
//! workloads once for nothing. Flux fills these in too.

use serde_json::Value;

use super::{pods, Object};

/// Sets `protocol: TCP` where absent on Service ports and container ports.
pub(crate) fn apply_defaults(obj: &mut Object) {
    let group = obj.group().to_string();
    if group.is_empty() && obj.kind == "Service" {
        if let Some(ports) = obj.manifest.pointer_mut("/spec/ports") {
            default_protocol(ports);
        }
    }
    if let Some(spec) = pods::pod_spec_mut(&mut obj.manifest, &group, &obj.kind) {
        for container in pods::containers_mut(spec) {
            if let Some(ports) = container.get_mut("ports") {
                default_protocol(ports);
            }
        }
    }
}

fn default_protocol(ports: &mut Value) {
    for port in ports.as_array_mut().into_iter().flatten() {
        if let Some(port) = port.as_object_mut() {
            let protocol = port.entry("protocol").or_insert(Value::Null);
            if protocol.is_null() {
                *protocol = Value::from("TCP");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(api_version: &str, kind: &str, manifest: Value) -> Object {
        Object {
            file: "f.yaml".into(),
            api_version: api_version.into(),
            kind: kind.into(),
            name: "x".into(),
            namespace: None,
            manifest,
        }
    }

    #[test]
    fn service_ports_get_tcp_unless_set() {
        let mut s = obj(
            "v1",
            "Service",
            json!({"spec": {"ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}}),
        );
        apply_defaults(&mut s);
        assert_eq!(
            s.manifest["spec"]["ports"],
            json!([{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}])
        );
    }

    #[test]
    fn container_and_init_container_ports_get_tcp_in_all_pod_kinds() {
        let pod_spec = json!({
            "containers": [{"name": "a", "ports": [{"containerPort": 8080}]}],
            "initContainers": [{"name": "i", "ports": [{"containerPort": 9000, "protocol": "SCTP"}, {"containerPort": 1}]}]
        });
        let expected = json!({
            "containers": [{"name": "a", "ports": [{"containerPort": 8080, "protocol": "TCP"}]}],
            "initContainers": [{"name": "i", "ports": [{"containerPort": 9000, "protocol": "SCTP"}, {"containerPort": 1, "protocol": "TCP"}]}]
        });
        let cases = [
            (
                "apps/v1",
                "Deployment",
                json!({"spec": {"template": {"spec": pod_spec.clone()}}}),
                "/spec/template/spec",
            ),
            (
                "apps/v1",
                "StatefulSet",
                json!({"spec": {"template": {"spec": pod_spec.clone()}}}),
                "/spec/template/spec",
            ),
            (
                "batch/v1",
                "Job",
                json!({"spec": {"template": {"spec": pod_spec.clone()}}}),
                "/spec/template/spec",
            ),
            (
                "batch/v1",
                "CronJob",
                json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec.clone()}}}}}),
                "/spec/jobTemplate/spec/template/spec",
            ),
            ("v1", "Pod", json!({"spec": pod_spec.clone()}), "/spec"),
        ];
        for (api, kind, manifest, pointer) in cases {
            let mut o = obj(api, kind, manifest);
            apply_defaults(&mut o);
            assert_eq!(o.manifest.pointer(pointer), Some(&expected), "{kind}");
        }
    }

    #[test]
    fn other_kinds_are_untouched() {
        let m = json!({"spec": {"ports": [{"port": 80}], "template": {"spec": {"containers": [{"ports": [{"containerPort": 1}]}]}}}});
        let mut o = obj("example.com/v1", "Service", m.clone());
        apply_defaults(&mut o);
        assert_eq!(o.manifest, m);
    }
}
