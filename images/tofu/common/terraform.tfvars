# From qubes-air image cloud --sys-remote: the only source the firewall admits.
sys_remote_cidr = "{{sys_remote_cidr}}"
