//! Rendered objects, their identity and their place in the apply order.

use serde_json::Value;

use crate::api::ObjectId;

/// One rendered Kubernetes object.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Repository-relative path of the file it came from.
    pub file: String,
    /// `apiVersion` as written, e.g. `apps/v1`.
    pub api_version: String,
    /// `kind` as written.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` as written; `None` when absent (the channel's namespace applies).
    pub namespace: Option<String>,
    /// The full object after image overrides and defaults.
    pub manifest: Value,
}

impl Object {
    /// API group: `""` for the core group (`v1`), `apps` for `apps/v1`.
    pub fn group(&self) -> &str {
        split_api_version(&self.api_version).0
    }

    /// API version without the group: `v1` for `apps/v1`.
    pub fn version(&self) -> &str {
        split_api_version(&self.api_version).1
    }

    /// Stable identity (group, kind, namespace, name; not version), used for
    /// duplicates and the inventory.
    pub fn key(&self) -> ObjectId {
        ObjectId {
            group: self.group().to_string(),
            kind: self.kind.clone(),
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }
}

impl Object {
    /// Gives the object `target` when it names no namespace, for the kinds that
    /// are paired by namespace (pods and pod templates, Services, ConfigMaps,
    /// Secrets): `web` written without a namespace and `web` in `shop` are then
    /// the same object when the channel delivers to `shop`. Other kinds keep what
    /// is written; only discovery knows their scope. The manifest is not changed.
    pub(crate) fn settle_namespace(&mut self, target: &str) {
        let paired = super::pods::carries_pods(self.group(), &self.kind)
            || (self.group().is_empty()
                && matches!(self.kind.as_str(), "Service" | "ConfigMap" | "Secret"));
        if paired && self.namespace.is_none() {
            self.namespace = Some(target.to_string());
        }
    }
}

/// Splits `apiVersion` into group and version.
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// Whether `kind` in `group` is cluster-scoped in the built-in API.
///
/// Used offline by `plan`; the operator asks discovery instead, which also knows CRDs.
pub fn is_cluster_scoped_builtin(group: &str, kind: &str) -> bool {
    matches!(
        (group, kind),
        (
            "",
            "Namespace" | "Node" | "PersistentVolume" | "ComponentStatus"
        ) | ("apiextensions.k8s.io", "CustomResourceDefinition")
            | ("apiregistration.k8s.io", "APIService")
            | (
                "rbac.authorization.k8s.io",
                "ClusterRole" | "ClusterRoleBinding"
            )
            | (
                "storage.k8s.io",
                "StorageClass" | "CSIDriver" | "CSINode" | "VolumeAttachment"
            )
            | ("scheduling.k8s.io", "PriorityClass")
            | (
                "networking.k8s.io",
                "IngressClass" | "IPAddress" | "ServiceCIDR"
            )
            | ("node.k8s.io", "RuntimeClass")
            | (
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration"
                    | "MutatingWebhookConfiguration"
                    | "ValidatingAdmissionPolicy"
                    | "ValidatingAdmissionPolicyBinding"
                    | "MutatingAdmissionPolicy"
                    | "MutatingAdmissionPolicyBinding"
            )
            | (
                "certificates.k8s.io",
                "CertificateSigningRequest" | "ClusterTrustBundle"
            )
            | (
                "flowcontrol.apiserver.k8s.io",
                "FlowSchema" | "PriorityLevelConfiguration"
            )
            | ("resource.k8s.io", "DeviceClass")
            | (
                "authentication.k8s.io" | "authorization.k8s.io",
                "TokenReview"
                    | "SelfSubjectReview"
                    | "SubjectAccessReview"
                    | "SelfSubjectAccessReview"
                    | "SelfSubjectRulesReview"
            )
    )
}

/// Apply stage: 0 for CustomResourceDefinitions and Namespaces (applied and waited
/// for first, so later objects can use them), 1 for everything else.
pub fn apply_stage(obj: &Object) -> u8 {
    match (obj.group(), obj.kind.as_str()) {
        ("apiextensions.k8s.io", "CustomResourceDefinition") | ("", "Namespace") => 0,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> Object {
        Object {
            file: "f.yaml".into(),
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            namespace: ns.map(String::from),
            manifest: json!({}),
        }
    }

    #[test]
    fn group_version_and_key_display() {
        let d = obj("apps/v1", "Deployment", Some("shop"), "web");
        assert_eq!((d.group(), d.version()), ("apps", "v1"));
        assert_eq!(d.key().to_string(), "apps/Deployment/shop/web");
        let s = obj("v1", "Service", Some("shop"), "web");
        assert_eq!((s.group(), s.version()), ("", "v1"));
        assert_eq!(s.key().to_string(), "Service/shop/web");
        assert_eq!(
            obj("v1", "Namespace", None, "shop").key().to_string(),
            "Namespace/shop"
        );
        // The version is not part of the identity.
        assert_eq!(
            obj("apps/v1beta2", "Deployment", Some("shop"), "web").key(),
            d.key()
        );
    }

    #[test]
    fn stages_and_scopes() {
        assert_eq!(apply_stage(&obj("v1", "Namespace", None, "a")), 0);
        assert_eq!(
            apply_stage(&obj(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "a"
            )),
            0
        );
        assert_eq!(apply_stage(&obj("apps/v1", "Deployment", None, "a")), 1);
        assert!(is_cluster_scoped_builtin("", "Namespace"));
        assert!(is_cluster_scoped_builtin(
            "rbac.authorization.k8s.io",
            "ClusterRole"
        ));
        assert!(is_cluster_scoped_builtin(
            "apiextensions.k8s.io",
            "CustomResourceDefinition"
        ));
        assert!(!is_cluster_scoped_builtin("", "Service"));
        assert!(!is_cluster_scoped_builtin(
            "rbac.authorization.k8s.io",
            "Role"
        ));
        assert!(!is_cluster_scoped_builtin("example.com", "Namespace"));
    }
}
