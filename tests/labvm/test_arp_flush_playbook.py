"""playbooks/arp_flush.yml (catalog W-6 / N-6) on the VM lab: real ARP on a shared L2 segment.

lab-node-1 gets a PERMANENT neighbor entry for lab-node-2's address with a wrong MAC (what a VIP
that moved to another node leaves behind). The playbook learns the real MAC with arping and
removes only that entry; the second run changes nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / 'playbooks' / 'arp_flush.yml'
WRONG_MAC = '02:00:00:de:ad:01'


def _play(lab, tmp_path, vips, check=False):
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK='ansible.posix.json', ANSIBLE_LOAD_CALLBACK_PLUGINS='1',
               ANSIBLE_NOCOLOR='1', ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'),
               ANSIBLE_CONFIG=str(ROOT / 'ansible.cfg'), ANSIBLE_LOCAL_TEMP=str(tmp_path / 'ansible-tmp'))
    cmd = [str(Path(sys.executable).with_name('ansible-playbook')), '-i', lab['inventory'], '-l', lab['nodes'][0],
           # The VM lab has no Kubernetes API: the Lease and the health gate are switched off explicitly (issue 9 spine;
           # tests/cluster/test_w6_spine.py covers them on the API double and the real kube-apiserver). The change window still applies.
           '-e', json.dumps({'netmedic_vips': vips, 'netmedic_lock': False, 'netmedic_health_gate': False}),
           '-e', 'netmedic_change_id=CHG-LABVM-TEST', str(PLAYBOOK)]   # issue 11: apply runs carry a ticket
    if check:
        cmd += ['--check', '--diff']
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    data = json.loads(proc.stdout)
    # Every play: the first one checks the variables (playbooks/specs/arp_flush.yml), the next one flushes.
    tasks = {t['task']['name']: t['hosts'][lab['nodes'][0]] for p in data['plays'] for t in p['tasks']
             if lab['nodes'][0] in t['hosts']}
    return proc.returncode, tasks, proc.stdout + proc.stderr


def _neigh(ssh, node, ip, dev):
    out = ssh(node, 'ip -j neigh show to %s dev %s' % (ip, dev)).stdout
    return json.loads(out or '[]')


def test_arp_flush_removes_only_the_stale_vip_entry(lab, ssh, lab_reset, tmp_path):
    first, second = lab['nodes'][0], lab['nodes'][1]
    hv1, hv2 = lab['hostvars'][first], lab['hostvars'][second]
    dev, vip, real_mac = hv1['lab_l2_dev'], hv2['lab_l2_ip'], hv2['lab_l2_mac']
    third_ip = lab['hostvars'][lab['nodes'][2]]['lab_l2_ip']
    try:
        # The stale entry, plus a good dynamic entry for another node that must survive.
        ssh(first, 'ip neigh replace %s lladdr %s dev %s nud permanent && ping -c1 -W2 %s >/dev/null'
            % (vip, WRONG_MAC, dev, third_ip))
        assert _neigh(ssh, first, vip, dev)[0]['lladdr'] == WRONG_MAC
        third_before = _neigh(ssh, first, third_ip, dev)
        assert third_before and third_before[0].get('lladdr')
        vips = [{'address': vip, 'device': dev}]

        rc, tasks, output = _play(lab, tmp_path, vips, check=True)
        assert rc == 0, output
        assert tasks['Remove entries whose MAC differs from the VIP\'s real MAC']['changed'] is True
        assert _neigh(ssh, first, vip, dev)[0]['lladdr'] == WRONG_MAC                    # check mode: untouched

        rc, tasks, output = _play(lab, tmp_path, vips)
        assert rc == 0, output
        result = tasks['Remove entries whose MAC differs from the VIP\'s real MAC']['results'][0]
        assert result['changed'] is True and result['conflict'] is False
        left = _neigh(ssh, first, vip, dev)
        assert all(e.get('lladdr') != WRONG_MAC for e in left), left                         # stale entry gone
        assert all(e.get('lladdr') in (None, real_mac) for e in left), left
        assert _neigh(ssh, first, third_ip, dev)                                              # the other entry kept

        rc, tasks, output = _play(lab, tmp_path, vips)
        assert rc == 0, output
        assert tasks['Remove entries whose MAC differs from the VIP\'s real MAC']['changed'] is False, output

        rc, tasks, output = _play(lab, tmp_path, [{'device': dev}])
        # bad input (no address), nothing run: playbooks/specs/arp_flush.yml
        assert rc != 0 and tasks['Check the variables (nothing is read or changed before this passes)']['failed'] is True
    finally:
        lab_reset()
