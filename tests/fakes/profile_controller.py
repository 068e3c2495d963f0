"""Emulation of Kubeflow's profile controller, the component our charm has to live with.

It mirrors what the upstream controller does on reconcile (namespace, owner
AuthorizationPolicy, default service accounts and bindings, namespaceAdmin binding,
resource quota) including its quirks: it refuses namespaces whose `owner` annotation
differs, and it never re-owns an existing AuthorizationPolicy or namespaceAdmin binding.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.kube_store import (
    RBAC_GROUP,
    ApiStatusError,
    JSONDict,
    ResourceType,
    Store,
    clone,
)

__all__ = ["MANAGER", "MODES", "ProfileController"]

MANAGER = "profile-controller"
MODES = ("sync", "manual", "off")
PROFILE_GROUP = "kubeflow.org"
NAMESPACE_LABELS = {"app.kubernetes.io/part-of": "kubeflow-profile", "istio-injection": "enabled"}
OWNER_POLICY = "ns-owner-access-istio"
ADMIN_BINDING = "namespaceAdmin"
QUOTA = "kf-resource-quota"
INGRESS_PRINCIPAL = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
PIPELINE_UI_PRINCIPAL = "cluster.local/ns/kubeflow/sa/ml-pipeline-ui"
USERID_HEADER = "kubeflow-userid"


def _name(obj: JSONDict | None) -> str:
    return ((obj or {}).get("metadata") or {}).get("name", "")


def _annotations(obj: JSONDict | None) -> dict[str, Any]:
    return ((obj or {}).get("metadata") or {}).get("annotations") or {}


def _profile_owners(obj: JSONDict | None) -> set[str]:
    refs = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
    return {
        r.get("name", "")
        for r in refs
        if isinstance(r, dict)
        and r.get("kind") == "Profile"
        and str(r.get("apiVersion", "")).startswith(f"{PROFILE_GROUP}/")
    }


class ProfileController:
    """Reconciles Profiles into namespaces and their default objects.

    mode "sync" reconciles right after each write that the real controller watches (before
    the HTTP response returns); "manual" only on reconcile(); "off" never on its own.
    """

    def __init__(self, store: Store, mode: str = "sync") -> None:
        self._store = store
        self._mode = "sync"
        self.mode = mode
        self.reconcile_count = 0
        self._pending: set[str] = set()
        self._busy = False
        store.listener = self._observe

    @property
    def mode(self) -> str:
        """Return the reconcile mode: "sync", "manual" or "off"."""
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"profile controller mode must be one of {MODES}, not {value!r}")
        self._mode = value

    def reconcile(self, name: str | None = None) -> None:
        """Reconcile one Profile by name, or every Profile when name is None."""
        with self._store.lock:
            rt = self._profiles()
            if rt is None:
                return
            names = [name] if name is not None else [_name(p) for p in self._store.list_objs(rt)]
            for each in names:
                self._reconcile_one(each)

    def flush(self) -> None:
        """Run the reconciles queued by the last write (only in "sync" mode)."""
        with self._store.lock:
            names = sorted(self._pending)
            self._pending.clear()
            if self._mode == "sync":
                for name in names:
                    self._reconcile_one(name)

    # ------------------------------------------------------------------ watch emulation

    def _observe(self, rt: ResourceType, old: JSONDict | None, new: JSONDict | None) -> None:
        if self._busy:
            return  # the controller's own writes do not retrigger it
        if rt.group == PROFILE_GROUP and rt.plural == "profiles":
            if new is not None:
                self._pending.add(_name(new))
            return
        self._pending |= _profile_owners(old) | _profile_owners(new)
        if rt.group == "" and rt.plural == "namespaces":
            before, after = _annotations(old).get("owner"), _annotations(new).get("owner")
            if old is None or new is None or before != after:
                self._pending.add(_name(new or old))

    # ------------------------------------------------------------------ reconcile

    def _profiles(self) -> ResourceType | None:
        return self._store.type_for(PROFILE_GROUP, "profiles")

    def _reconcile_one(self, name: str) -> None:
        rt = self._profiles()
        profile = self._store.get_obj(rt, None, name) if rt is not None else None
        if rt is None or profile is None:
            return
        self.reconcile_count += 1
        self._busy = True
        try:
            self._sync(rt, profile)
        except ApiStatusError:
            pass  # the real controller logs, requeues and tries again later
        finally:
            self._busy = False

    def _sync(self, rt: ResourceType, profile: JSONDict) -> None:
        spec = profile.get("spec") or {}
        owner = spec.get("owner") or {}
        owner_name = str(owner.get("name", ""))
        if not self._sync_namespace(rt, profile, owner_name):
            return
        if not self._sync_owner_policy(profile, owner_name):
            return
        for account, role in (
            ("default-editor", "kubeflow-edit"),
            ("default-viewer", "kubeflow-view"),
        ):
            self._sync_service_account(profile, account, role)
        self._sync_admin_binding(profile, owner)
        self._sync_quota(profile, spec.get("resourceQuotaSpec") or {})

    def _type(self, group: str, plural: str) -> ResourceType | None:
        return self._store.type_for(group, plural)

    def _create(self, rt: ResourceType, namespace: str | None, obj: JSONDict) -> None:
        self._store.create(rt, rt.versions[0], namespace, obj, manager=MANAGER)

    def _replace(self, rt: ResourceType, obj: JSONDict, subresource: str = "") -> None:
        meta = obj["metadata"]
        self._store.replace(
            rt,
            rt.versions[0],
            meta.get("namespace"),
            meta["name"],
            obj,
            manager=MANAGER,
            subresource=subresource,
        )

    @staticmethod
    def _owner_ref(profile: JSONDict) -> JSONDict:
        meta = profile["metadata"]
        return {
            "apiVersion": profile.get("apiVersion", f"{PROFILE_GROUP}/v1"),
            "kind": "Profile",
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def _meta(
        self, profile: JSONDict, name: str, annotations: dict[str, str] | None = None
    ) -> JSONDict:
        meta: JSONDict = {
            "name": name,
            "namespace": _name(profile),
            "ownerReferences": [self._owner_ref(profile)],
        }
        if annotations:
            meta["annotations"] = annotations
        return meta

    def _sync_namespace(self, rt: ResourceType, profile: JSONDict, owner_name: str) -> bool:
        ns_rt = self._type("", "namespaces")
        if ns_rt is None:
            return False
        name = _name(profile)
        namespace = self._store.get_obj(ns_rt, None, name)
        if namespace is None:
            meta = self._meta(profile, name, {"owner": owner_name})
            del meta["namespace"]
            meta["labels"] = dict(NAMESPACE_LABELS)
            self._create(ns_rt, None, {"apiVersion": "v1", "kind": "Namespace", "metadata": meta})
            return True
        annotations = _annotations(namespace)
        if "owner" not in annotations or annotations["owner"] != owner_name:
            self._fail(
                rt,
                profile,
                f"namespace already exist, but not owned by profile creator {owner_name}",
            )
            return False
        labels = (namespace.get("metadata") or {}).get("labels") or {}
        if any(labels.get(k) != v for k, v in NAMESPACE_LABELS.items()):
            updated = clone(namespace)
            updated["metadata"].setdefault("labels", {}).update(NAMESPACE_LABELS)
            self._replace(ns_rt, updated)
        return True

    def _fail(self, rt: ResourceType, profile: JSONDict, message: str) -> None:
        updated = clone(profile)
        status = updated.get("status") if isinstance(updated.get("status"), dict) else {}
        conditions = list(status.get("conditions") or [])
        conditions.append({"type": "Failed", "message": message})
        updated["status"] = {**status, "conditions": conditions}
        updated["metadata"].pop("resourceVersion", None)
        self._replace(rt, updated, subresource="status")

    def _sync_owner_policy(self, profile: JSONDict, owner_name: str) -> bool:
        ap_rt = self._type("security.istio.io", "authorizationpolicies")
        if ap_rt is None:
            return False  # upstream fails the reconcile when Istio's CRD is missing
        namespace = _name(profile)
        if self._store.get_obj(ap_rt, namespace, OWNER_POLICY) is not None:
            return True  # upstream never re-owns an existing policy
        rules = [
            {
                "from": [{"source": {"principals": [INGRESS_PRINCIPAL]}}],
                "when": [{"key": f"request.headers[{USERID_HEADER}]", "values": [owner_name]}],
            },
            {"when": [{"key": "source.namespace", "values": [namespace]}]},
            {"to": [{"operation": {"paths": ["/healthz", "/metrics", "/wait-for-drain"]}}]},
            {"from": [{"source": {"principals": [PIPELINE_UI_PRINCIPAL]}}]},
        ]
        policy = {
            "apiVersion": ap_rt.api_version(),
            "kind": "AuthorizationPolicy",
            "metadata": self._meta(profile, OWNER_POLICY, {"user": owner_name, "role": "admin"}),
            "spec": {"action": "ALLOW", "rules": rules},
        }
        self._create(ap_rt, namespace, policy)
        return True

    def _sync_service_account(self, profile: JSONDict, account: str, role: str) -> None:
        sa_rt = self._type("", "serviceaccounts")
        rb_rt = self._type(RBAC_GROUP, "rolebindings")
        namespace = _name(profile)
        if sa_rt is not None and self._store.get_obj(sa_rt, namespace, account) is None:
            sa = {"apiVersion": "v1", "kind": "ServiceAccount"}
            self._create(sa_rt, namespace, {**sa, "metadata": self._meta(profile, account)})
        if rb_rt is None:
            return
        subjects = [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]
        found = self._store.get_obj(rb_rt, namespace, account)
        if found is None:
            binding = {
                "apiVersion": rb_rt.api_version(),
                "kind": "RoleBinding",
                "metadata": self._meta(profile, account),
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
                "subjects": subjects,
            }
            self._create(rb_rt, namespace, binding)
        elif found.get("subjects") != subjects:
            updated = clone(found)
            updated["subjects"] = subjects
            self._replace(rb_rt, updated)

    def _sync_admin_binding(self, profile: JSONDict, owner: JSONDict) -> None:
        rb_rt = self._type(RBAC_GROUP, "rolebindings")
        namespace = _name(profile)
        if rb_rt is None or self._store.get_obj(rb_rt, namespace, ADMIN_BINDING) is not None:
            return  # upstream only creates it; an existing one is left alone
        owner_name = str(owner.get("name", ""))
        binding = {
            "apiVersion": rb_rt.api_version(),
            "kind": "RoleBinding",
            "metadata": self._meta(profile, ADMIN_BINDING, {"user": owner_name, "role": "admin"}),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "kubeflow-admin"},
            "subjects": [clone(owner)],
        }
        self._create(rb_rt, namespace, binding)

    def _sync_quota(self, profile: JSONDict, quota_spec: JSONDict) -> None:
        rq_rt = self._type("", "resourcequotas")
        if rq_rt is None:
            return
        namespace = _name(profile)
        found = self._store.get_obj(rq_rt, namespace, QUOTA)
        if quota_spec.get("hard"):
            if found is None:
                quota = {"apiVersion": "v1", "kind": "ResourceQuota"}
                meta = self._meta(profile, QUOTA)
                self._create(
                    rq_rt, namespace, {**quota, "metadata": meta, "spec": clone(quota_spec)}
                )
            elif found.get("spec") != quota_spec:
                updated = clone(found)
                updated["spec"] = clone(quota_spec)
                self._replace(rq_rt, updated)
        elif found is not None:
            self._store.delete(rq_rt, namespace, QUOTA)
