{#- qubes-air.create (dom0): the relay qubes (sys-remote and any others) with their template,
    label, memory and no GUI, the `qubes-air` service on; one RemoteVM per device or cloud VM with
    relayvm, transport_rpc, remote_name and tags; the policy file; each USB device assigned to its
    relay (by identity on 4.3, by port on 4.2), never as a "required" assignment.
    Runs under stock Salt: every step is the real qvm-* command line behind an `unless` guard that
    reads the current value back, so a second apply changes nothing (salt/README.md says why not
    the qvm.* states).
    A qube this state creates gets the tag `qubes-air-created` in the same step (never later, never
    on a qube that was already there), so qubes-air.remove removes only what create made.
    Must never: make a required USB assignment (the relay would not start without the device),
    or run any step when the pillar is wrong (the errors below fail alone). -#}
{%- from "qubes-air/map.jinja" import air, fail_on_errors with context %}
{%- if air.errors %}
{{ fail_on_errors() }}
{%- else %}

{%- for r in air.relays %}
qubes-air-relay-{{ r.name }}:
  cmd.run:
    - name: qvm-create --class AppVM --template {{ r.prefs.template | quote }} --label {{ r.prefs.label | quote }} {{ r.name | quote }} && qvm-tags {{ r.name | quote }} add {{ air.created_tag }}
    - unless: qvm-check --quiet {{ r.name | quote }}
{%-   for key, value in r.prefs | dictsort %}
{%-     set value = value if value is not sameas true and value is not sameas false else (value | string) %}
qubes-air-relay-{{ r.name }}-pref-{{ key }}:
  cmd.run:
    - name: qvm-prefs {{ r.name | quote }} {{ key | quote }} {{ value | string | quote }}
    - unless: test "$(qvm-prefs {{ r.name | quote }} {{ key | quote }})" = {{ value | string | quote }}
    - require:
      - cmd: qubes-air-relay-{{ r.name }}
{%-   endfor %}
{#- No GUI: no GUI qube (guivm above) and the `gui` feature false (an empty value), so no GUI
    agent runs; a service qube (`servicevm`), as sys-usb and sys-net are. #}
{%-   set features = {'gui': '', 'servicevm': '1'} %}
{%-   do features.update(r.features) %}
{%-   for key, value in features | dictsort %}
qubes-air-relay-{{ r.name }}-feature-{{ key }}:
  cmd.run:
    - name: qvm-features {{ r.name | quote }} {{ key | quote }} {{ value | string | quote }}
    - unless: qvm-features {{ r.name | quote }} {{ key | quote }} >/dev/null && test "$(qvm-features {{ r.name | quote }} {{ key | quote }})" = {{ value | string | quote }}
    - require:
      - cmd: qubes-air-relay-{{ r.name }}
{%-   endfor %}
{%-   set services = {'qubes-air': true} %}
{%-   do services.update(r.services) %}
{%-   for svc, on in services | dictsort %}
qubes-air-relay-{{ r.name }}-service-{{ svc }}:
  cmd.run:
    - name: qvm-service {{ '--enable' if on else '--disable' }} {{ r.name | quote }} {{ svc | quote }}
    - unless: test "$(qvm-service {{ r.name | quote }} {{ svc | quote }})" = {{ 'on' if on else 'off' }}
    - require:
      - cmd: qubes-air-relay-{{ r.name }}
{%-   endfor %}
{%- endfor %}

{%- for d in air.remotes %}
{%-   if air.version == '4.3' %}
{#- RemoteVMs exist from Qubes 4.3; qvm.prefs cannot set relayvm, transport_rpc or remote_name. #}
qubes-air-remote-{{ d.name }}:
  cmd.run:
    - name: qvm-create --class RemoteVM --label {{ d.label | quote }} {{ d.name | quote }} && qvm-tags {{ d.name | quote }} add {{ air.created_tag }}
    - unless: qvm-check --quiet {{ d.name | quote }}
{%-     for key, value in d.prefs | dictsort %}
qubes-air-remote-{{ d.name }}-pref-{{ key }}:
  cmd.run:
    - name: qvm-prefs {{ d.name | quote }} {{ key | quote }} {{ value | quote }}
    - unless: test "$(qvm-prefs {{ d.name | quote }} {{ key | quote }})" = {{ value | quote }}
    - require:
      - cmd: qubes-air-remote-{{ d.name }}
{%-       if key == 'relayvm' and d.relay in air.relay_names %}
      - cmd: qubes-air-relay-{{ d.relay }}
{%-       endif %}
{%-     endfor %}
{%-     for tag in d.tags %}
qubes-air-remote-{{ d.name }}-tag-{{ tag }}:
  cmd.run:
    - name: qvm-tags {{ d.name | quote }} add {{ tag | quote }}
    - unless: qvm-tags {{ d.name | quote }} list {{ tag | quote }}
    - require:
      - cmd: qubes-air-remote-{{ d.name }}
{%-     endfor %}
{%-   endif %}
{%-   if d.usb %}
{#- 4.3: `assign` without --required is auto-attach (attach when it appears, start without it);
    4.2: `attach --persistent` is a port assignment, re-attached on that port. #}
qubes-air-usb-{{ d.name }}:
  cmd.run:
    - name: qvm-device usb {{ d.usb.assign }} {{ d.relay | quote }} {{ d.usb.device | quote }}
    - unless: qvm-device usb list {{ d.relay | quote }} | grep -qF -- {{ d.usb.device | quote }}
{%-     if d.relay in air.relay_names %}
    - require:
      - cmd: qubes-air-relay-{{ d.relay }}
{%-     endif %}
{%-   endif %}
{%- endfor %}

qubes-air-policy:
  file.managed:
    - name: {{ air.policy_path | yaml_dquote }}
    - mode: '0664'
    - makedirs: false
    - contents: |
        # qubes-air: written by Salt (qubes-air.create) from pillar qubes-air:policy; edit the
        # pillar, not this file. First matching line wins, files in name order.
{%- for rule in air.policy %}
        {{ rule.service }} {{ rule.get('argument', '*') }} {{ rule.source }} {{ rule.target }} {{ rule.action }}{% for k, v in (rule.get('params') or {}) | dictsort %} {{ k }}={{ v }}{% endfor %}
{%- endfor %}
        # Anything else to a remote qube is refused here, before a later file could allow it.
{%- for d in air.remotes %}
{%-   if air.version == '4.3' %}
        * * @anyvm {{ d.name }} deny
{%-   else %}
        qubesair.Call +{{ d.name }} @anyvm @anyvm deny
{%-   endif %}
{%- endfor %}
{%- endif %}
