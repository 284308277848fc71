from __future__ import annotations

import copy

import pytest
import yaml

from ansible_collections.netmedic.k8s.plugins.module_utils import ip_masq as im

SEED_DS = """
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ip-masq-agent, namespace: kube-system}
spec:
  template:
    spec:
      containers:
        - name: ip-masq-agent
          image: registry.lab.invalid/ip-masq-agent:v2.10.1
          args:
            - --masq-chain=IP-MASQ
            - --nomasq-all-reserved-ranges
"""


def seed_ds():
    # The ip-masq-agent DaemonSet of lab/seed/cluster.yaml (2.10, no --random-fully=false): catalog C-4's fault.
    return yaml.safe_load(SEED_DS)


def test_flag_appended_and_other_args_kept():
    ds = seed_ds()
    new, changes, facts = im.plan(ds, random_fully=False)
    assert changes == [{'path': 'args', 'before': None, 'after': '--random-fully=false'}]
    assert facts['args'] == ['--masq-chain=IP-MASQ', '--nomasq-all-reserved-ranges', '--random-fully=false']
    assert ds == seed_ds(), 'the input must not be modified'
    again, more, _facts = im.plan(new, random_fully=False)
    assert again is new and more == []


@pytest.mark.parametrize('args, expected', [
    (['--random-fully', '--a'], ['--random-fully=false', '--a']),
    (['--a', '--random-fully=true', '--b'], ['--a', '--random-fully=false', '--b']),
    (['-random-fully=true', '--random-fully=false'], ['--random-fully=false']),
    (['--random-fully=false', '--random-fully=false'], ['--random-fully=false']),
])
def test_existing_flag_forms_are_replaced_in_place(args, expected):
    new, change = im.plan_args(args, False)
    assert new == expected and change['after'] == '--random-fully=false'


def test_random_fully_true_and_image_upgrade():
    _new, changes, facts = im.plan(seed_ds(), random_fully=True, image='registry.lab.invalid/ip-masq-agent:v2.11.0')
    assert [c['path'] for c in changes] == ['image', 'args']
    assert facts['version'] == 'v2.11.0' and facts['args'][-1] == '--random-fully=true'


@pytest.mark.parametrize('image, problem', [
    ('registry.lab.invalid/ip-masq-agent:v2.10.1', 'older than 2.11'),
    ('gke.gcr.io/ip-masq-agent:v2.9.3-gke.1@sha256:' + 'a' * 64, 'older than 2.11'),
    ('registry.lab.invalid/ip-masq-agent:latest', 'cannot read the ip-masq-agent version'),
    ('registry.lab.invalid/ip-masq-agent', 'cannot read the ip-masq-agent version'),
    ('registry.k8s.io/networking/ip-masq-agent:v2.11.0', None),
    ('localhost:5000/ip-masq-agent:v2.12.1-gke.3', None),
])
def test_version_gate(image, problem):
    found = im.version_problem(image)
    assert (found is None) if problem is None else (problem in found)


def test_container_choice():
    ds = seed_ds()
    two = copy.deepcopy(ds)
    two['spec']['template']['spec']['containers'].append({'name': 'sidecar', 'image': 'x'})
    assert im.pick_container(two)['name'] == 'ip-masq-agent'
    with pytest.raises(im.MasqError, match='no container'):
        im.pick_container(ds, 'nope')
    two['spec']['template']['spec']['containers'][0]['name'] = 'agent'
    with pytest.raises(im.MasqError, match='2 containers'):
        im.pick_container(two)


def test_flag_in_command_is_refused():
    ds = seed_ds()
    ds['spec']['template']['spec']['containers'][0]['command'] = ['/ip-masq-agent', '--random-fully=true']
    with pytest.raises(im.MasqError, match='command'):
        im.plan(ds)
