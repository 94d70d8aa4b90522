{#- qubes-air.remove (dom0): undoes qubes-air.create for the qubes the pillar names: the policy
    file, the USB assignments, the RemoteVMs (their prefs and tags go with them), then the relay
    qubes. Each step runs only while there is something to undo (`onlyif`); a qube is removed only
    if create made it (its tag `qubes-air-created`): a relay or RemoteVM the user had before, and
    named in the pillar, stays (its USB assignment from the pillar is still taken back).
    Must never: remove a qube the pillar does not name or create did not make, or a relay before
    the RemoteVMs that use it (qvm-remove refuses that anyway). -#}
{%- from "qubes-air/map.jinja" import air, fail_on_errors with context %}
{%- if air.errors %}
{{ fail_on_errors() }}
{%- else %}
qubes-air-policy-absent:
  file.absent:
    - name: {{ air.policy_path | yaml_dquote }}
{%- for d in air.remotes %}
{%-   if d.usb %}
qubes-air-usb-{{ d.name }}-absent:
  cmd.run:
    - name: qvm-device usb {{ 'unassign' if air.version == '4.3' else 'detach' }} {{ d.relay | quote }} {{ d.usb.device | quote }}
    - onlyif: qvm-check --quiet {{ d.relay | quote }} && qvm-device usb list {{ d.relay | quote }} | grep -qF -- {{ d.usb.device | quote }}
{%-   endif %}
{%-   if air.version == '4.3' %}
qubes-air-remote-{{ d.name }}-absent:
  cmd.run:
    - name: qvm-remove --force {{ d.name | quote }}
    - onlyif: qvm-check --quiet {{ d.name | quote }} && qvm-tags {{ d.name | quote }} list {{ air.created_tag }}
{%-   endif %}
{%- endfor %}
{%- for r in air.relays %}
qubes-air-relay-{{ r.name }}-absent:
  cmd.run:
    - name: qvm-remove --force {{ r.name | quote }}
    - onlyif: qvm-check --quiet {{ r.name | quote }} && qvm-tags {{ r.name | quote }} list {{ air.created_tag }}
    - require:
{%-   for d in air.remotes %}
{%-     if d.usb and d.relay == r.name %}
      - cmd: qubes-air-usb-{{ d.name }}-absent
{%-     endif %}
{%-     if air.version == '4.3' and d.relay == r.name %}
      - cmd: qubes-air-remote-{{ d.name }}-absent
{%-     endif %}
{%-   endfor %}
      - file: qubes-air-policy-absent
{%- endfor %}
{%- endif %}
