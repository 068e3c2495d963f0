"""Emulation of Kubeflow's profile controller, the component our charm has to live with.

It mirrors what the upstream controller does on reconcile (namespace, owner
AuthorizationPolicy, default service accounts and bindings, namespaceAdmin binding,
resource quota, the Profile written back through its Go types) including its quirks: it
refuses namespaces whose `owner` annotation differs, it never re-owns an existing
namespaceAdmin binding, and it rewrites the owner policy's spec (not its annotations)
whenever it differs from the settings. Settings are upstream Kubeflow's or Charmed
Kubeflow's (sidecar or ambient: a waypoint Gateway and `targetRefs` on the owner policy).
Like the real one it reconciles asynchronously by default, `delay` seconds after a write.
"""

from __future__ import annotations

import decimal
import heapq
import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

from tests.fakes.kube_store import (
    RBAC_GROUP,
    ApiStatusError,
    JSONDict,
    ResourceType,
    Store,
    clone,
)

__all__ = [
    "CHARMED_AMBIENT",
    "CHARMED_SIDECAR",
    "MANAGER",
    "MODES",
    "UPSTREAM",
    "ControllerSettings",
    "ProfileController",
    "canonical_quantity",
]

MANAGER = "profile-controller"
MODES = ("async", "sync", "manual", "off")
DEFAULT_DELAY = 0.1
PROFILE_GROUP = "kubeflow.org"
GATEWAY_GROUP = "gateway.networking.k8s.io"
PROFILE_LABEL = {"app.kubernetes.io/part-of": "kubeflow-profile"}
SIDECAR_LABELS = {**PROFILE_LABEL, "istio-injection": "enabled"}
NAMESPACE_LABELS = SIDECAR_LABELS
OWNER_POLICY = "ns-owner-access-istio"
ADMIN_BINDING = "namespaceAdmin"
QUOTA = "kf-resource-quota"
WAYPOINT = "waypoint"
INGRESS_PRINCIPAL = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
PIPELINE_UI_PRINCIPAL = "cluster.local/ns/kubeflow/sa/ml-pipeline-ui"
NOTEBOOK_CONTROLLER_PRINCIPAL = "cluster.local/ns/kubeflow/sa/notebook-controller-service-account"
USERID_HEADER = "kubeflow-userid"


@dataclass(frozen=True)
class ControllerSettings:
    """The controller's environment and flags (KFAM is deployed with the same ones)."""

    ingress_gateway_principal: str = INGRESS_PRINCIPAL  # ISTIO_INGRESS_GATEWAY_PRINCIPAL
    kfp_ui_principal: str = PIPELINE_UI_PRINCIPAL  # KFP_UI_PRINCIPAL
    notebook_controller_principal: str = NOTEBOOK_CONTROLLER_PRINCIPAL
    userid_header: str = USERID_HEADER  # -userid-header
    userid_prefix: str = ""  # -userid-prefix
    service_mesh_mode: str = "istio-sidecar"  # -service-mesh-mode (Charmed Kubeflow)

    @property
    def ambient(self) -> bool:
        """Charmed Kubeflow's ambient mode: a waypoint per namespace, policies bound to it."""
        return self.service_mesh_mode == "istio-ambient"

    @property
    def namespace_labels(self) -> dict[str, str]:
        """The labels the controller puts on each profile namespace in this mode."""
        if self.ambient:
            return {
                **PROFILE_LABEL,
                "istio.io/dataplane-mode": "ambient",
                "istio.io/use-waypoint": WAYPOINT,
            }
        return dict(SIDECAR_LABELS)


UPSTREAM = ControllerSettings()
# kubeflow-profiles charm: gateway in the model (namespace kubeflow), its own KFP UI name.
CHARMED_SIDECAR = ControllerSettings(
    ingress_gateway_principal=(
        "cluster.local/ns/kubeflow/sa/istio-ingressgateway-workload-service-account"
    ),
    kfp_ui_principal="cluster.local/ns/kubeflow/sa/kfp-ui",
    notebook_controller_principal="cluster.local/ns/kubeflow/sa/jupyter-controller",
)
CHARMED_AMBIENT = replace(
    CHARMED_SIDECAR,
    ingress_gateway_principal="cluster.local/ns/kubeflow/sa/istio-ingress-k8s-istio",
    service_mesh_mode="istio-ambient",
)

_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|([a-zA-Z]*))$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {v: k for k, v in _DECIMAL.items()}
_BINARY_SUFFIX = {0: "", **{v: k for k, v in _BINARY.items()}}


