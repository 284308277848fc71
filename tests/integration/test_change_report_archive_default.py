"""The change report's archive copy is opt-in (issue 11): a run without archive_dir writes no copy elsewhere.

Reproduced: ``archive_dir`` was ``type: path`` with ``default: ''``, which Ansible resolves to the
current directory, so every run from the checkout also wrote change-report-*.md/.json/.html into
whatever directory ansible-playbook was started in (dozens of them piled up in the repository root).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_issue11_no_archive_copy_in_the_working_directory_by_default(tmp_path):
    cwd = tmp_path / 'cwd'
    cwd.mkdir()
    report_dir = tmp_path / 'reports'
    play = tmp_path / 'play.yml'
    play.write_text('- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.debug: {msg: hi}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(('NETMEDIC_', 'ANSIBLE_'))}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / 'collections'), ANSIBLE_CALLBACKS_ENABLED='netmedic.k8s.change_report',
               NETMEDIC_REPORT_DIR=str(report_dir), ANSIBLE_LOCAL_TEMP=str(tmp_path / 'tmp'))
    proc = subprocess.run([str(Path(sys.executable).parent / 'ansible-playbook'), '-i', 'localhost,', '-c', 'local', str(play)],
                          cwd=str(cwd), env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    written = sorted(p.name for p in report_dir.glob('change-report-*') if not p.is_symlink())
    assert len(written) == 3, written
    assert sorted(os.listdir(str(cwd))) == [], 'the run wrote into its working directory'
