
variable "node" {
  description = "The Proxmox VE node the VM runs on"
  type        = string
}

variable "vm_datastore" {
  description = "The datastore for the VM's disk and cloud-init drive"
  type        = string
  default     = "local-lvm"
}

variable "image_datastore" {
  description = "The datastore Debian's cloud image is downloaded to (content type iso)"
  type        = string
  default     = "local"
}

variable "snippets_datastore" {
  description = "The datastore for the user-data snippet (content type snippets enabled)"
  type        = string
  default     = "local"
}

variable "bridge" {
  description = "The bridge of the VM's network device"
  type        = string
  default     = "vmbr0"
}

variable "memory_mib" {
  description = "The VM's memory in MiB"
  type        = number
  default     = 1024
}

variable "ipv4_address" {
  description = "The VM's IPv4 address as a CIDR (e.g. 192.0.2.20/24), or dhcp"
  type        = string
  default     = "dhcp"
}

variable "ipv4_gateway" {
  description = "The gateway, with a static ipv4_address"
  type        = string
  default     = null
}
