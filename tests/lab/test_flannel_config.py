"""netmedic.k8s.flannel_config (catalog C-5, N-7 step 2) against the API double: the double-only case.

The portable ones (check mode, apply, idempotence and the backup, bad input, a cni-conf.json that is not JSON) run on
both servers in tests/cluster/test_flannel_config.py (issue 15); what stays here needs a forced 409. The module's
``main()`` runs in the test process (``module_tasks``, tests/harness.py: issue 12), over HTTP through the real client.
"""

from __future__ import annotations

import json

import pytest
import yaml

CM = 'kube-flannel-cfg'
KEY = 'cni-conf.json'


def stored(double, name=CM):
    return double.store.get('configmaps', 'kube-system', name)


def task(name, args, **extra):
    entry = {'name': name, 'netmedic.k8s.flannel_config': args}
    entry.update(extra)
    return entry


def conflict_once(double, name, mutate):
    """A concurrent writer: the first replace of ConfigMap ``name`` sent over HTTP is preceded by another write."""
    store = double.store
    original = store.update
    fired = []

    def update(rt, namespace, obj_name, obj, dry_run=False, subresource=None, system=False):
        if not fired and not dry_run and not system and obj_name == name and obj.get('kind') == 'ConfigMap':
            fresh = store.get('configmaps', namespace, name)
            mutate(fresh)
            original('configmaps', namespace, name, fresh)
            fired.append(fresh['metadata']['resourceVersion'])
        return original(rt, namespace, obj_name, obj, dry_run=dry_run, subresource=subresource, system=system)

    store.update = update
    return fired


@pytest.mark.double_only("fault: a concurrent write landed between the module's read and its write (the double's store.update wrapped), a "
                         'deterministic 409; a real server gives one only under a real race')
def test_conflict_is_retried_on_fresh_data(double, module_tasks):
    def other_writer(cm):
        cm['data']['net-conf.json'] = cm['data']['net-conf.json'].replace('alloc', 'vxlan')

    fired = conflict_once(double, CM, other_writer)
    rc, results, output = module_tasks(double, yaml.safe_dump([task('apply', {'cni_version': '0.3.1'})]))
    assert rc == 0, output
    assert fired, 'the concurrent write was not injected'
    assert results['apply']['changed'] is True
    data = stored(double)['data']
    assert json.loads(data[KEY])['cniVersion'] == '0.3.1'
    assert '"Type": "vxlan"' in data['net-conf.json'], 'the concurrent write was lost'
    assert int(stored(double)['metadata']['resourceVersion']) > int(fired[0])
