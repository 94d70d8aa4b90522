
variable "project" {
  description = "The Google Cloud project ID"
  type        = string
}

variable "region" {
  description = "The region"
  type        = string
  default     = "europe-west3"
}

variable "zone" {
  description = "The zone (in the region)"
  type        = string
  default     = "europe-west3-a"
}

variable "machine_type" {
  description = "The machine type (amd64)"
  type        = string
  default     = "e2-small"
}

variable "subnet_cidr" {
  description = "The private range of the VM's own network"
  type        = string
  default     = "10.77.0.0/24"
}
