"""AWX configuration as code (issue 11 item 5): generated from the playbooks' specs, valid for AWX's survey rules."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location('awx_config', str(ROOT / 'scripts' / 'awx_config.py'))
awx = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(awx)


def test_committed_configuration_is_what_the_specs_give():
    assert (ROOT / 'awx' / 'netmedic.yml').read_text() == awx.render(), 'run scripts/awx_config.py'


def test_every_playbook_with_a_spec_has_templates_and_every_survey_is_valid():
    data = awx.build()
    names = {t['name'] for t in data['job_templates']}
    for spec in sorted((ROOT / 'playbooks' / 'specs').glob('*.yml')):
        assert 'netmedic %s (check)' % spec.stem in names
        assert 'netmedic %s' % spec.stem in names
        playbook = ROOT / 'playbooks' / (spec.stem + '.yml')
        assert playbook.is_file() and 'validate_spec.yml' in playbook.read_text(), 'the playbook validates with its spec'
    for template in data['job_templates'] + data['workflow_job_templates']:
        if template.get('survey_enabled'):
            assert awx.validate_survey(template['survey_spec']) == [], template['name']


def test_survey_questions_follow_the_spec_types():
    spec = {'argument_specs': {'main': {'short_description': 'x', 'options': {
        'netmedic_flag': {'type': 'bool', 'default': False, 'description': 'a flag'},
        'netmedic_count': {'type': 'int', 'default': 3},
        'netmedic_mode': {'type': 'str', 'choices': ['a', 'b'], 'default': 'b'},
        'netmedic_window': {'type': 'dict', 'default': {}},
        'netmedic_nodes': {'type': 'list', 'elements': 'str', 'required': True},
        'netmedic_token': {'type': 'str', 'no_log': True},
        'netmedic_max_unhealthy': {'type': 'raw', 'default': '10%'},
    }}}}
    survey = awx.survey('demo', spec)
    by_var = {q['variable']: q for q in survey['spec']}
    assert by_var['netmedic_flag'] == {'question_name': 'Flag', 'question_description': 'a flag', 'variable': 'netmedic_flag',
                                       'required': False, 'type': 'multiplechoice', 'choices': ['true', 'false'],
                                       'default': 'false'}
    assert (by_var['netmedic_count']['type'], by_var['netmedic_count']['default']) == ('integer', 3)
    assert (by_var['netmedic_mode']['type'], by_var['netmedic_mode']['choices'], by_var['netmedic_mode']['default']) == (
        'multiplechoice', ['a', 'b'], 'b')
    # Lists and mappings are asked as <option>_text (validate_spec.yml converts them before the spec check).
    assert 'netmedic_window' not in by_var and 'netmedic_nodes' not in by_var
    assert (by_var['netmedic_window_text']['type'], by_var['netmedic_window_text']['default']) == ('textarea', '')
    assert (by_var['netmedic_nodes_text']['type'], by_var['netmedic_nodes_text']['required']) == ('textarea', True)
    assert by_var['netmedic_token']['type'] == 'password'
    assert by_var['netmedic_max_unhealthy'] == dict(by_var['netmedic_max_unhealthy'], type='text', default='10%')
    assert awx.validate_survey(survey) == []
    expected = {'netmedic_flag': 'false', 'netmedic_count': 3, 'netmedic_mode': 'b', 'netmedic_max_unhealthy': '10%'}
    assert awx.extra_vars_from_defaults(survey) == expected


def base():
    return {'name': 's', 'description': 'd', 'spec': [
        {'type': 'multiplechoice', 'question_name': 'q', 'variable': 'v', 'required': False, 'choices': ['a', 'b'], 'default': 'a'}]}


@pytest.mark.parametrize('change,words', [
    (lambda s: s.pop('description'), "'description' missing"),
    (lambda s: s.update(spec=[]), 'no question'),
    (lambda s: s['spec'].append(dict(s['spec'][0])), 'variable used twice'),
    (lambda s: s['spec'][0].update(type='boolean'), 'not an AWX question type'),
    (lambda s: s['spec'][0].update(default='c'), 'not one of the choices'),
    (lambda s: s['spec'][0].update(default='a\nb'), 'one default'),
    (lambda s: s['spec'][0].pop('choices'), 'needs choices'),
    (lambda s: s['spec'][0].update(required='yes'), "'required' missing or not a bool"),
    (lambda s: s['spec'][0].update(type='integer', default='3'), 'is not a int'),
    (lambda s: s['spec'][0].update(type='integer', default=True), 'is not a int'),
    (lambda s: s['spec'][0].update(type='text', default='$encrypted$'), 'reserved'),
    (lambda s: s['spec'][0].update(type='text', default='abc', max=2), 'longer than max'),
    (lambda s: s['spec'][0].update(min='1'), 'min is not an integer'),
])
def test_the_validator_refuses_what_awx_refuses(change, words):
    survey = base()
    assert awx.validate_survey(survey) == []
    change(survey)
    errors = awx.validate_survey(survey)
    assert any(words in e for e in errors), errors


def test_change_templates_ask_for_a_ticket_and_workflows_wire_check_approval_apply_diagnose():
    data = awx.build()
    templates = {t['name']: t for t in data['job_templates']}
    for workflow in data['workflow_job_templates']:
        nodes = {n['identifier']: n for n in workflow['workflow_nodes']}
        assert list(nodes) == ['check', 'approve', 'apply', 'diagnose']
        check = templates[nodes['check']['unified_job_template']['name']]
        apply = templates[nodes['apply']['unified_job_template']['name']]
        assert (check['job_type'], apply['job_type']) == ('check', 'run')
        assert apply['survey_spec']['spec'][0]['variable'] == 'netmedic_change_id' and apply['survey_spec']['spec'][0]['required']
        assert 'netmedic_change_id' not in [q['variable'] for q in check['survey_spec']['spec']]
        assert nodes['approve']['unified_job_template']['type'] == 'workflow_approval'
        assert nodes['approve']['unified_job_template']['timeout'] > 0
        assert nodes['check']['related']['success_nodes'] == [{'identifier': 'approve'}]
        assert nodes['approve']['related']['success_nodes'] == [{'identifier': 'apply'}]
        assert nodes['diagnose']['unified_job_template']['name'] in templates
        assert workflow['survey_spec']['spec'][0]['variable'] == 'netmedic_change_id'
    # Privilege escalation: from the template (node playbooks), never from a play.
    assert all(t['become_enabled'] == (t['playbook'].split('/')[-1][:-4] in awx.NODE_PLAYBOOKS) for t in templates.values())


def test_credential_type_injects_a_private_file_and_the_env_var():
    (ct,) = awx.build()['credential_types']
    assert ct['inputs']['fields'][0]['secret'] is True
    assert ct['injectors']['env'] == {'K8S_AUTH_KUBECONFIG': '{{ tower.filename.kubeconfig }}'}
    assert ct['injectors']['file'] == {'template.kubeconfig': '{{ kubeconfig }}'}


def test_configure_playbook_applies_every_section():
    plays = yaml.safe_load((ROOT / 'awx' / 'configure.yml').read_text())
    modules = [next(k for k in task if k.startswith('awx.awx.')) for task in plays[0]['tasks']]
    assert modules == ['awx.awx.credential_type', 'awx.awx.job_template', 'awx.awx.workflow_job_template']
    loops = [task['loop'] for task in plays[0]['tasks']]
    assert loops == ['{{ netmedic_awx.credential_types }}', '{{ netmedic_awx.job_templates }}',
                     '{{ netmedic_awx.workflow_job_templates }}']


def test_every_playbook_has_a_spec_templates_and_a_workflow():
    """Issue 11 item 5: 7 of 15 playbooks (arp_flush, conntrack_tuning, flannel_datadir_migration, ipam_gc_fleet,
    ipvs_scheduler_change, remediate_node, udp_timeout, and diagnose's survey) had no spec, so no AWX job template
    and no validation from a spec."""
    playbooks = sorted(p.stem for p in (ROOT / 'playbooks').glob('*.yml'))
    specs = sorted(p.stem for p in (ROOT / 'playbooks' / 'specs').glob('*.yml'))
    assert playbooks == specs
    data = awx.build()
    templates = {t['name']: t for t in data['job_templates']}
    workflows = {w['name'] for w in data['workflow_job_templates']}
    for name in playbooks:
        assert templates['netmedic %s (check)' % name]['survey_enabled']
        assert templates['netmedic %s' % name]['survey_enabled']
        assert ('netmedic %s change' % name in workflows) == (name not in awx.READ_ONLY)


def test_every_spec_option_is_a_variable_the_playbook_reads():
    """No survey question for a variable nothing reads: each option is named in its playbook, the task files it
    includes (playbooks/tasks) or a role it applies."""
    used = [p.read_text() for p in (ROOT / 'playbooks' / 'tasks').glob('*.yml')]
    used += [p.read_text() for p in (ROOT / 'roles').rglob('*.yml') if 'meta' not in p.parts]
    for spec in sorted((ROOT / 'playbooks' / 'specs').glob('*.yml')):
        text = (ROOT / 'playbooks' / (spec.stem + '.yml')).read_text()
        options = yaml.safe_load(spec.read_text())['argument_specs']['main']['options']
        unread = [o for o in options if o not in text and not any(o in u for u in used)]
        assert unread == [], spec.name


def test_spec_bounds_are_the_survey_bounds_and_defaults_lie_within():
    spec = {'argument_specs': {'main': {'short_description': 'x', 'options': {
        'netmedic_per_core': {'type': 'int', 'default': 65536, 'minimum': 0, 'maximum': 2147483647},
        'netmedic_vips': {'type': 'list', 'elements': 'dict', 'default': [{'address': '10.0.0.1'}]},
    }}}}
    by_var = {q['variable']: q for q in awx.survey('demo', spec)['spec']}
    assert (by_var['netmedic_per_core']['min'], by_var['netmedic_per_core']['max']) == (0, 2147483647)
    assert by_var['netmedic_vips_text']['default'] == '[{"address": "10.0.0.1"}]'
    bad = awx.survey('demo', {'argument_specs': {'main': {'short_description': 'x', 'options': {
        'netmedic_n': {'type': 'int', 'default': 5, 'minimum': 10}}}}})
    assert awx.validate_survey(bad) == ["question 0 (netmedic_n): default 5 is below min 10"]


# The awx.awx modules' parameters that awx/configure.yml and awx/netmedic.yml use, as documented by the collection
# (awx.awx is not installable here - no Galaxy - so its argument specs are recorded, not imported). A typo or a key the
# module does not take fails here instead of on the first real AWX.
AWX_MODULE_OPTIONS = {
    'awx.awx.credential_type': {'name', 'description', 'kind', 'inputs', 'injectors', 'state'},
    'awx.awx.job_template': {'name', 'organization', 'job_type', 'project', 'playbook', 'inventory', 'credentials',
                             'ask_limit_on_launch', 'ask_variables_on_launch', 'become_enabled', 'allow_simultaneous',
                             'survey_enabled', 'survey_spec', 'state'},
    'awx.awx.workflow_job_template': {'name', 'organization', 'description', 'ask_limit_on_launch', 'ask_variables_on_launch',
                                      'allow_simultaneous', 'survey_enabled', 'survey_spec', 'workflow_nodes',
                                      'destroy_current_nodes', 'state'},
}
CREDENTIAL_KINDS = {'ssh', 'vault', 'net', 'scm', 'cloud', 'insights'}
WORKFLOW_NODE_KEYS = {'identifier', 'unified_job_template', 'related', 'extra_data', 'job_type', 'limit', 'all_parents_must_converge'}
UJT_KEYS = {'name', 'type', 'organization', 'description', 'timeout'}
UJT_TYPES = {'job_template', 'workflow_approval', 'workflow_job_template', 'project', 'inventory_source', 'system_job_template'}


def test_configure_playbook_and_generated_data_fit_the_awx_modules():
    """Issue 11 item 5: the approval step was written as approval_node, a key awx.awx.workflow_job_template does not
    take (it reads unified_job_template.name/.type of every node; an approval is type workflow_approval)."""
    plays = yaml.safe_load((ROOT / 'awx' / 'configure.yml').read_text())
    data = awx.build()
    section = {'awx.awx.credential_type': 'credential_types', 'awx.awx.job_template': 'job_templates',
               'awx.awx.workflow_job_template': 'workflow_job_templates'}
    for task in plays[0]['tasks']:
        module = next(k for k in task if k.startswith('awx.awx.'))
        assert set(task[module]) <= AWX_MODULE_OPTIONS[module], module
        for item in data[section[module]]:
            # every item.<key> the task reads exists in the generated data (or has a default in the task)
            for value in task[module].values():
                for key in re.findall(r"item\.([a-z_]+)\b(?!\s*\|\s*default)", str(value)):
                    assert key in item, (module, item['name'], key)
    for ct in data['credential_types']:
        assert ct['kind'] in CREDENTIAL_KINDS
    for template in data['job_templates']:
        assert template['job_type'] in ('run', 'check')
    for workflow in data['workflow_job_templates']:
        ids = {n['identifier'] for n in workflow['workflow_nodes']}
        for node in workflow['workflow_nodes']:
            assert set(node) <= WORKFLOW_NODE_KEYS, node
            ujt = node['unified_job_template']
            assert set(ujt) <= UJT_KEYS and ujt['name'] and ujt['type'] in UJT_TYPES, node
            for edges in node.get('related', {}).values():
                assert all(set(e) == {'identifier'} and e['identifier'] in ids for e in edges), node
