"""Cluster lock planner (issue 9 "Cluster lock", finding 4): identity, Lease reading, decisions, CAS retries."""

from __future__ import annotations

import copy
import datetime

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.k8s import lock as ll

NOW = datetime.datetime(2026, 12, 1, 22, 0, 0, tzinfo=datetime.timezone.utc)
NS, NAME, FAMILY = 'kube-system', 'netmedic-node-rotation', 'node-rotation'


def lease(holder='awx-job-1', renewed_ago=10, duration=600, **spec_extra):
    spec = {'holderIdentity': holder, 'leaseDurationSeconds': duration,
            'renewTime': ll.format_time(NOW - datetime.timedelta(seconds=renewed_ago)),
            'acquireTime': ll.format_time(NOW - datetime.timedelta(seconds=renewed_ago)), 'leaseTransitions': 0}
    spec.update(spec_extra)
    return {'apiVersion': 'coordination.k8s.io/v1', 'kind': 'Lease',
            'metadata': {'name': NAME, 'namespace': NS, 'resourceVersion': '7'},
            'spec': {k: v for k, v in spec.items() if v is not None}}


def plan(current, state='acquired', holder='awx-job-2', duration=600, takeover=False):
    return ll.plan(current, state, holder, NOW, duration, takeover, NS, NAME, FAMILY)


# -- identity ---------------------------------------------------------------------------------------

def test_issue9_f4_identity_is_per_run_not_user_at_host():
    one = ll.identity(user='ops', host='ctl.example.com')
    two = ll.identity(user='ops', host='ctl.example.com')
    assert one.startswith('ops@ctl/') and two.startswith('ops@ctl/') and one != two


def test_identity_sources():
    assert ll.identity(job_id='4711') == 'awx-job-4711'
    assert ll.identity(job_id=4711, nonce='b') == 'awx-job-4711/b'
    assert ll.identity(holder='ci-a', job_id='1') == 'ci-a'
    assert ll.identity(user='ops', host='h', nonce='n1') == 'ops@h/n1'


@pytest.mark.parametrize('kwargs, message', [
    (dict(job_id='12a'), 'job_id must be the AWX job number'),
    (dict(job_id='\uff11\uff12'), 'job_id must be the AWX job number'),      # full-width digits
    (dict(holder='a b'), 'holder must be 1-200 characters'),
    (dict(holder='x' * 201), 'holder must be 1-200 characters'),
    (dict(user='o;ps', host='h', nonce='n'), 'characters a Lease holder should not carry'),
])
def test_bad_identity(kwargs, message):
    with pytest.raises(ll.LockError, match=message):
        ll.identity(**kwargs)


@pytest.mark.parametrize('call, message', [
    (lambda: ll.lease_name('Node_Rotation'), 'family must be a lowercase DNS label'),
    (lambda: ll.lease_name('x' * 51), 'family must be a lowercase DNS label'),
    (lambda: ll.lease_name('ok', 'Bad Name'), 'name must be a lowercase DNS subdomain'),
    (lambda: ll.check_namespace('kube_system'), 'namespace must be a lowercase DNS label'),
    (lambda: ll.check_duration(0), 'duration must be whole seconds'),
    (lambda: ll.check_duration(True), 'duration must be whole seconds'),
    (lambda: ll.check_duration(8 * 24 * 3600), 'duration must be whole seconds'),
    (lambda: plan(None, state='held'), 'state must be one of'),
])
def test_bad_inputs(call, message):
    with pytest.raises(ll.LockError, match=message):
        call()


def test_lease_name_default_and_times():
    assert ll.lease_name('node-rotation') == 'netmedic-node-rotation'
    assert ll.lease_name('x', 'my.lock') == 'my.lock'
    assert ll.parse_time('2026-12-01T22:00:00.123456789Z') == NOW + datetime.timedelta(microseconds=123456)
    assert ll.parse_time('2026-12-01T23:00:00+01:00') == NOW
    assert ll.parse_time('yesterday') is None and ll.parse_time(None) is None


# -- decisions --------------------------------------------------------------------------------------

def test_free_lock_is_created():
    step = plan(None)
    assert step['action'] == 'created' and step['write'] == 'create' and step['held_by_us']
    spec = step['body']['spec']
    assert spec['holderIdentity'] == 'awx-job-2' and spec['leaseDurationSeconds'] == 600
    assert spec['renewTime'] == spec['acquireTime'] == '2026-12-01T22:00:00.000000Z'
    assert step['body']['metadata']['annotations'] == {ll.FAMILY_ANNOTATION: FAMILY}


