#!/usr/bin/env python
"""AWX configuration as code for netmedic (issue 11 item 5), generated from the playbooks' argument specs.

    scripts/awx_config.py            write awx/netmedic.yml (what awx/configure.yml applies with awx.awx)
    scripts/awx_config.py --check    exit 1 when awx/netmedic.yml differs from what the specs give

One source: each playbook with a spec in playbooks/specs/<name>.yml validates its variables with
ansible.builtin.validate_argument_spec from that spec (playbooks/tasks/validate_spec.yml), and its AWX
survey is generated here from the same spec, so the survey and the playbook cannot drift.

Per playbook: a job template "netmedic <name> (check)" (job type check) and "netmedic <name>" (run,
with a required change ticket question for playbooks that change something), both asking for the
limit on launch, privilege escalation left to the template (node playbooks get become_enabled) and
never set by a play. Per changing playbook: a workflow "netmedic <name> change": check run ->
approval node -> apply -> diagnose. A "Kubeconfig (netmedic)" credential type injects the file and
K8S_AUTH_KUBECONFIG.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / 'playbooks' / 'specs'
OUTPUT = ROOT / 'awx' / 'netmedic.yml'

# AWX's survey question types and the Python type of their defaults (AWX's API rules).
QUESTION_TYPES = {'text': str, 'textarea': str, 'password': str, 'multiplechoice': str, 'multiselect': str,
                  'integer': int, 'float': float}
# Playbooks that only read (no approval, no change ticket).
READ_ONLY = {'diagnose'}
# Playbooks whose plays run on the nodes (the job template enables privilege escalation for them).
NODE_PLAYBOOKS = {'cilium_lb_maps', 'remediate_node', 'arp_flush', 'ipam_gc_fleet', 'flannel_datadir_migration',
                  'ipvs_scheduler_change', 'conntrack_tuning', 'udp_timeout', 'diagnose'}
CHANGE_ID = {
    'question_name': 'Change ticket',
    'question_description': 'The change ticket this run belongs to (netmedic_change_id, recorded in the change report).',
    'variable': 'netmedic_change_id', 'type': 'text', 'required': True, 'default': '', 'min': 1, 'max': 128,
}
CREDENTIAL_TYPE = {
    'name': 'Kubeconfig (netmedic)',
    'description': 'A kubeconfig file for netmedic.k8s (and kubernetes.core): written to a private file for the job, '
                   'K8S_AUTH_KUBECONFIG points at it.',
    'kind': 'cloud',
    'inputs': {'fields': [{'id': 'kubeconfig', 'type': 'string', 'label': 'Kubeconfig', 'secret': True, 'multiline': True,
                           'help_text': 'The whole kubeconfig file (YAML).'}],
               'required': ['kubeconfig']},
    'injectors': {'file': {'template.kubeconfig': '{{ kubeconfig }}'},
                  'env': {'K8S_AUTH_KUBECONFIG': '{{ tower.filename.kubeconfig }}'}},
}


class SpecError(ValueError):
    pass


def _text(value):
    if isinstance(value, list):
        return ' '.join(str(v) for v in value)
    return str(value or '')


def question(variable, option):
    """One AWX survey question for one argument-spec option."""
    kind = option.get('type', 'str')
    required = bool(option.get('required', False))
    desc = _text(option.get('description'))
    q = {'question_name': variable.replace('netmedic_', '').replace('_', ' ').capitalize(),
         'question_description': desc[:1000], 'variable': variable, 'required': required}
    default = option.get('default')
    if option.get('no_log'):
        # A secret, whatever its type: a password question (AWX stores it encrypted, never shows it back); a list or
        # mapping is given as text (<option>_text, converted by playbooks/tasks/validate_spec.yml).
        q['type'] = 'password'
        q['default'] = ''
        if kind in ('dict', 'list'):
            q['variable'] = variable + '_text'
            q['question_description'] = (desc + (' (JSON mapping)' if kind == 'dict' else ' (comma-separated)'))[:1000]
    elif option.get('choices'):
        # An empty choice means "leave it": not answering the (not required) question gives the same.
        choices = [str(c) for c in option['choices'] if c != '']
        q.update(type='multiselect' if kind == 'list' else 'multiplechoice', choices=choices)
        if default not in (None, [], ''):
            q['default'] = '\n'.join(str(d) for d in default) if isinstance(default, list) else str(default)
    elif kind == 'bool':
        q.update(type='multiplechoice', choices=['true', 'false'])
        if default is not None:
            q['default'] = 'true' if default else 'false'
    elif kind == 'int':
        q['type'] = 'integer'
        if default is not None:
            q['default'] = int(default)
        # The spec's bounds (checked by playbooks/tasks/validate_spec.yml too): AWX refuses an answer outside them.
        for key, bound in (('min', 'minimum'), ('max', 'maximum')):
            if option.get(bound) is not None:
                q[key] = int(option[bound])
    elif kind == 'float':
        q['type'] = 'float'
        if default is not None:
            q['default'] = float(default)
    elif kind in ('dict', 'list'):
        # AWX hands the answer over as text: it is asked as <option>_text, which playbooks/tasks/validate_spec.yml
        # converts with Ansible's own converters (netmedic.k8s.spec_value) before the spec checks it.
        # A list of mappings is given as a JSON list (validate_spec reads a list answer starting with "[" as JSON).
        as_json = kind == 'dict' or option.get('elements') == 'dict'
        q['type'] = 'textarea'
        q['variable'] = variable + '_text'
        q['question_description'] = (desc + (' (JSON mapping)' if kind == 'dict' else ' (JSON list)' if as_json
                                             else ' (comma-separated)'))[:1000]
        if default not in (None, {}, []):
            q['default'] = json.dumps(default, sort_keys=True) if as_json else ','.join(str(d) for d in default)
    elif kind in ('str', 'raw', 'path'):
        q['type'] = 'text'
        if default not in (None, ''):
            q['default'] = str(default)
    else:
        raise SpecError('%s: type %r has no survey question type' % (variable, kind))
    if 'default' not in q and q['type'] in ('text', 'textarea', 'password'):
        q['default'] = ''
    return q


def survey(name, spec):
    main = ((spec or {}).get('argument_specs') or {}).get('main')
    if not main or not isinstance(main.get('options'), dict):
        raise SpecError('%s: no argument_specs.main.options' % name)
    questions = [question(var, opt or {}) for var, opt in main['options'].items()]
    return {'name': 'netmedic %s' % name, 'description': _text(main.get('short_description'))[:512], 'spec': questions}


def validate_survey(data):
    """AWX's survey spec rules (its API refuses a spec that breaks one); returns a list of errors."""
    errors = []
    for field, kind in (('name', str), ('description', str), ('spec', list)):
        if not isinstance(data.get(field), kind):
            errors.append('%r missing or not a %s' % (field, kind.__name__))
    if errors:
        return errors
    if not data['spec']:
        return ["'spec' has no question"]
    seen = set()
    for idx, item in enumerate(data['spec']):
        where = 'question %d (%s)' % (idx, item.get('variable'))
        for field, kind in (('type', str), ('question_name', str), ('variable', str), ('required', bool)):
            if not isinstance(item.get(field), kind):
                errors.append('%s: %r missing or not a %s' % (where, field, kind.__name__))
        if errors:
            continue
        if item['variable'] in seen:
            errors.append('%s: variable used twice' % where)
        seen.add(item['variable'])
        qtype = item['type']
        if qtype not in QUESTION_TYPES:
            errors.append('%s: type %r is not an AWX question type' % (where, qtype))
            continue
        default = item.get('default', '')
        if default != '' and (not isinstance(default, QUESTION_TYPES[qtype]) or isinstance(default, bool)):
            errors.append('%s: default %r is not a %s' % (where, default, QUESTION_TYPES[qtype].__name__))
        for key in ('min', 'max'):
            if item.get(key) is not None and (not isinstance(item[key], int) or isinstance(item[key], bool)):
                errors.append('%s: %s is not an integer' % (where, key))
        if qtype == 'integer' and isinstance(default, int) and not isinstance(default, bool):
            if isinstance(item.get('min'), int) and default < item['min']:
                errors.append('%s: default %d is below min %d' % (where, default, item['min']))
            if isinstance(item.get('max'), int) and default > item['max']:
                errors.append('%s: default %d is above max %d' % (where, default, item['max']))
        if qtype in ('multiplechoice', 'multiselect'):
            choices = item.get('choices')
            if not choices:
                errors.append('%s: %s needs choices' % (where, qtype))
                continue
            choices = choices.splitlines() if isinstance(choices, str) else choices
            defaults = [d for d in str(default).splitlines() if d.strip()] if default != '' else []
            if qtype == 'multiplechoice' and len(defaults) > 1:
                errors.append('%s: a multiple choice question has one default' % where)
            if any(d not in choices for d in defaults):
                errors.append('%s: default %r is not one of the choices %s' % (where, default, choices))
        if isinstance(default, str) and default.startswith('$encrypted$'):
            errors.append('%s: $encrypted$ is reserved' % where)
        if qtype in ('text', 'textarea', 'password') and isinstance(default, str) and default:
            if item.get('min') is not None and len(default) < item['min']:
                errors.append('%s: default shorter than min' % where)
            if item.get('max') is not None and len(default) > item['max']:
                errors.append('%s: default longer than max' % where)
    return errors


