{#- qubes-air.configure (in each relay qube, e.g. sys-remote): the daemon's settings (an
    environment file the unit reads) and, for remotes whose keys the pillar pins, the first
    registry of remote qubes (registry.json, 0600). Paths persist in an AppVM (/rw, /usr/local).
    The registry is written only when absent: after that the daemon owns it (pairing, lastSeen),
    and Salt must not put back what the operator unpaired.
    Must never: write a registry group or others can read or write (it pins agent keys), or a
    settings key outside QUBES_AIR_*. -#}
{%- from "qubes-air/map.jinja" import air, fail_on_errors with context %}
{%- set errors = [] %}
{%- for key in air.settings %}
{%-   if key | regex_match('^QUBES_AIR_[A-Z0-9_]+$') is none %}
{%-     do errors.append('pillar key qubes-air:sys_remote:settings:' ~ key ~ ' is not a QUBES_AIR_* variable') %}
{%-   endif %}
{%- endfor %}
{%- set entries = [] %}
{%- for d in air.remotes %}
{%-   if d.relay == air.this_relay and d.registry %}
{%-     set reg = d.registry %}
{%-     if not reg.get('agent_key') or not reg.get('transport') or not reg.get('zone') %}
{%-       do errors.append('pillar key qubes-air:remotes:' ~ d.name ~ ':registry needs zone, transport and agent_key') %}
{%-     endif %}
{%-     set e = {'name': d.prefs.remote_name, 'zone': reg.get('zone'), 'transport': reg.get('transport'),
                 'agentKey': reg.get('agent_key'), 'pairedAt': reg.get('paired_at', '1970-01-01T00:00:00.000Z'), 'lastSeen': none} %}
{%-     if reg.get('usb_serial') %}{% do e.update({'usbSerial': reg.usb_serial}) %}{% endif %}
{%-     if reg.get('mac') %}{% do e.update({'mac': reg.mac}) %}{% endif %}
{%-     do entries.append(e) %}
{%-   endif %}
{%- endfor %}
{%- if air.errors or errors %}
{{ fail_on_errors() }}
{%-   for e in errors %}
qubes-air-configure-error-{{ loop.index }}:
  test.fail_without_changes:
    - name: qubes-air pillar
    - comment: {{ e | yaml_dquote }}
{%-   endfor %}
{%- else %}
qubes-air-state-dir:
  file.directory:
    - name: {{ air.state_dir | yaml_dquote }}
    - mode: '0700'
    - makedirs: true

qubes-air-daemon-env:
  file.managed:
    - name: {{ air.env_file | yaml_dquote }}
    - mode: '0644'
    - makedirs: true
    - contents: |
        # qubes-air daemon settings: written by Salt (qubes-air.configure) from pillar
        # qubes-air:sys_remote; read by the qubes-air unit as its EnvironmentFile.
        QUBES_AIR_STATE={{ air.state_dir }}
{%-   for key, value in air.settings | dictsort %}
        {{ key }}={{ value }}
{%-   endfor %}
{%-   if entries %}

qubes-air-registry:
  file.managed:
    - name: {{ (air.state_dir ~ '/registry.json') | yaml_dquote }}
    - mode: '0600'
    - replace: false
    - contents: {{ ({'version': 1, 'remotes': entries} | json) | yaml_dquote }}
    - require:
      - file: qubes-air-state-dir
{%-   endif %}
{%- endif %}
