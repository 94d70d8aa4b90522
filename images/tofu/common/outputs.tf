output "address" {
  description = "The VM's address: sys-remote connects to it on the agent's port"
  value       = local.address
}

output "next" {
  description = "What to run in sys-remote once the VM is up (the token is the one qubes-air image cloud printed)"
  value       = "qubes-air pair ${local.name} --tcp ${local.address}:${local.agent_port} --zone cloud --token TOKEN"
}