def test_live_lock_of_another_run_is_refused():
    step = plan(lease())
    assert step['action'] == 'refused' and step['write'] is None and not step['held_by_us']
    assert "held by 'awx-job-1'" in step['reason'] and 'another run is in progress' in step['reason']


@pytest.mark.parametrize('spec, problem', [
    (dict(renewTime=None), 'renewTime is missing'),
    (dict(renewTime='soon'), 'renewTime is missing or unreadable'),
    (dict(leaseDurationSeconds=None), 'leaseDurationSeconds is missing'),
    (dict(leaseDurationSeconds='600'), 'leaseDurationSeconds is missing or not a positive integer'),
    (dict(leaseDurationSeconds=0), 'leaseDurationSeconds is missing or not a positive integer'),
    (dict(holderIdentity=''), 'holderIdentity is missing or empty'),
])
def test_issue9_f4_missing_or_invalid_fields_are_held_never_expired(spec, problem):
    old = lease(renewed_ago=10 ** 6)          # would be long expired if it were read leniently
    for key, value in spec.items():
        if value is None:
            old['spec'].pop(key)
        else:
            old['spec'][key] = value
    step = plan(old)
    assert step['action'] == 'refused' and step['write'] is None
    assert problem in step['reason'] and 'treated as HELD' in step['reason']


def test_expired_lock_is_taken_over_and_counted():
    step = plan(lease(renewed_ago=601))
    assert step['action'] == 'taken_over' and step['write'] == 'replace'
    assert step['previous_holder'] == 'awx-job-1' and 'expired' in step['reason']
    assert step['body']['spec']['leaseTransitions'] == 1 and step['body']['metadata']['resourceVersion'] == '7'
    assert plan(lease(renewed_ago=599))['action'] == 'refused'


def test_takeover_is_explicit_and_recorded():
    old = lease()
    old['spec'].pop('renewTime')
    step = plan(old, takeover=True)
    assert step['action'] == 'taken_over' and step['previous_holder'] == 'awx-job-1'
    assert 'takeover requested' in step['reason'] and step['body']['spec']['holderIdentity'] == 'awx-job-2'


def test_own_lock_is_kept_or_renewed():
    assert plan(lease(holder='awx-job-2', renewed_ago=10))['action'] == 'kept'
    assert plan(lease(holder='awx-job-2', renewed_ago=10))['write'] is None
    late = plan(lease(holder='awx-job-2', renewed_ago=400))
    assert late['action'] == 'renewed' and late['body']['spec']['renewTime'] == ll.format_time(NOW)
    assert plan(lease(holder='awx-job-2'), duration=1200)['action'] == 'renewed'


def test_renew_keeps_acquire_time_and_fails_when_lost():
    mine = lease(holder='awx-job-2', renewed_ago=10)
    step = plan(mine, state='renewed')
    assert step['action'] == 'renewed' and step['write'] == 'replace'
    assert step['body']['spec']['acquireTime'] == mine['spec']['acquireTime']
    assert step['body']['spec']['renewTime'] == ll.format_time(NOW)
    assert plan(lease(), state='renewed')['action'] == 'lost'
    assert plan(None, state='renewed')['action'] == 'lost'


def test_release_only_our_own():
    assert plan(lease(holder='awx-job-2'), state='released')['write'] == 'delete'
    other = plan(lease(), state='released')
    assert other['action'] == 'not_ours' and other['write'] is None
    assert plan(None, state='released')['action'] == 'already_free'


def test_inspect_expiry():
    info = ll.inspect(lease(renewed_ago=100, duration=600), NOW)
    assert info['expires'] == '2026-12-01T22:08:20.000000Z' and not info['expired'] and not info['problems']


# -- run: compare-and-swap with a fake API ---------------------------------------------------------

class Conflict(Exception):
    status = 409


