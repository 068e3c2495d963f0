variable "app_name" {
  description = "Name of the application in the Juju model"
  type        = string
  default     = "kubeflow-profiles-automator"
}

variable "base" {
  description = "Base the charm runs on"
  type        = string
  default     = "ubuntu@24.04"
}

variable "channel" {
  description = "Charmhub channel to deploy from"
  type        = string
  default     = "latest/edge"
}

variable "config" {
  description = "Charm config options (see config.yaml), e.g. { repository = \"org/access\" }"
  type        = map(string)
  default     = {}
}

variable "constraints" {
  description = "Juju constraints for the application, e.g. \"mem=256M\""
  type        = string
  default     = ""
}

variable "model_name" {
  description = "Name of the Juju model to deploy into (the Kubeflow model)"
  type        = string
}

variable "revision" {
  description = "Charm revision; null follows the channel"
  type        = number
  default     = null
}

variable "units" {
  description = "Number of units; one leader syncs, the others stand by"
  type        = number
  default     = 1
}
