output "app_name" {
  description = "Name of the deployed application"
  value       = juju_application.kubeflow_profiles_automator.name
}

# Endpoints by Terraform-friendly name, for juju_integration in a solution module. The charm
# has no relation endpoints yet, so both maps are empty.
output "provides" {
  description = "Map of the charm's provided endpoints"
  value       = {}
}

output "requires" {
  description = "Map of the charm's required endpoints"
  value       = {}
}
