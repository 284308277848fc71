"""The cluster edit service (module_utils/k8s/edit.py) against a fake client: issue #13, issue #10 hole 6."""

from __future__ import annotations

import copy
import datetime
import json

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import client as k8s_client
from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import edit

NOW = datetime.datetime(2026, 11, 25, 20, 15, 0, tzinfo=datetime.timezone.utc)


class FakeCluster(object):
    """Objects by (kind, namespace, name) with resourceVersion preconditions, like the API server.

    ``before_request`` hooks run before each call (a concurrent writer); ``calls`` logs every call.
    """

    def __init__(self, *objects):
        self.objects = {}
        self.rv = 100
        self.calls = []
        self.before_request = []
        self.reject_dry_run = None
        for obj in objects:
            self.put(obj)

    def put(self, obj):
        obj = copy.deepcopy(obj)
        self.rv += 1
        obj['metadata']['resourceVersion'] = str(self.rv)
        obj['metadata'].setdefault('uid', 'uid-%s' % obj['metadata']['name'])
        self.objects[(obj['kind'], obj['metadata']['namespace'], obj['metadata']['name'])] = obj
        return copy.deepcopy(obj)

    def _hooks(self, call):
        self.calls.append(call)
        for hook in list(self.before_request):
            hook(self, call)

    def get(self, kind, namespace, name):
        self._hooks(('get', kind, name))
        obj = self.objects.get((kind, namespace, name))
        return copy.deepcopy(obj)

    def replace(self, body, dry_run=False):
        meta = body['metadata']
        self._hooks(('replace', body['kind'], meta['name'], dry_run))
        key = (body['kind'], meta['namespace'], meta['name'])
        current = self.objects.get(key)
        if current is None:
            raise k8s_client.K8sError('not found', status=404)
        if meta.get('resourceVersion') != current['metadata']['resourceVersion']:
            raise k8s_client.K8sError('replacing %s failed: HTTP 409 Conflict' % meta['name'], status=409, reason='Conflict')
        if dry_run:
            if self.reject_dry_run:
                raise k8s_client.K8sError(self.reject_dry_run, status=422, reason='Invalid')
            return copy.deepcopy(body)
        return self.put(body)

    def create(self, body, dry_run=False):
        meta = body['metadata']
        self._hooks(('create', body['kind'], meta['name'], dry_run))
        key = (body['kind'], meta['namespace'], meta['name'])
        if key in self.objects:
            raise k8s_client.K8sError('creating %s failed: HTTP 409 AlreadyExists' % meta['name'], status=409, reason='AlreadyExists')
        if dry_run:
            return copy.deepcopy(body)
        return self.put(body)

    def delete(self, kind, namespace, name, uid=None):
        self._hooks(('delete', kind, name))
        return self.objects.pop((kind, namespace, name), None)

    def backups(self):
        return [o for o in self.objects.values() if edit.BACKUP_LABEL in (o['metadata'].get('labels') or {})]

    def writes(self):
        return [c for c in self.calls if c[0] in ('replace', 'create', 'delete') and not (len(c) > 3 and c[3])]