def canonical_quantity(text: str) -> str:
    """Go's ``resource.Quantity.String()``: what a Go controller writes back.

    Binary suffixes stay binary while the value is an integer of at least 1024 (the
    largest exact power of 1024 is used: ``1024Mi`` -> ``1Gi``, ``1.5Gi`` -> ``1536Mi``);
    anything else is decimal SI with the largest exact power of 1000, down to nano,
    rounding up (``0.5`` -> ``500m``, ``1000`` -> ``1k``, ``1500`` -> ``1500``); an
    exponent form keeps an exponent (``1e3`` -> ``1e3``). Invalid text is returned as is.
    """
    match = _QUANTITY.match(text.strip())
    if not match or (match.group(3) or "") not in {**_BINARY, **_DECIMAL}:
        return text
    number, exponent, suffix = match.group(1), match.group(2), match.group(3) or ""
    value = decimal.Decimal(number)
    if exponent:
        value = value.scaleb(int(exponent[1:]))
    elif suffix in _BINARY:
        value *= decimal.Decimal(1024) ** _BINARY[suffix]
    else:
        value = value.scaleb(_DECIMAL[suffix])
    if suffix in _BINARY and abs(value) >= 1024 and value == value.to_integral_value():
        whole, power = int(value), 0
        while power < 6 and whole % 1024 == 0:
            whole, power = whole // 1024, power + 1
        return f"{whole}{_BINARY_SUFFIX[power]}"
    nanos = int((value.scaleb(9)).to_integral_value(rounding=decimal.ROUND_UP))
    if nanos == 0:
        return "0"
    power = -9
    while power < 18 and nanos % 1000 == 0:
        nanos, power = nanos // 1000, power + 3
    if exponent:
        return f"{nanos}e{power}" if power else str(nanos)
    return f"{nanos}{_DECIMAL_SUFFIX[power]}"


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

    mode "async" (the default, like the real one) reconciles `delay` seconds after each
    write the real controller watches, on its own thread; "sync" right after the write
    (before the HTTP response returns); "manual" only on reconcile(); "off" never.
    """

    def __init__(
        self,
        store: Store,
        mode: str = "async",
        *,
        delay: float = DEFAULT_DELAY,
        settings: ControllerSettings = UPSTREAM,
    ) -> None:
        self._store = store
        self._mode = "sync"
        self.mode = mode
        self.delay = delay
        self.settings = settings
        self.reconcile_count = 0
        self._pending: set[str] = set()
        self._queue: list[tuple[float, str]] = []
        self._queued: dict[str, float] = {}
        self._wake = threading.Condition(store.lock)
        self._worker: threading.Thread | None = None
        self._stopped = False
        self._busy = False
        store.listener = self._observe

    def configure(self, settings: ControllerSettings) -> None:
        """Redeploy with other settings: the new pod reconciles every Profile."""
        with self._store.lock:
            self.settings = settings
            rt = self._profiles()
            names = [_name(p) for p in self._store.list_objs(rt)] if rt is not None else []
            self._pending.update(names)
            self.flush()

    def stop(self) -> None:
        """End the reconcile thread (the server is going away)."""
        with self._wake:
            self._stopped = True
            self._wake.notify_all()
        if self._worker is not None:
            self._worker.join(timeout=5)
            self._worker = None

    def idle(self) -> bool:
        """Nothing queued: every write so far has been reconciled."""
        with self._store.lock:
            return not self._queue and not self._pending

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
        """Act on the last write: reconcile now ("sync") or in `delay` seconds ("async")."""
        with self._store.lock:
            names = sorted(self._pending)
            self._pending.clear()
            if self._mode == "sync":
                for name in names:
                    self._reconcile_one(name)
            elif self._mode == "async" and names:
                due = time.monotonic() + self.delay
                for name in names:
                    if name not in self._queued:
                        self._queued[name] = due
                        heapq.heappush(self._queue, (due, name))
                self._start_worker()
                self._wake.notify_all()

    def _start_worker(self) -> None:
        if self._worker is None and not self._stopped:
            self._worker = threading.Thread(
                target=self._run, name="fake-profile-controller", daemon=True
            )
            self._worker.start()

    def _run(self) -> None:
        with self._wake:
            while not self._stopped:
                if not self._queue:
                    self._wake.wait()
                    continue
                due, name = self._queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    self._wake.wait(wait)
                    continue
                heapq.heappop(self._queue)
                self._queued.pop(name, None)
                if self._mode == "async":
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
        if self.settings.ambient:
            self._sync_waypoint(profile)
        if not self._sync_owner_policy(profile, owner_name):
            return
        for account, role in (
            ("default-editor", "kubeflow-edit"),
            ("default-viewer", "kubeflow-view"),
        ):
            self._sync_service_account(profile, account, role)
        self._sync_admin_binding(profile, owner)
        quota = _canonical_quota(spec.get("resourceQuotaSpec") or {})
        self._sync_quota(profile, quota)
        self._write_back(rt, profile, quota)

    def _write_back(self, rt: ResourceType, profile: JSONDict, quota: JSONDict) -> None:
        """``r.Update(profileIns)``: the Profile re-serialized by Go, quantities canonical."""
        spec = profile.get("spec") or {}
        if "resourceQuotaSpec" not in spec or spec["resourceQuotaSpec"] == quota:
            return
        updated = clone(profile)
        updated["spec"]["resourceQuotaSpec"] = quota
        self._replace(rt, updated)

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
        labels_wanted = self.settings.namespace_labels
        if namespace is None:
            meta = self._meta(profile, name, {"owner": owner_name})
            del meta["namespace"]
            meta["labels"] = dict(labels_wanted)
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
        if any(labels.get(k) != v for k, v in labels_wanted.items()):
            updated = clone(namespace)
            updated["metadata"].setdefault("labels", {}).update(labels_wanted)
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

    def _owner_policy_spec(self, namespace: str, owner_name: str) -> JSONDict:
        """``getAuthorizationPolicy`` of profile_controller.go (Charmed Kubeflow: + targetRefs)."""
        settings = self.settings
        rules = [
            {
                "from": [
                    {
                        "source": {
                            "principals": [
                                settings.ingress_gateway_principal,
                                settings.kfp_ui_principal,
                            ]
                        }
                    }
                ],
                "when": [
                    {
                        "key": f"request.headers[{settings.userid_header}]",
                        "values": [f"{settings.userid_prefix}{owner_name}"],
                    }
                ],
            },
            {"when": [{"key": "source.namespace", "values": [namespace]}]},
            {"to": [{"operation": {"paths": ["/healthz", "/metrics", "/wait-for-drain"]}}]},
            {
                "from": [{"source": {"principals": [settings.notebook_controller_principal]}}],
                "to": [{"operation": {"methods": ["GET"], "paths": ["*/api/kernels"]}}],
            },
        ]
        spec: JSONDict = {"action": "ALLOW", "rules": rules}
        if settings.ambient:
            spec["targetRefs"] = [{"group": GATEWAY_GROUP, "kind": "Gateway", "name": WAYPOINT}]
        return spec

    def _sync_owner_policy(self, profile: JSONDict, owner_name: str) -> bool:
        ap_rt = self._type("security.istio.io", "authorizationpolicies")
        if ap_rt is None:
            return False  # upstream fails the reconcile when Istio's CRD is missing
        namespace = _name(profile)
        spec = self._owner_policy_spec(namespace, owner_name)
        found = self._store.get_obj(ap_rt, namespace, OWNER_POLICY)
        if found is not None:
            if found.get("spec") != spec:  # upstream updates the spec, never the annotations
                updated = clone(found)
                updated["spec"] = spec
                self._replace(ap_rt, updated)
            return True
        policy = {
            "apiVersion": ap_rt.api_version(),
            "kind": "AuthorizationPolicy",
            "metadata": self._meta(profile, OWNER_POLICY, {"user": owner_name, "role": "admin"}),
            "spec": spec,
        }
        self._create(ap_rt, namespace, policy)
        return True

    def _sync_waypoint(self, profile: JSONDict) -> None:
        """Charmed Kubeflow's -create-waypoint: an Istio waypoint Gateway per namespace."""
        gw_rt = self._type(GATEWAY_GROUP, "gateways")
        namespace = _name(profile)
        if gw_rt is None or self._store.get_obj(gw_rt, namespace, WAYPOINT) is not None:
            return
        meta = self._meta(profile, WAYPOINT)
        meta["labels"] = {"istio.io/waypoint-for": "service"}
        gateway = {
            "apiVersion": gw_rt.api_version(),
            "kind": "Gateway",
            "metadata": meta,
            "spec": {
                "gatewayClassName": "istio-waypoint",
                "listeners": [{"name": "mesh", "port": 15008, "protocol": "HBONE"}],
            },
        }
        self._create(gw_rt, namespace, gateway)

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


def _canonical_quota(spec: JSONDict) -> JSONDict:
    """A ResourceQuotaSpec as Go serializes it: every quantity in canonical form."""
    hard = spec.get("hard")
    if not isinstance(hard, dict):
        return clone(spec)
    return {**clone(spec), "hard": {k: canonical_quantity(str(v)) for k, v in hard.items()}}
