
variable "region" {
  description = "The AWS region"
  type        = string
  default     = "eu-central-1"
}

variable "instance_type" {
  description = "The EC2 instance type (amd64)"
  type        = string
  default     = "t3.small"
}
