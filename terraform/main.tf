resource "juju_application" "kubeflow_profiles_automator" {
  name        = var.app_name
  model       = var.model_name
  config      = var.config
  constraints = var.constraints
  units       = var.units
  # Cluster-wide access to Profiles, namespaces, RoleBindings and AuthorizationPolicies.
  trust = true

  charm {
    name     = "kubeflow-profiles-automator"
    base     = var.base
    channel  = var.channel
    revision = var.revision
  }
}