class FakeApi(object):
    """A Lease store with resourceVersions; ``race`` runs once before the next write (another writer)."""

    def __init__(self, current=None):
        self.current = copy.deepcopy(current)
        self.rv = 7
        self.race = None
        self.writes = []

    def get(self, namespace, name):
        return copy.deepcopy(self.current)

    def _raced(self):
        if self.race:
            race, self.race = self.race, None
            race(self)

    def create(self, namespace, body):
        self._raced()
        if self.current is not None:
            raise Conflict('AlreadyExists')
        return self._store(body)

    def replace(self, namespace, name, body):
        self._raced()
        if self.current is None:
            raise type('NotFound', (Exception,), {'status': 404})()
        if body['metadata']['resourceVersion'] != self.current['metadata']['resourceVersion']:
            raise Conflict('Conflict')
        return self._store(body)

    def delete(self, namespace, name, resource_version):
        self._raced()
        if self.current['metadata']['resourceVersion'] != resource_version:
            raise Conflict('Precondition failed')
        self.writes.append('delete')
        self.current = None

    def _store(self, body):
        self.rv += 1
        body = copy.deepcopy(body)
        body.setdefault('metadata', {})['resourceVersion'] = str(self.rv)
        self.current = body
        self.writes.append(body['spec']['holderIdentity'])
        return copy.deepcopy(body)


def run(api, state='acquired', holder='awx-job-2', check_mode=False, takeover=False):
    return ll.run(api, NS, NAME, FAMILY, state, holder, 600, takeover=takeover, check_mode=check_mode,
                  clock=lambda: NOW)


def test_issue9_f4_race_loser_replans_and_is_refused():
    api = FakeApi()
    api.race = lambda a: a._store(lease(holder='awx-job-1'))        # the other run creates it first
    step, _before, after = run(api)
    assert step['action'] == 'refused' and api.writes == ['awx-job-1']
    assert after['spec']['holderIdentity'] == 'awx-job-1'


def test_race_on_takeover_of_an_expired_lease():
    api = FakeApi(lease(renewed_ago=10 ** 4))
    api.race = lambda a: a._store(lease(holder='awx-job-3'))        # another run takes it over first
    step, _before, _after = run(api)
    assert step['action'] == 'refused' and "held by 'awx-job-3'" in step['reason']
    assert api.current['spec']['holderIdentity'] == 'awx-job-3'


def test_release_race_leaves_the_new_holder_alone():
    api = FakeApi(lease(holder='awx-job-2'))
    api.race = lambda a: a._store(lease(holder='awx-job-9'))
    step, _before, _after = run(api, state='released')
    assert step['action'] == 'not_ours' and api.current['spec']['holderIdentity'] == 'awx-job-9'


def test_check_mode_never_writes():
    api = FakeApi()
    step, before, after = run(api, check_mode=True)
    assert step['action'] == 'created' and before is None and after['spec']['holderIdentity'] == 'awx-job-2'
    assert api.writes == [] and api.current is None
    api = FakeApi(lease(holder='awx-job-2'))
    step, _before, after = run(api, state='released', check_mode=True)
    assert step['action'] == 'released' and after is None and api.current is not None and api.writes == []


def test_conflicts_forever_give_up_without_taking():
    class Always(FakeApi):
        def create(self, namespace, body):
            raise Conflict('AlreadyExists')

    with pytest.raises(ll.LockError, match='kept changing under us'):
        run(Always())


def test_other_api_errors_propagate():
    class Broken(FakeApi):
        def create(self, namespace, body):
            raise type('Forbidden', (Exception,), {'status': 403})('forbidden')

    with pytest.raises(Exception, match='forbidden'):
        run(Broken())


def test_summary_shape():
    api = FakeApi()
    step, before, after = run(api)
    got = ll.summary(step, before, after, 'awx-job-2', NS, NAME, NOW)
    assert got['held'] and got['current_holder'] == 'awx-job-2' and got['resource_version'] == '8'
    assert got['expires'] == '2026-12-01T22:10:00.000000Z' and got['lease_duration'] == 600


def test_issue13_run_uses_the_callers_read_first_and_reads_afresh_after_a_conflict():
    class Counting(FakeApi):
        gets = 0

        def get(self, namespace, name):
            self.gets += 1
            return FakeApi.get(self, namespace, name)

    api = Counting()
    first = api.get(NS, NAME)
    step, before, _after = ll.run(api, NS, NAME, FAMILY, 'acquired', 'awx-job-2', 600, clock=lambda: NOW, before=first)
    assert step['action'] == 'created' and before is None and api.gets == 1 and api.writes == ['awx-job-2']
    # the read the caller made is stale: the other run created the Lease since; the conflict re-reads once
    api = Counting()
    stale = api.get(NS, NAME)
    api.race = lambda a: a._store(lease(holder='awx-job-1'))
    step, before, _after = ll.run(api, NS, NAME, FAMILY, 'acquired', 'awx-job-2', 600, clock=lambda: NOW, before=stale)
    assert step['action'] == 'refused' and before['spec']['holderIdentity'] == 'awx-job-1' and api.gets == 2