def configmap(data, name='kube-flannel-cfg'):
    return {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': name, 'namespace': 'kube-system'}, 'data': data}


def set_key(key, value):
    """A data planner setting ``key`` to ``value``."""

    def plan_data(data):
        if data.get(key) == value:
            return data, []
        change = {'path': key, 'before': data.get(key), 'after': value}
        data[key] = value
        return data, [change]

    return edit.data_planner(plan_data)


def concurrent_edit_after_first_read(mutate, kind='ConfigMap', name='kube-flannel-cfg'):
    """A kubectl edit landing right after the first read of the object (before anything else)."""
    state = {'reads': 0, 'fired': None}

    def hook(cluster, call):
        if call[0] == 'get' and call[1] == kind and call[2] == name:
            state['reads'] += 1
        elif state['reads'] and state['fired'] is None:
            obj = copy.deepcopy(cluster.objects[(kind, 'kube-system', name)])
            mutate(obj)
            state['fired'] = cluster.put(obj)

    return hook, state


def test_issue13_edit_backs_up_at_the_read_resource_version_then_writes_with_it_and_verifies():
    cluster = FakeCluster(configmap({'a': '1', 'b': 'x'}))
    planner = set_key('a', '2')
    state = edit.prepare(cluster, 'ConfigMap', 'kube-system', 'kube-flannel-cfg', planner)
    read_rv = state['object']['metadata']['resourceVersion']
    backups = []
    done = edit.run(cluster, state, planner, backups=backups, now=NOW, describe=lambda cm: {'data': cm['data']})
    assert done['changed'] is True and done['stored']['data'] == {'a': '2', 'b': 'x'}
    (saved,) = cluster.backups()
    assert saved['metadata']['name'] == 'kube-flannel-cfg-netmedic-backup-20261125t201500z'
    assert saved['data'] == {'a': '1', 'b': 'x'}
    assert saved['metadata']['annotations'][edit.RV_ANNOTATION] == read_rv
    assert backups == [{'of': 'kube-system/kube-flannel-cfg', 'resource_version': read_rv, 'data': {'a': '1', 'b': 'x'},
                        'configmap': 'kube-system/%s' % saved['metadata']['name']}]
    # order: dry run, backup, write, read back
    assert [c[0] for c in cluster.calls] == ['get', 'replace', 'create', 'replace', 'get']
    assert cluster.calls[1][3] is True


def test_issue10_h6_conflict_redoes_plan_and_backup_so_the_backup_holds_what_was_overwritten():
    cluster = FakeCluster(configmap({'a': '1', 'b': 'x'}))
    hook, fired = concurrent_edit_after_first_read(lambda cm: cm['data'].update(b='kubectl-edit'))
    cluster.before_request.append(hook)
    planner = set_key('a', '2')
    backups = []
    state = edit.prepare(cluster, 'ConfigMap', 'kube-system', 'kube-flannel-cfg', planner)
    done = edit.run(cluster, state, planner, backups=backups, now=NOW, sleep=lambda s: None,
                    describe=lambda cm: {'data': cm['data']})
    overwritten = fired['fired']
    assert overwritten is not None
    (saved,) = cluster.backups()
    assert saved['data'] == overwritten['data'] == {'a': '1', 'b': 'kubectl-edit'}
    assert saved['metadata']['annotations'][edit.RV_ANNOTATION] == overwritten['metadata']['resourceVersion']
    assert len(backups) == 1 and backups[0]['data'] == overwritten['data']
    assert backups[0]['resource_version'] == overwritten['metadata']['resourceVersion']
    assert cluster.objects[('ConfigMap', 'kube-system', 'kube-flannel-cfg')]['data'] == {'a': '2', 'b': 'kubectl-edit'}
    assert done['object']['data'] == overwritten['data']


def test_issue13_check_mode_reads_plans_and_dry_runs_only():
    cluster = FakeCluster(configmap({'a': '1'}))
    planner = set_key('a', '2')
    before = copy.deepcopy(cluster.objects)
    state = edit.prepare(cluster, 'ConfigMap', 'kube-system', 'kube-flannel-cfg', planner)
    backups = []
    done = edit.run(cluster, state, planner, check_mode=True, backups=backups)
    assert done['changed'] is True and done['stored']['data'] == {'a': '2'}
    assert cluster.objects == before and backups == [] and cluster.writes() == []
    assert ('replace', 'ConfigMap', 'kube-flannel-cfg', True) in cluster.calls


def test_issue13_no_change_means_no_dry_run_no_backup_no_write():
    cluster = FakeCluster(configmap({'a': '2'}))
    planner = set_key('a', '2')
    state = edit.prepare(cluster, 'ConfigMap', 'kube-system', 'kube-flannel-cfg', planner)
    done = edit.run(cluster, state, planner)
    assert done['changed'] is False and cluster.calls == [('get', 'ConfigMap', 'kube-flannel-cfg')]


def test_issue13_dry_run_rejection_fails_with_nothing_written():
    cluster = FakeCluster(configmap({'a': '1'}))
    cluster.reject_dry_run = 'ConfigMap "kube-flannel-cfg" is invalid'
    planner = set_key('a', '2')
    state = edit.prepare(cluster, 'ConfigMap', 'kube-system', 'kube-flannel-cfg', planner)
    with pytest.raises(edit.EditFailed, match=r'rejected the planned change \(dry run\).*is invalid.*nothing was changed') as info:
        edit.run(cluster, state, planner)
    assert info.value.changed is False and cluster.writes() == [] and cluster.backups() == []


def test_issue13_conflicts_beyond_the_retries_fail_and_say_the_backup_was_made():
    cluster = FakeCluster(configmap({'a': '1', 'n': '0'}))

    def always_someone_else(c, call):
        if call[0] == 'replace' and call[2] == 'kube-flannel-cfg' and not call[3]:
            obj = copy.deepcopy(c.objects[('ConfigMap', 'kube-system', 'kube-flannel-cfg')])
            obj['data']['n'] = str(int(obj['data']['n']) + 1)
            c.put(obj)

    cluster.before_request.append(always_someone_else)
    planner = set_key('a', '2')
    state = edit.prepare(cluster, 'ConfigMap', 'kube-system', 'kube-flannel-cfg', planner)
    with pytest.raises(edit.EditFailed, match=r'409 Conflict.*at the write step.*not written; backup: kube-system/kube-flannel-cfg-netmedic') as info:
        edit.run(cluster, state, planner, retries=2, sleep=lambda s: None, now=NOW)
    assert info.value.changed is True
    (saved,) = cluster.backups()
    # the backup holds the last version the module tried to replace
    assert saved['data']['n'] == '2'
    assert cluster.objects[('ConfigMap', 'kube-system', 'kube-flannel-cfg')]['data']['a'] == '1'


def test_issue13_conflict_after_which_nothing_is_left_to_do_removes_the_backup():
    cluster = FakeCluster(configmap({'a': '1'}))
    hook, fired = concurrent_edit_after_first_read(lambda cm: cm['data'].update(a='2'))
    cluster.before_request.append(hook)
    planner = set_key('a', '2')
    backups = []
    state = edit.prepare(cluster, 'ConfigMap', 'kube-system', 'kube-flannel-cfg', planner)
    done = edit.run(cluster, state, planner, backups=backups, sleep=lambda s: None, now=NOW)
    assert fired['fired'] is not None
    assert done['changed'] is False and backups == [] and cluster.backups() == []


def test_issue13_read_back_that_still_needs_a_change_fails_as_written():
    cluster = FakeCluster(configmap({'a': '1'}))

    def webhook_reverts(c, call):
        if call[0] == 'get' and len(c.calls) > 2:
            obj = c.objects[('ConfigMap', 'kube-system', 'kube-flannel-cfg')]
            obj['data']['a'] = '1'

    cluster.before_request.append(webhook_reverts)
    planner = set_key('a', '2')
    state = edit.prepare(cluster, 'ConfigMap', 'kube-system', 'kube-flannel-cfg', planner)
    with pytest.raises(edit.EditFailed, match=r'does not show the change after writing it \(still to change: a\)\. The object was written') as info:
        edit.run(cluster, state, planner, now=NOW)
    assert info.value.changed is True


def test_issue13_daemonset_backup_is_the_whole_object_as_read_without_server_fields():
    meta = {'name': 'ip-masq-agent', 'namespace': 'kube-system', 'generation': 3, 'managedFields': [{}]}
    ds = {'apiVersion': 'apps/v1', 'kind': 'DaemonSet', 'metadata': meta,
          'spec': {'template': {'spec': {'containers': [{'name': 'c', 'args': ['--x']}]}}}, 'status': {'numberReady': 2}}
    cluster = FakeCluster(ds)

    def planner(obj):
        args = obj['spec']['template']['spec']['containers'][0]['args']
        if '--y' in args:
            return obj, []
        args.append('--y')
        return obj, [{'path': 'args', 'before': None, 'after': '--y'}]

    state = edit.prepare(cluster, 'DaemonSet', 'kube-system', 'ip-masq-agent', planner)
    edit.run(cluster, state, planner, now=NOW)
    (saved,) = cluster.backups()
    kept = json.loads(saved['data']['daemonset.json'])
    assert kept['spec'] == ds['spec'] and 'status' not in kept
    assert not {'resourceVersion', 'uid', 'generation', 'managedFields'} & set(kept['metadata'])
    assert saved['metadata']['labels'][edit.BACKUP_LABEL] == 'ip-masq-agent'
    assert cluster.objects[('DaemonSet', 'kube-system', 'ip-masq-agent')]['spec']['template']['spec']['containers'][0]['args'] == ['--x', '--y']


def test_issue13_backup_name_taken_in_the_same_second_gets_a_suffix():
    taken = configmap({'old': 'backup'}, name='kube-flannel-cfg-netmedic-backup-20261125t201500z')
    cluster = FakeCluster(configmap({'a': '1'}), taken)
    planner = set_key('a', '2')
    backups = []
    edit.run(cluster, edit.prepare(cluster, 'ConfigMap', 'kube-system', 'kube-flannel-cfg', planner), planner, backups=backups, now=NOW)
    assert backups[0]['configmap'] == 'kube-system/kube-flannel-cfg-netmedic-backup-20261125t201500z-2'
    assert cluster.objects[('ConfigMap', 'kube-system', 'kube-flannel-cfg-netmedic-backup-20261125t201500z')]['data'] == {'old': 'backup'}


def test_issue13_missing_object_is_404_unless_a_creation_template_is_given():
    cluster = FakeCluster()
    planner = set_key('a', '1')
    with pytest.raises(k8s_client.K8sError, match='ConfigMap kube-system/eni-config not found') as info:
        edit.prepare(cluster, 'ConfigMap', 'kube-system', 'eni-config', planner)
    assert info.value.status == 404
    backups = []
    state = edit.prepare(cluster, 'ConfigMap', 'kube-system', 'eni-config', planner, create=configmap({}, name='eni-config'))
    done = edit.run(cluster, state, planner, backups=backups)
    assert done['changed'] is True and backups == []
    assert cluster.objects[('ConfigMap', 'kube-system', 'eni-config')]['data'] == {'a': '1'}


def test_issue13_planner_refusal_on_the_re_read_fails_cleanly_after_the_backup():
    cluster = FakeCluster(configmap({'a': '1'}))

    def hook(c, call):
        # someone breaks the object after our backup, just before our write
        if call[0] == 'replace' and call[2] == 'kube-flannel-cfg' and not call[3] and c.backups():
            obj = copy.deepcopy(c.objects[('ConfigMap', 'kube-system', 'kube-flannel-cfg')])
            if obj['data']['a'] != 'broken':
                obj['data']['a'] = 'broken'
                c.put(obj)

    cluster.before_request.append(hook)

    def plan_data(data):
        if data['a'] == 'broken':
            raise ValueError('key a is not valid')
        return dict(data, a='2'), [{'path': 'a', 'before': data['a'], 'after': '2'}]

    planner = edit.data_planner(plan_data)
    state = edit.prepare(cluster, 'ConfigMap', 'kube-system', 'kube-flannel-cfg', planner)
    with pytest.raises(edit.EditFailed, match=r'ConfigMap kube-system/kube-flannel-cfg: key a is not valid \(at the re-read') as info:
        edit.run(cluster, state, planner, sleep=lambda s: None, now=NOW)
    assert info.value.changed is True and cluster.objects[('ConfigMap', 'kube-system', 'kube-flannel-cfg')]['data'] == {'a': 'broken'}


def test_issue9_f5_backup_records_the_digest_of_what_was_written_over_it():
    cluster = FakeCluster(configmap({'a': '1', 'b': 'x'}))
    planner = set_key('a', '2')
    state = edit.prepare(cluster, 'ConfigMap', 'kube-system', 'kube-flannel-cfg', planner)
    edit.run(cluster, state, planner, now=NOW)
    (saved,) = cluster.backups()
    live = cluster.objects[('ConfigMap', 'kube-system', 'kube-flannel-cfg')]
    # The live object is what netmedic wrote: same digest; any later edit changes it.
    assert saved['metadata']['annotations'][edit.WRITTEN_ANNOTATION] == edit.content_digest(live)
    assert edit.content_digest(configmap({'a': '2', 'b': 'x'})) == edit.content_digest(live)
    assert edit.content_digest(configmap({'a': '2', 'b': 'x '})) != edit.content_digest(live)
    assert edit.content_digest(configmap({'a': '1', 'b': 'x'})) != edit.content_digest(live)


def test_issue9_f5_a_409_re_backup_records_the_re_planned_digest():
    cluster = FakeCluster(configmap({'a': '1', 'b': 'x'}))
    hook, _state = concurrent_edit_after_first_read(lambda obj: obj['data'].update(b='y'))
    cluster.before_request.append(hook)
    planner = set_key('a', '2')
    state = edit.prepare(cluster, 'ConfigMap', 'kube-system', 'kube-flannel-cfg', planner)
    edit.run(cluster, state, planner, now=NOW, sleep=lambda _s: None)
    (saved,) = cluster.backups()
    assert saved['data'] == {'a': '1', 'b': 'y'}
    live = cluster.objects[('ConfigMap', 'kube-system', 'kube-flannel-cfg')]
    assert live['data'] == {'a': '2', 'b': 'y'}
    assert saved['metadata']['annotations'][edit.WRITTEN_ANNOTATION] == edit.content_digest(live)
