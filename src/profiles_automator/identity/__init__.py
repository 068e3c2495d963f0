"""The identity stage: provider group references in, the user ids of their members out.

Takes the `identityProviders` of a PMR (connection settings, no secrets) and the credentials the
charm or CLI supplies, and gives each referenced group's members as user ids, the strings
Kubeflow sees in its user-id header. A group that cannot be resolved is *unknown*, never empty:
the planner must not revoke access that group might grant.
"""
