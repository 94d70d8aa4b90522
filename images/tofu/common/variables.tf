variable "sys_remote_cidr" {
  description = "sys-remote's public IPv4 address as a CIDR (e.g. 203.0.113.7/32): the only source the firewall admits, to the agent's port only"
  type        = string
  nullable    = false
  # No default: an open firewall is never what you get by leaving it out. The same rules as
  # qubes-air image cloud --sys-remote: one IPv4 network of at most a /{{min_prefix}}, no host bits set,
  # not 0.x, 127.x or multicast.
  validation {
    condition = try(
      can(regex("{{cidr_regex}}", var.sys_remote_cidr))
      && cidrhost(var.sys_remote_cidr, 0) == split("/", var.sys_remote_cidr)[0]
      && !contains([{{refused_octets}}], tonumber(split(".", var.sys_remote_cidr)[0]))
      && tonumber(split(".", var.sys_remote_cidr)[0]) < {{multicast_octet}},
      false
    )
    error_message = "sys_remote_cidr must be sys-remote's own IPv4 address as a /32 (e.g. 203.0.113.7/32) or a network of at most a /{{min_prefix}} with no host bits set; 0.0.0.0/0 and other open ranges are refused."
  }
}
