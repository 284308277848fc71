"""kmod helpers and ipvs scheduler validation (catalog N-4), fed output recorded on a Debian 6.1 VM."""

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils import ipvs, kmod

from ..conftest import fixture_reply, fixture_text


def test_loaded_names_from_real_proc_modules():
    before = kmod.loaded_names(fixture_text('proc/modules-vm-no-ipvs.txt'))
    assert 'ext4' in before and 'virtio_net' in before
    assert ipvs.ipvs_module_names(before) == []
    after = kmod.loaded_names(fixture_text('proc/modules-ipvs-in-use.txt'))
    assert ipvs.ipvs_module_names(after) == ['ip_vs', 'ip_vs_lc', 'ip_vs_rr', 'ip_vs_sh', 'ip_vs_wrr']
    assert kmod.loaded_names(None) is None


def test_plan_load_skips_loaded_and_builtin():
    loaded = kmod.loaded_names(fixture_text('proc/modules-ipvs-in-use.txt'))
    assert kmod.plan_load(['ip_vs', 'ip_vs_rr', 'ip_vs_nq', 'ip_vs_mh'], loaded, ['ip_vs_mh']) == ['ip_vs_nq']
    assert kmod.plan_load(['ip_vs', 'ip_vs_rr'], [], []) == ['ip_vs', 'ip_vs_rr']


def test_modules_load_file_round_trip_and_merge():
    text = '# ACK\nip_vs\n  ip_vs_rr \n; other\n\nip-vs-wrr\nip_vs_rr\nip_vs_sh # inline comments are not comments\n'
    assert kmod.parse_modules_load(text) == ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr']
    merged = kmod.merge_names(kmod.parse_modules_load(text), ['ip_vs', 'ip_vs_lc'])
    assert merged == ['ip_vs', 'ip_vs_rr', 'ip_vs_wrr', 'ip_vs_lc']
    rendered = kmod.render_modules_load(merged, 'ipvs_modules', 'N-4')
    assert rendered.startswith('# Managed by netmedic.k8s (ipvs_modules); catalog N-4.\n')
    assert kmod.parse_modules_load(rendered) == merged
    assert kmod.parse_modules_load(None) == []


@pytest.mark.parametrize('bad', ['', 'a b', 'ip_vs;rm', '../x', None])
def test_canonical_rejects(bad):
    with pytest.raises(kmod.KmodError, match='not a kernel module name:'):
        kmod.canonical(bad)


def test_probe_exists_with_real_modprobe_replies(make_runner):
    runner = make_runner(binaries={'modprobe': '/usr/sbin/modprobe'}, replies={
        ('modprobe', '-n', 'ip_vs_lc'): fixture_reply('kmod/modprobe-n-ip_vs_lc'),
        ('modprobe', '-n', 'ip_vs_twos'): fixture_reply('kmod/modprobe-n-ip_vs_twos'),
    })
    assert kmod.probe_exists(runner, 'ip_vs_lc') == (True, None)
    ok, reason = kmod.probe_exists(runner, 'ip_vs_twos')
    assert ok is False
    assert reason == 'modprobe: FATAL: Module ip_vs_twos not found in directory /lib/modules/6.1.0-56-amd64'
    assert runner.fake.calls == [('modprobe', '-n', 'ip_vs_lc'), ('modprobe', '-n', 'ip_vs_twos')]


def test_validate_schedulers():
    assert ipvs.validate_schedulers(['lc', 'rr', 'lc']) == ['ip_vs', 'ip_vs_lc', 'ip_vs_rr']
    assert ipvs.validate_schedulers(('twos',)) == ['ip_vs', 'ip_vs_twos']


@pytest.mark.parametrize('bad, words', [
    ([], 'at least one'), ('rr', 'must be a list'), (['RR'], 'unknown IPVS scheduler'), (['roundrobin'], 'unknown'),
    ([' rr'], 'white space'), ([1], 'strings'), (None, 'must be a list'), (['rr', 'ip_vs_lc'], 'unknown'),
])
def test_validate_schedulers_rejects(bad, words):
    with pytest.raises(ipvs.SchedulerError) as e:
        ipvs.validate_schedulers(bad)
    assert words in str(e.value)


def test_timeouts_plan_and_args_match_the_recorded_ipvsadm_output():
    current = ipvs.parse_timeout(fixture_text('ipvsadm/timeout-default.txt'))
    wanted = ipvs.validate_timeouts({'tcp': 900, 'tcpfin': 120, 'udp': 10})
    target = ipvs.plan_timeouts(current, wanted)
    assert ipvs.set_args(target) == ['ipvsadm', '--set', '900', '120', '10']
    assert target == ipvs.parse_timeout(fixture_text('ipvsadm/timeout-after-set-900-120-10.txt'))
    # 0 leaves a value as it is (ipvsadm --set semantics).
    assert ipvs.plan_timeouts(current, ipvs.validate_timeouts({'udp': 10})) == {'tcp': 900, 'tcpfin': 120, 'udp': 10}
    assert ipvs.validate_timeouts({'tcp': '60', 'udp': None}) == {'tcp': 60, 'tcpfin': 0, 'udp': 0}


@pytest.mark.parametrize('bad, words', [
    ({'udp': -1}, 'between 0'), ({'udp': 'ten'}, 'whole number'), ({'tcp': 1.5}, 'whole number'), ({'tcp': True}, 'whole number'),
    ({}, 'at least one'), ({'tcp': 0, 'tcpfin': 0, 'udp': 0}, 'at least one'), ({'tcp': 10 ** 9}, 'between 0'),
])
def test_validate_timeouts_rejects(bad, words):
    with pytest.raises(ipvs.TimeoutError_) as e:
        ipvs.validate_timeouts(bad)
    assert words in str(e.value)


def test_timeout_unit_runs_the_same_set_command_at_boot():
    unit = ipvs.render_timeout_unit({'tcp': 0, 'tcpfin': 0, 'udp': 10}, '/usr/sbin/ipvsadm', '/usr/sbin/modprobe')
    assert 'ExecStartPre=/usr/sbin/modprobe ip_vs\n' in unit
    assert 'ExecStart=/usr/sbin/ipvsadm --set 0 0 10\n' in unit
    assert 'After=systemd-modules-load.service\n' in unit
    assert 'WantedBy=multi-user.target\n' in unit
    assert unit.startswith('# Managed by netmedic.k8s (ipvs_timeouts); catalog N-5.\n')


@pytest.mark.parametrize('version, advice', [
    ('1.16.9', 'N-5'), ('v1.14', 'N-5'), ('1.17.3', None), ('1.18.0', 'C-3'), ('v1.24.9-gke.3200', 'C-3'), (None, None),
])
def test_udp_timeout_advice(version, advice):
    from ansible_collections.netmedic.k8s.plugins.module_utils import versions
    assert ipvs.udp_timeout_advice(versions.parse(version) if version else None) == advice
