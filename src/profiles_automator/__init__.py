"""Keep Kubeflow Profiles and contributors identical to a PMR kept in git."""
