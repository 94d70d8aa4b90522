
variable "server_type" {
  description = "The server type (amd64)"
  type        = string
  default     = "cx22"
}

variable "location" {
  description = "The location"
  type        = string
  default     = "nbg1"
}