def extra_vars_from_defaults(data):
    """What AWX passes to the playbook when every question keeps its default (answered questions only)."""
    out = {}
    for item in data['spec']:
        default = item.get('default', '')
        if default == '' and item['type'] in ('text', 'textarea', 'password'):
            continue          # an empty, not required answer is not passed
        if item['type'] == 'multiselect':
            out[item['variable']] = [d for d in str(default).splitlines() if d]
        elif default != '':
            out[item['variable']] = default
    return out


def specs():
    found = {}
    for path in sorted(SPECS.glob('*.yml')):
        found[path.stem] = yaml.safe_load(path.read_text())
    return found


def build():
    job_templates, workflows = [], []
    for name, spec in specs().items():
        base = survey(name, spec)
        node = name in NODE_PLAYBOOKS
        common = {'name': None, 'job_type': None, 'project': 'netmedic', 'playbook': 'playbooks/%s.yml' % name, 'inventory': 'netmedic',
                  'credentials': ['netmedic kubeconfig'], 'ask_limit_on_launch': True, 'ask_variables_on_launch': False,
                  'become_enabled': node, 'allow_simultaneous': name in READ_ONLY, 'survey_enabled': True}
        check = dict(common, name='netmedic %s (check)' % name, job_type='check', survey_spec=copy.deepcopy(base))
        check['survey_spec']['name'] = check['name']
        job_templates.append(check)
        if name in READ_ONLY:
            # Read-only: a run template too (the workflows' last step), same survey, no change ticket, no approval.
            run = dict(common, name='netmedic %s' % name, job_type='run', survey_spec=copy.deepcopy(base))
            run['survey_spec']['name'] = run['name']
            job_templates.append(run)
            continue
        apply = dict(common, name='netmedic %s' % name, job_type='run', survey_spec=copy.deepcopy(base))
        apply['survey_spec']['name'] = apply['name']
        apply['survey_spec']['spec'].insert(0, dict(CHANGE_ID))
        job_templates.append(apply)
        workflows.append({
            'name': 'netmedic %s change' % name,
            'description': 'Check run, approval, apply, diagnose (%s)' % name,
            'ask_limit_on_launch': True, 'ask_variables_on_launch': False, 'allow_simultaneous': False,
            # The ticket is asked once, for the whole workflow; AWX hands it to every node's job.
            'survey_enabled': True,
            'survey_spec': {'name': 'netmedic %s change' % name, 'description': 'Change ticket of this change',
                            'spec': [dict(CHANGE_ID)]},
            'workflow_nodes': [
                {'identifier': 'check', 'unified_job_template': {'name': check['name'], 'type': 'job_template'},
                 'related': {'success_nodes': [{'identifier': 'approve'}]}},
                # awx.awx.workflow_job_template makes an approval node from a unified_job_template of type
                # workflow_approval (name, description, timeout); every node needs unified_job_template.name and .type.
                {'identifier': 'approve',
                 'unified_job_template': {'name': 'Approve netmedic %s' % name, 'type': 'workflow_approval', 'timeout': 86400,
                                          'description': 'Read the check run\'s change report first.'},
                 'related': {'success_nodes': [{'identifier': 'apply'}]}},
                {'identifier': 'apply', 'unified_job_template': {'name': apply['name'], 'type': 'job_template'},
                 'related': {'always_nodes': [{'identifier': 'diagnose'}]}},
                {'identifier': 'diagnose', 'unified_job_template': {'name': 'netmedic diagnose', 'type': 'job_template'}},
            ],
        })
    return {'credential_types': [CREDENTIAL_TYPE], 'job_templates': job_templates, 'workflow_job_templates': workflows}


