"""RBAC for the fake kube-apiserver, decided the way kube-apiserver decides it.

The rules come from the Roles, ClusterRoles and their bindings in the fake's store, so a test
switches RBAC on and then loads real manifests (e.g. docs/rbac.yaml). Modelled on
kube-apiserver's RBAC authorizer (plugin/pkg/auth/authorizer/rbac), its rule resolver
(pkg/registry/rbac/validation) and the RoleBinding storage's escalation prevention
(pkg/registry/rbac/rolebinding/policybased: `bind` on the role, or hold every rule in it).
ClusterRoles with an aggregationRule get the rules of the ClusterRoles their selectors match,
as the aggregation controller would write them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.fakes.kube_store import RBAC_GROUP, JSONDict, Store

SYSTEM_MASTERS = "system:masters"
AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
AGGREGATE_LABEL = "rbac.authorization.kubeflow.org/aggregate-to-kubeflow-"


@dataclass(frozen=True)
class UserInfo:
    """Who a request comes from, as an authenticator would say."""

    name: str
    groups: tuple[str, ...] = (AUTHENTICATED,)

    @property
    def is_superuser(self) -> bool:
        """system:masters skips escalation checks (and cluster-admin is bound to it)."""
        return SYSTEM_MASTERS in self.groups


def service_account(namespace: str, name: str) -> UserInfo:
    """The user a ServiceAccount token authenticates as."""
    return UserInfo(
        f"system:serviceaccount:{namespace}:{name}",
        ("system:serviceaccounts", f"system:serviceaccounts:{namespace}", AUTHENTICATED),
    )


ANONYMOUS_USER = UserInfo(ANONYMOUS, (UNAUTHENTICATED,))


@dataclass(frozen=True)
class Attributes:
    """One resource request to authorize (authorizer.AttributesRecord)."""

    user: UserInfo
    verb: str
    group: str
    resource: str
    subresource: str = ""
    namespace: str = ""
    name: str = ""


# ---------------------------------------------------------------------------- rule matching


def _has(values: Iterable[str], value: str, wildcard: str = "*") -> bool:
    values = list(values)
    return wildcard in values or value in values


def rule_allows(attrs: Attributes, rule: JSONDict) -> bool:
    """RuleAllows for resource requests: verb, API group, resource[/subresource], name."""
    combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    resources = rule.get("resources") or []
    resource_ok = "*" in resources or combined in resources
    if not resource_ok and attrs.subresource:
        resource_ok = f"*/{attrs.subresource}" in resources
    names = rule.get("resourceNames") or []
    return (
        _has(rule.get("verbs") or [], attrs.verb)
        and _has(rule.get("apiGroups") or [], attrs.group)
        and resource_ok
        and (not names or attrs.name in names)
    )


def breakdown(rule: JSONDict) -> list[JSONDict]:
    """One rule per (group, resource, verb, name), as validation.BreakdownRule splits it."""
    out: list[JSONDict] = []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in rule.get("verbs") or []:
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                names = rule.get("resourceNames") or []
                out.extend({**base, "resourceNames": [n]} for n in names)
                if not names:
                    out.append(base)
    for url in rule.get("nonResourceURLs") or []:
        out.extend({"nonResourceURLs": [url], "verbs": [v]} for v in rule.get("verbs") or [])
    return out


def _covers_resources(owner: list[str], wanted: list[str]) -> bool:
    if "*" in owner:
        return True
    for resource in wanted:
        if resource in owner:
            continue
        if "/" not in resource or f"*/{resource.split('/', 1)[1]}" not in owner:
            return False
    return True


def _covers_urls(owner: list[str], wanted: list[str]) -> bool:
    def one(url: str) -> bool:
        return any(o == url or (o.endswith("*") and url.startswith(o[:-1])) for o in owner)

    return all(one(u) for u in wanted)


def rule_covers(owner: JSONDict, sub: JSONDict) -> bool:
    """Whether the owner's rule includes this single-permission rule (ruleCovers)."""
    owner_names = owner.get("resourceNames") or []
    sub_names = sub.get("resourceNames") or []
    names_ok = (
        not owner_names if not sub_names else not owner_names or set(sub_names) <= set(owner_names)
    )
    return (
        all(_has(owner.get("verbs") or [], v) for v in sub.get("verbs") or [])
        and all(_has(owner.get("apiGroups") or [], g) for g in sub.get("apiGroups") or [])
        and _covers_resources(owner.get("resources") or [], sub.get("resources") or [])
        and _covers_urls(owner.get("nonResourceURLs") or [], sub.get("nonResourceURLs") or [])
        and names_ok
    )


