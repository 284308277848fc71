"""The double at scale (issue 14, item 2): the store's copy, order cache and paged lists keep their behaviour.

The 1,000-node benchmark (bench/bench_cluster_scale.py) was bounded by the double itself: every read
deep-copied with ``copy.deepcopy``, every ``iter_objects`` sorted the whole type, and every page of a
paged list copied the whole collection. These tests pin what must not change with the faster paths.
"""

from __future__ import annotations

import copy

from lab.kubedouble import Store
from lab.kubedouble.resources import lookup
from lab.kubedouble.seed import populate
from lab.kubedouble.server import Api
from lab.kubedouble.store import clone


def _pod(name, namespace='default', labels=None):
    return {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': name, 'namespace': namespace, 'labels': labels or {}},
            'spec': {'containers': [{'name': 'c', 'image': 'i:1'}]}}


def test_clone_is_a_deep_copy_of_json_data():
    obj = {'a': [{'b': 1, 'c': [1, 2, {'d': None}]}, 'x', 1.5, True], 'e': {'f': {'g': 'h'}}, 't': (1, [2])}
    copied = clone(obj)
    assert copied == copy.deepcopy(obj)
    copied['a'][0]['c'][2]['d'] = 'changed'
    copied['e']['f']['g'] = 'changed'
    copied['t'][1].append(3)
    assert obj == {'a': [{'b': 1, 'c': [1, 2, {'d': None}]}, 'x', 1.5, True], 'e': {'f': {'g': 'h'}}, 't': (1, [2])}


def test_order_follows_creates_and_deletes():
    store = Store(validate=False)
    populate(store, [])
    for name in ('p3', 'p1', 'p2'):
        store.create('pods', 'default', _pod(name))
    assert [p['metadata']['name'] for p in store.iter_objects('pods')] == ['p1', 'p2', 'p3']
    store.delete('pods', 'default', 'p2')
    store.create('pods', 'default', _pod('p0'))
    store.create('pods', 'kube-system', _pod('a9', 'kube-system'))
    assert [(p['metadata']['namespace'], p['metadata']['name']) for p in store.iter_objects('pods')] == [
        ('default', 'p0'), ('default', 'p1'), ('default', 'p3'), ('kube-system', 'a9')]
    assert [p['metadata']['name'] for p in store.iter_objects('pods', 'kube-system')] == ['a9']
    store.load(store.dump())
    assert [p['metadata']['name'] for p in store.iter_objects('pods')] == ['p0', 'p1', 'p3', 'a9']


def test_paged_list_pages_the_selected_objects_and_copies():
    store = Store(validate=False)
    populate(store, [])
    for i in range(7):
        store.create('pods', 'default', _pod('p%d' % i, labels={'app': 'a' if i % 2 else 'b'}))
    api = Api(store)
    names, token = [], None
    while True:
        query = {'limit': '2', 'labelSelector': 'app=a'}
        if token:
            query['continue'] = token
        status, body, _ctype = api._collection('GET', lookup('pods'), 'default', query, None)
        assert status == 200
        names += [i['metadata']['name'] for i in body['items']]
        token = body['metadata'].get('continue')
        if not token:
            break
        assert body['metadata']['remainingItemCount'] == 3 - len(names)
    assert names == ['p1', 'p3', 'p5']
    status, body, _ctype = api._collection('GET', lookup('pods'), 'default', {}, None)
    assert len(body['items']) == 7
    body['items'][0]['metadata']['labels']['app'] = 'changed'
    assert store.get('pods', 'default', 'p0')['metadata']['labels'] == {'app': 'b'}


def test_services_get_the_lowest_free_cluster_ip():
    store = Store(validate=False)
    populate(store, [])
    svc = {'apiVersion': 'v1', 'kind': 'Service', 'metadata': {'name': 's'}, 'spec': {'ports': [{'port': 80}]}}
    ips = []
    for i in range(3):
        ips.append(store.create('services', 'default', dict(svc, metadata={'name': 's%d' % i}))['spec']['clusterIP'])
    assert ips == ['10.96.0.2', '10.96.0.3', '10.96.0.4']
    store.delete('services', 'default', 's1')
    assert store.create('services', 'default', dict(svc, metadata={'name': 's9'}))['spec']['clusterIP'] == '10.96.0.3'