HEADER = ('# Generated by scripts/awx_config.py from playbooks/specs/*.yml: do not edit (run scripts/awx_config.py).\n'
          '# Applied by awx/configure.yml with the awx.awx collection; runbook: awx/README.md.\n')


class _Dumper(yaml.SafeDumper):
    """No aliases; sequences indented under their key (what yamllint and ansible-lint's production profile expect)."""

    def ignore_aliases(self, data):
        return True

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def render():
    return '---\n' + HEADER + yaml.dump(build(), Dumper=_Dumper, sort_keys=False, width=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--check', action='store_true')
    args = parser.parse_args(argv)
    text = render()
    data = build()
    bad = {t['name']: validate_survey(t['survey_spec'])
           for t in data['job_templates'] + data['workflow_job_templates'] if t.get('survey_spec')}
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        for name, errors in bad.items():
            print('%s: %s' % (name, '; '.join(errors)), file=sys.stderr)
        return 1
    if args.check:
        if not OUTPUT.is_file() or OUTPUT.read_text() != text:
            print('%s is not what playbooks/specs give: run scripts/awx_config.py' % OUTPUT, file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(exist_ok=True)
    OUTPUT.write_text(text)
    print('wrote %s' % OUTPUT)
    return 0


if __name__ == '__main__':
    sys.exit(main())