def uncovered(owner_rules: list[JSONDict], rules: list[JSONDict]) -> list[JSONDict]:
    """validation.Covers: the broken-down rules no owner rule covers."""
    return [
        sub
        for rule in rules
        for sub in breakdown(rule)
        if not any(rule_covers(o, sub) for o in owner_rules)
    ]


def _go_quoted(values: list[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def compact_string(rule: JSONDict) -> str:
    """rbacv1helpers.CompactString, the form escalation errors list missing rules in."""
    parts = [
        f"{label}:{_go_quoted(rule[key])}"
        for key, label in (
            ("apiGroups", "APIGroups"),
            ("resources", "Resources"),
            ("nonResourceURLs", "NonResourceURLs"),
            ("resourceNames", "ResourceNames"),
            ("verbs", "Verbs"),
        )
        if rule.get(key)
    ]
    return "{" + ", ".join(parts) + "}"


def compact(rules: list[JSONDict]) -> list[JSONDict]:
    """CompactRules: single-group, single-resource rules merged by their verbs."""
    merged: dict[tuple[Any, ...], JSONDict] = {}
    out: list[JSONDict] = []
    for rule in rules:
        groups, resources = rule.get("apiGroups") or [], rule.get("resources") or []
        if len(groups) == 1 and len(resources) == 1 and not rule.get("nonResourceURLs"):
            key = (groups[0], resources[0], tuple(rule.get("resourceNames") or ()))
            if key in merged:
                merged[key]["verbs"].extend(
                    v for v in rule["verbs"] if v not in merged[key]["verbs"]
                )
                continue
            merged[key] = {**rule, "verbs": list(rule.get("verbs") or [])}
            out.append(merged[key])
        else:
            out.append(rule)
    return out


# ---------------------------------------------------------------------------- the authorizer


def _subject_applies(user: UserInfo, subject: JSONDict, namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return user.name == name
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        sa_namespace = subject.get("namespace") or namespace
        return bool(sa_namespace) and user.name == f"system:serviceaccount:{sa_namespace}:{name}"
    return False


def _describe_subject(subject: JSONDict, namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        return f'ServiceAccount "{subject.get("name")}/{subject.get("namespace") or namespace}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


def _matches_labels(selector: JSONDict, labels: dict[str, str]) -> bool:
    wanted = selector.get("matchLabels") or {}
    if selector.get("matchExpressions"):
        raise NotImplementedError("the fake aggregates ClusterRoles by matchLabels only")
    return all(labels.get(k) == v for k, v in wanted.items())


class RBACAuthorizer:
    """Reads RBAC objects from the store on every decision (no informer lag)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _objects(self, kind: str, namespace: str | None = None) -> list[JSONDict]:
        rt = self.store.type_for(RBAC_GROUP, kind)
        return list(self.store.list_objs(rt, namespace)) if rt is not None else []

    def _cluster_role(self, name: str) -> JSONDict | None:
        rt = self.store.type_for(RBAC_GROUP, "clusterroles")
        return self.store.get_obj(rt, None, name) if rt is not None else None

    def cluster_role_rules(self, name: str, seen: frozenset[str] = frozenset()) -> list[JSONDict]:
        """A ClusterRole's rules, aggregated ones included (KeyError when it is missing)."""
        role = self._cluster_role(name)
        if role is None:
            raise KeyError(name)
        rules = list(role.get("rules") or [])
        selectors = (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []
        if not selectors:
            return rules
        for other in self._objects("clusterroles"):
            other_name = other["metadata"]["name"]
            labels = other["metadata"].get("labels") or {}
            if other_name in seen | {name} or not any(
                _matches_labels(s, labels) for s in selectors
            ):
                continue
            for rule in self.cluster_role_rules(other_name, seen | {name}):
                if rule not in rules:
                    rules.append(rule)
        return rules

    def role_ref_rules(self, role_ref: JSONDict, namespace: str) -> list[JSONDict]:
        """GetRoleReferenceRules (KeyError when the role does not exist)."""
        if role_ref.get("kind") == "ClusterRole":
            return self.cluster_role_rules(str(role_ref.get("name")))
        rt = self.store.type_for(RBAC_GROUP, "roles")
        role = self.store.get_obj(rt, namespace, str(role_ref.get("name"))) if rt else None
        if role is None:
            raise KeyError(role_ref.get("name"))
        return list(role.get("rules") or [])

    def visit(self, user: UserInfo, namespace: str) -> Iterator[tuple[str, JSONDict]]:
        """(source, rule) for every rule that applies to the user in the namespace."""
        for binding in self._objects("clusterrolebindings"):
            yield from self._binding_rules(user, binding, "")
        if namespace:
            for binding in self._objects("rolebindings", namespace):
                yield from self._binding_rules(user, binding, namespace)

    def _binding_rules(
        self, user: UserInfo, binding: JSONDict, namespace: str
    ) -> Iterator[tuple[str, JSONDict]]:
        subject = next(
            (s for s in binding.get("subjects") or [] if _subject_applies(user, s, namespace)),
            None,
        )
        if subject is None:
            return
        ref = binding.get("roleRef") or {}
        try:
            rules = self.role_ref_rules(ref, namespace)
        except KeyError:
            return
        name = binding["metadata"]["name"]
        kind = "RoleBinding" if namespace else "ClusterRoleBinding"
        where = f"{name}/{namespace}" if namespace else name
        source = (
            f'{kind} "{where}" of {ref.get("kind")} "{ref.get("name")}" to '
            f"{_describe_subject(subject, namespace)}"
        )
        for rule in rules:
            yield source, rule

    def authorize(self, attrs: Attributes) -> tuple[bool, str]:
        """(allowed, reason); the reason is empty on a plain denial, as the real one is."""
        for source, rule in self.visit(attrs.user, attrs.namespace):
            if rule_allows(attrs, rule):
                return True, f"RBAC: allowed by {source}"
        return False, ""

    def escalation_error(self, user: UserInfo, namespace: str, role_ref: JSONDict) -> str | None:
        """Why binding role_ref in namespace would be an escalation (None: it is allowed).

        BindingAuthorized first (`bind` on the role, checked in the binding's namespace),
        then ConfirmNoEscalation (the user already holds every rule of the role).
        """
        if user.is_superuser:
            return None
        kind = role_ref.get("kind")
        bind = Attributes(
            user,
            "bind",
            str(role_ref.get("apiGroup") or RBAC_GROUP),
            "clusterroles" if kind == "ClusterRole" else "roles",
            namespace=namespace,
            name=str(role_ref.get("name") or ""),
        )
        if kind in ("ClusterRole", "Role") and self.authorize(bind)[0]:
            return None
        rules = self.role_ref_rules(role_ref, namespace)
        owner_rules = [rule for _, rule in self.visit(user, namespace)]
        missing = uncovered(owner_rules, rules)
        if not missing:
            return None
        described = sorted({compact_string(r) for r in compact(missing)})
        groups = _go_quoted(list(user.groups))
        return (
            f'user "{user.name}" (groups={groups}) is attempting to grant RBAC permissions '
            "not currently held:\n" + "\n".join(described)
        )


# ---------------------------------------------------------------------------- seed objects


def _cluster_role(name: str, rules: list[JSONDict], **extra: Any) -> JSONDict:
    meta: JSONDict = {"name": name}
    if "labels" in extra:
        meta["labels"] = extra.pop("labels")
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": meta,
        "rules": rules,
        **extra,
    }


def _group_binding(name: str, role: str, group: str) -> JSONDict:
    return {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": group}],
    }


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> JSONDict:
    return {"apiGroups": groups, "resources": resources, "verbs": verbs}


READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]

# kube-apiserver's bootstrap policy, the parts the fake needs: cluster-admin for
# system:masters, and every authenticated user may ask what they may do.
BOOTSTRAP_RBAC: tuple[JSONDict, ...] = (
    _cluster_role(
        "cluster-admin",
        [_rule(["*"], ["*"], ["*"]), {"nonResourceURLs": ["*"], "verbs": ["*"]}],
    ),
    _group_binding("cluster-admin", "cluster-admin", SYSTEM_MASTERS),
    _cluster_role(
        "system:basic-user",
        [
            _rule(
                ["authorization.k8s.io"],
                ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ["create"],
            )
        ],
    ),
    _group_binding("system:basic-user", "system:basic-user", AUTHENTICATED),
)


def _aggregated(role: str) -> JSONDict:
    return {"clusterRoleSelectors": [{"matchLabels": {f"{AGGREGATE_LABEL}{role}": "true"}}]}


# Kubeflow's roles as its manifests shape them: kubeflow-admin aggregates kubeflow-edit,
# which aggregates kubeflow-view, each also aggregating a kubeflow-kubernetes-* role with
# the Kubernetes rules (abridged to the resource kinds a profile namespace holds).
KUBEFLOW_CLUSTER_ROLES: tuple[JSONDict, ...] = (
    _cluster_role("kubeflow-admin", [], aggregationRule=_aggregated("admin")),
    _cluster_role(
        "kubeflow-edit",
        [],
        aggregationRule=_aggregated("edit"),
        labels={f"{AGGREGATE_LABEL}admin": "true"},
    ),
    _cluster_role(
        "kubeflow-view",
        [],
        aggregationRule=_aggregated("view"),
        labels={f"{AGGREGATE_LABEL}edit": "true"},
    ),
    _cluster_role(
        "kubeflow-kubernetes-admin",
        [
            _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
            _rule([RBAC_GROUP], ["rolebindings", "roles"], [*READ, *WRITE]),
        ],
        labels={f"{AGGREGATE_LABEL}admin": "true"},
    ),
    _cluster_role(
        "kubeflow-kubernetes-edit",
        [
            _rule([""], ["pods/exec", "pods/portforward", "secrets"], READ),
            _rule([""], ["pods", "pods/exec", "pods/portforward"], WRITE),
            _rule(
                [""],
                ["configmaps", "persistentvolumeclaims", "secrets", "serviceaccounts", "services"],
                WRITE,
            ),
            _rule(["apps"], ["deployments", "replicasets", "statefulsets"], WRITE),
            _rule(["batch"], ["cronjobs", "jobs"], WRITE),
        ],
        labels={f"{AGGREGATE_LABEL}edit": "true"},
    ),
    _cluster_role(
        "kubeflow-kubernetes-view",
        [
            _rule(
                [""],
                ["configmaps", "persistentvolumeclaims", "pods", "pods/log", "services"],
                READ,
            ),
            _rule([""], ["events", "resourcequotas", "namespaces"], READ),
            _rule(["apps"], ["deployments", "replicasets", "statefulsets"], READ),
            _rule(["batch"], ["cronjobs", "jobs"], READ),
        ],
        labels={f"{AGGREGATE_LABEL}view": "true"},
    ),
)
