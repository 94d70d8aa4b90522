{#- qubes-air.install (in the relay qubes' template): the sys-remote package (CLI, daemon,
    relay services, unit, udev rules) and qubes-usb-proxy, which a qube needs to take USB
    devices from sys-usb. Pillar qubes-air:packages replaces the list.
    Must never: install into an AppVM (packages belong in its template; the AppVM's root is
    reset on reboot). -#}
{%- from "qubes-air/map.jinja" import air, fail_on_errors with context %}
{%- if air.errors %}
{{ fail_on_errors() }}
{%- else %}
qubes-air-packages:
  pkg.installed:
    - pkgs: {{ air.packages | json }}
{%- endif %}
