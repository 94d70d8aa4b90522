#!/bin/sh
# qubes-air: advertise the "qubes-air" qube service to dom0, so it is listed in the qube's
# Settings -> Services (run by qubes-core-agent's post-install hooks after package changes).
# Must never: fail the hook run (qvm-features-request may be missing outside Qubes).
if command -v qvm-features-request >/dev/null 2>&1; then
	qvm-features-request supported-service.qubes-air=1 || true
fi
exit 0
