"""The sync stage: a PMR and a cluster in, the cluster made to match out.

`kfam`, `state` and `planner` are the pure core: desired objects from the model, the observed
cluster as plain data, and `plan(desired, observed)` giving an ordered list of changes. `cluster`
is the lightkube shell (a few cluster-wide lists, server-side apply, deletes) and `engine` runs
one level-triggered pass: observe, plan, apply.
"""
