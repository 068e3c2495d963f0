"""The compact list decoder keeps what the planner compares and nothing else."""

from __future__ import annotations

import json

from profiles_automator.sync.observe import CompactDecoder, iter_pages


def _binding(namespace: str, user: str) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": f"user-{user}-clusterrole-edit",
            "namespace": namespace,
            "uid": "0b6f",
            "resourceVersion": "42",
            "labels": {"app.kubernetes.io/managed-by": "kubeflow-profiles-automator"},
            "annotations": {
                "user": user,
                "role": "edit",
                "kubectl.kubernetes.io/last-applied-configuration": "x" * 10_000,
            },
            "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:metadata": {}}}],
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "e"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }


def _page(items: list[dict], token: str | None = None) -> bytes:
    metadata = {"resourceVersion": "7", **({"continue": token} if token else {})}
    return json.dumps({"kind": "List", "metadata": metadata, "items": items}).encode()


def test_a_rolebinding_keeps_its_compared_fields_and_drops_the_rest():
    # Arrange
    decoder = CompactDecoder("RoleBinding")
    raw = _binding("team-a", "alice@example.com")

    # Act
    (obj,), token = decoder.page(_page([raw]))

    # Assert
    assert token is None
    assert obj == {
        "metadata": {
            "name": raw["metadata"]["name"],
            "namespace": "team-a",
            "labels": raw["metadata"]["labels"],
            "annotations": {"user": "alice@example.com", "role": "edit"},
        },
        "roleRef": raw["roleRef"],
        "subjects": raw["subjects"],
    }


def test_equal_values_are_shared_across_pages():
    # Arrange
    decoder = CompactDecoder("RoleBinding")
    pages = {
        None: _page([_binding("team-a", "alice@example.com")], token="next"),
        "next": _page([_binding("team-b", "alice@example.com")]),
    }

    # Act
    (first,), (second,) = iter_pages(pages.__getitem__, decoder)

    # Assert
    assert first["subjects"] is second["subjects"]
    assert first["metadata"]["annotations"] is second["metadata"]["annotations"]
    namespaces = (first["metadata"]["namespace"], second["metadata"]["namespace"])
    assert namespaces == ("team-a", "team-b")


def test_a_profile_keeps_spec_owner_references_and_creation_time():
    # Arrange
    decoder = CompactDecoder("Profile")
    profile = {
        "metadata": {
            "name": "team-a",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "ownerReferences": [{"kind": "Application", "name": "x", "uid": "1"}],
            "managedFields": [{"manager": "kfam"}],
        },
        "spec": {"owner": {"kind": "User", "name": "a@example.com"}},
        "status": {"conditions": []},
    }

    # Act
    (obj,), _ = decoder.page(_page([profile]))

    # Assert
    assert obj == {
        "metadata": {
            "name": "team-a",
            "creationTimestamp": "2024-01-01T00:00:00Z",
            "ownerReferences": profile["metadata"]["ownerReferences"],
        },
        "spec": profile["spec"],
    }


def test_a_namespace_keeps_labels_and_the_owner_annotation_only():
    # Arrange
    decoder = CompactDecoder("Namespace")
    namespace = {
        "metadata": {
            "name": "team-a",
            "labels": {"model.juju.is/name": "kubeflow", "kubernetes.io/metadata.name": "team-a"},
            "annotations": {"owner": "a@example.com", "other": "dropped"},
        },
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    }

    # Act
    (obj,), _ = decoder.page(_page([namespace]))

    # Assert
    assert obj == {
        "metadata": {
            "name": "team-a",
            "labels": namespace["metadata"]["labels"],
            "annotations": {"owner": "a@example.com"},
        }
    }


def test_an_empty_list_and_a_null_spec_decode():
    # Arrange
    decoder = CompactDecoder("AuthorizationPolicy")

    # Act
    empty, _ = decoder.page(b'{"kind": "List", "metadata": {}, "items": null}')
    null_spec = {"metadata": {"name": "p", "namespace": "a"}, "spec": None}
    (policy,), _ = decoder.page(_page([null_spec]))

    # Assert
    assert empty == []
    assert policy == {"metadata": {"name": "p", "namespace": "a"}, "spec": None}


def _policy(namespace: str, user: str) -> dict:
    return {
        "metadata": {"name": f"user-{user}-clusterrole-edit", "namespace": namespace},
        "spec": {
            "action": "ALLOW",
            "rules": [
                {
                    "from": [{"source": {"principals": ["cluster.local/ns/kubeflow/sa/ui"]}}],
                    "when": [{"key": "request.headers[kubeflow-userid]", "values": [user]}],
                }
            ],
        },
    }


def test_policies_of_different_users_decode_whole():
    # Arrange
    decoder = CompactDecoder("AuthorizationPolicy")
    raw = [_policy("team-a", "alice@example.com"), _policy("team-b", "bob@example.com")]

    # Act
    alice, bob = decoder.page(_page(raw))[0]

    # Assert
    assert [alice["spec"], bob["spec"]] == [r["spec"] for r in raw]


def test_the_decoder_keeps_the_lists_resource_version():
    # Arrange
    decoder = CompactDecoder("AuthorizationPolicy")
    pages = {
        None: _page([_policy("team-a", "alice@example.com")], token="next"),
        "next": _page([_policy("team-b", "bob@example.com")]),
    }

    # Act
    listed = [obj for page in iter_pages(pages.__getitem__, decoder) for obj in page]

    # Assert
    assert len(listed) == 2
    assert decoder.resource_version == "7"
