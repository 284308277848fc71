"""ipvs_modules (catalog N-4) on a real Debian 6.1 kernel in the VM lab.

Fault: a node where no IPVS module is loaded and nothing loads them at boot (the lab's clean
state). Every claim is checked with an independent command over SSH, not with the module's
own report. Persistence across a real reboot is covered by tests/labvm/test_ipvs_timeouts.py
(one reboot for both modules).
"""

import pytest

NODE = 'lab-node-1'
FILE = '/etc/modules-load.d/netmedic-ipvs.conf'
PROBE = 'grep -o "^ip_vs[a-z_]* " /proc/modules | sort | tr -d " " | tr "\\n" " "; echo; cat %s 2>/dev/null || echo NOFILE' % FILE


@pytest.fixture(scope='module')
def clean(lab, lab_reset):
    lab_reset()
    return lab


def probe(ssh, node=NODE):
    loaded, rest = ssh(node, PROBE).stdout.split('\n', 1)
    return loaded.split(), rest


def test_check_mode_apply_idempotent(clean, run_module, ssh):
    assert probe(ssh) == ([], 'NOFILE\n')

    checked = run_module(NODE, 'ipvs_modules', {'schedulers': ['rr', 'lc']}, check=True, diff=True)
    assert not checked.failed, checked.output
    assert checked['changed'] is True
    assert checked['loaded'] == ['ip_vs', 'ip_vs_rr', 'ip_vs_lc']
    assert checked['after']['persisted'] == ['ip_vs', 'ip_vs_rr', 'ip_vs_lc']
    assert [d['after_header'] for d in checked['diff']] == ['loaded IPVS modules (after)', FILE + ' (after)']
    assert probe(ssh) == ([], 'NOFILE\n'), 'check mode loaded or wrote something'

    applied = run_module(NODE, 'ipvs_modules', {'schedulers': ['rr', 'lc']})
    assert not applied.failed, applied.output
    assert applied['changed'] is True
    loaded, text = probe(ssh)
    assert {'ip_vs', 'ip_vs_rr', 'ip_vs_lc'} <= set(loaded)
    assert [line for line in text.splitlines() if not line.startswith('#')] == ['ip_vs', 'ip_vs_rr', 'ip_vs_lc']
    assert set(applied['after']['modules_loaded']) >= {'ip_vs', 'ip_vs_rr', 'ip_vs_lc'}

    again = run_module(NODE, 'ipvs_modules', {'schedulers': ['lc', 'rr']})
    assert not again.failed, again.output
    assert again['changed'] is False
    assert again['loaded'] == []


def test_existing_file_is_merged_and_backed_up(clean, run_module, ssh):
    node = 'lab-node-2'
    ssh(node, 'printf "# ACK\\nip_vs\\nip_vs_wrr\\n" > /etc/modules-load.d/ack-ipvs-modules.conf')
    result = run_module(node, 'ipvs_modules', {'schedulers': ['sh'], 'persist_file': '/etc/modules-load.d/ack-ipvs-modules.conf'})
    assert not result.failed, result.output
    (backup,) = result['backups']
    out = ssh(node, 'cat /etc/modules-load.d/ack-ipvs-modules.conf; echo ---; cat %s; echo ---; grep -c "^ip_vs_sh " /proc/modules'
              % backup['path']).stdout
    now, old, count = out.split('---\n')
    assert [line for line in now.splitlines() if not line.startswith('#')] == ['ip_vs', 'ip_vs_wrr', 'ip_vs_sh']
    assert old == '# ACK\nip_vs\nip_vs_wrr\n'
    assert count.strip() == '1'


def test_scheduler_the_kernel_lacks_fails_before_loading_anything(clean, run_module, ssh):
    node = 'lab-node-3'
    # ip_vs_twos exists only from Linux 6.2; the lab runs 6.1. ip_vs and ip_vs_rr would load fine,
    # but nothing may be loaded when one module of the request is missing.
    for check in (True, False):
        result = run_module(node, 'ipvs_modules', {'schedulers': ['rr', 'twos']}, check=check)
        assert result.failed
        assert result['changed'] is False
        assert 'ip_vs_twos' in result['msg'] and 'not found in directory /lib/modules/6.1' in result['msg']
        assert 'nothing was loaded or written' in result['msg']
        assert probe(ssh, node) == ([], 'NOFILE\n')
