from __future__ import annotations

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import drain as du


def node(unschedulable=False, owner=None, rv='7'):
    meta = {'name': 'n1', 'resourceVersion': rv}
    if owner is not None:
        meta['annotations'] = {du.CORDON_ANNOTATION: owner}
    return {'metadata': meta, 'spec': {'unschedulable': True} if unschedulable else {}}


def pod(name, kind='ReplicaSet', volumes=None, phase='Running', mirror=False, deleting=False, uid=None, ns='default'):
    meta = {'name': name, 'namespace': ns, 'uid': uid or name + '-uid'}
    if kind:
        meta['ownerReferences'] = [{'kind': kind, 'name': 'owner', 'controller': True}]
    if mirror:
        meta['annotations'] = {du.MIRROR_ANNOTATION: 'x'}
    if deleting:
        meta['deletionTimestamp'] = '2026-12-01T00:00:00Z'
    return {'metadata': meta, 'spec': {'volumes': volumes or []}, 'status': {'phase': phase}}


def test_cordon_records_the_owner_and_keeps_foreign_cordons_unannotated():
    assert du.cordon_patch(node(), 'job-1') == {'metadata': {'resourceVersion': '7', 'annotations': {du.CORDON_ANNOTATION: 'job-1'}},
                                                'spec': {'unschedulable': True}}
    assert du.cordon_patch(node(True, 'job-0'), 'job-1') is None          # netmedic's, first owner stays
    assert du.cordon_patch(node(True), 'job-1') is None                   # someone else's: never annotated
    assert du.cordon_state(node(True))['by_other'] is True
    assert du.cordon_state(node(True, 'job-0'))['by_netmedic'] is True


def test_issue9_f8_uncordon_only_with_the_annotation_from_any_run():
    assert du.uncordon_patch(node(True, 'job-from-a-failed-run')) == {
        'metadata': {'resourceVersion': '7', 'annotations': {du.CORDON_ANNOTATION: None}}, 'spec': {'unschedulable': False}}
    assert du.uncordon_patch(node(True)) is None                          # someone else's cordon
    assert du.uncordon_patch(node()) is None
    assert du.uncordon_patch(node(False, 'stale')) == {                   # uncordoned by hand: only the annotation goes
        'metadata': {'resourceVersion': '7', 'annotations': {du.CORDON_ANNOTATION: None}}}


@pytest.mark.parametrize('run_id', ['', None, 5])
def test_cordon_needs_a_run_id(run_id):
    with pytest.raises(du.DrainError, match='run_id must be a non-empty string'):
        du.cordon_patch(node(), run_id)


def test_plan_skips_daemonset_mirror_and_finished_refuses_emptydir_and_unmanaged():
    pods = [pod('web'), pod('ds', kind='DaemonSet'), pod('static', kind='Node', mirror=True), pod('job', kind='Job', phase='Succeeded'),
            pod('loose', kind=None), pod('cache', volumes=[{'name': 'c', 'emptyDir': {}}])]
    out = du.plan(pods)
    assert [du.pod_ref(p) for p in out['evict']] == ['default/web']
    assert sorted(e['pod'] for e in out['skip']) == ['default/ds', 'default/job', 'default/static']
    assert {e['pod']: e['reason'].split(':')[0] for e in out['refuse']} == {
        'default/loose': 'not managed by a controller', 'default/cache': 'has emptyDir volume(s) whose data is lost (delete_emptydir_data)'}
    allowed = du.plan(pods, delete_emptydir_data=True, allow_unmanaged=True)
    assert [du.pod_ref(p) for p in allowed['evict']] == ['default/cache', 'default/loose', 'default/web'] and not allowed['refuse']


def test_issue9_f3_terminating_and_running_pods_count_as_still_there():
    evicted = [pod('a'), pod('b'), pod('c'), pod('d')]
    now = [pod('a', deleting=True), pod('b'), pod('c', uid='replacement')]        # d gone, c replaced
    assert du.still_there(evicted, now) == [{'pod': 'default/a', 'uid': 'a-uid', 'state': 'Terminating'},
                                            {'pod': 'default/b', 'uid': 'b-uid', 'state': 'Running'}]
    msg = du.failure_message('n1', du.still_there(evicted, now), {'default/b': 'HTTP 429 budget'})
    assert msg == ('drain of n1 did not finish: 2 pod(s) still on the node after the timeout: default/a (Terminating), '
                   'default/b (Running; eviction refused: HTTP 429 budget)')


def test_eviction_body_pins_the_uid():
    body = du.eviction_body(pod('web'), grace_period=30)
    assert body['deleteOptions'] == {'preconditions': {'uid': 'web-uid'}, 'gracePeriodSeconds': 30}
    assert body['metadata'] == {'name': 'web', 'namespace': 'default'} and body['kind'] == 'Eviction'
