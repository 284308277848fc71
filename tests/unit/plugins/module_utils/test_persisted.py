"""The persisted kernel setting transaction and its file rules (issue #10 hole 8, issue #13).

File rules are pure functions; the transaction runs against a temporary root (real file
I/O through ``settings.Files``) with kernel steps that record what they did and can be
made to fail.
"""

from __future__ import annotations

import os

import pytest

from ansible_collections.netmedic.k8s.plugins.module_utils.node import settings, sysctl
from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import CommandError

KEY = 'net.netfilter.nf_conntrack_max'
SYSCTL_CONF = ('# /etc/sysctl.conf - Configuration file for setting system variables\n'
               'net.ipv4.ip_forward=1\n'
               '  net.bridge.bridge-nf-call-iptables = 1\n'
               '; net.netfilter.nf_conntrack_max = 1\n'
               '-net/netfilter/nf_conntrack_max =\t70000\r\n'
               'fs.inotify.max_user_watches = 524288\n'
               'net.netfilter.nf_conntrack_max=80000\n')


class Exit(Exception):
    pass


class FakeAnsible(object):
    """What Files and Result need from AnsibleModule, with their real effects on disk."""

    check_mode = False
    _diff = False

    def __init__(self, fail_move_for=()):
        self.fail_move_for = fail_move_for
        self.failed = None

    def backup_local(self, path):
        dest = path + '.backup~'
        with open(path) as src, open(dest, 'w') as dst:
            dst.write(src.read())
        return dest

    def atomic_move(self, src, dest):
        if os.path.basename(dest) in self.fail_move_for:
            raise OSError(28, 'No space left on device')
        os.rename(src, dest)

    def warn(self, msg):
        pass

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise Exit(kwargs['msg'])

    def exit_json(self, **kwargs):
        raise AssertionError('not expected')


@pytest.fixture
def env(tmp_path):
    from ansible_collections.netmedic.k8s.plugins.module_utils.result import Result
    module = FakeAnsible()
    root = tmp_path / 'root'
    (root / 'etc' / 'sysctl.d').mkdir(parents=True)
    (root / 'etc' / 'modules-load.d').mkdir(parents=True)
    kernel = {KEY: '65536'}

    def step(value, fail_apply=False, fail_undo=False):
        before = kernel[KEY]

        def apply():
            if fail_apply:
                raise OSError(1, 'Operation not permitted')
            kernel[KEY] = value

        def undo():
            if fail_undo:
                raise OSError(5, 'Input/output error')
            kernel[KEY] = before
        return settings.KernelStep(KEY, before, value, apply, undo)

    class Env(object):
        pass
    e = Env()
    e.module, e.root, e.kernel, e.step = module, root, kernel, step
    e.result = Result(module, ['N-2'])
    e.files = settings.Files(module, root=str(root))
    return e


# --- file rules -----------------------------------------------------------------------

def test_issue10_h8_foreign_sysctl_file_only_owned_key_edited_byte_for_byte():
    new, mode = settings.plan_sysctl_file(SYSCTL_CONF, [(KEY, 200000)], 'conntrack_limit', 'N-2')
    assert mode == settings.EDIT
    assert new == SYSCTL_CONF.replace('=\t70000\r\n', '=\t200000\r\n').replace('max=80000', 'max=200000')
    # every other key is still set, and the file now sets ours
    values = sysctl.parse_conf(new)
    assert values == {'net.ipv4.ip_forward': '1', 'net.bridge.bridge-nf-call-iptables': '1',
                      KEY: '200000', 'fs.inotify.max_user_watches': '524288'}
    # idempotent: planning again changes nothing
    assert settings.plan_sysctl_file(new, [(KEY, 200000)], 'conntrack_limit', 'N-2') == (new, settings.EDIT)


def test_issue10_h8_foreign_sysctl_file_without_the_key_gets_it_appended():
    new, mode = settings.plan_sysctl_file('net.ipv4.ip_forward = 1', [(KEY, 5)], 'conntrack_limit', 'N-2')
    assert (new, mode) == ('net.ipv4.ip_forward = 1\n%s = 5\n' % KEY, settings.EDIT)


def test_issue10_h8_another_netmedic_modules_file_is_not_owned():
    ports_file = sysctl.render_dropin([('net.ipv4.ip_local_reserved_ports', '30000-32767')], 'port_range', 'N-3')
    new, mode = settings.plan_sysctl_file(ports_file, [(KEY, 5)], 'conntrack_limit', 'N-2')
    assert mode == settings.EDIT
    assert new == ports_file + '%s = 5\n' % KEY


def test_owned_or_missing_sysctl_file_is_generated_whole():
    own = sysctl.render_dropin([(KEY, 1)], 'conntrack_limit', 'N-2') + 'hand.edit = 1\n'
    new, mode = settings.plan_sysctl_file(own, [(KEY, 7)], 'conntrack_limit', 'N-2')
    assert (new, mode) == (sysctl.render_dropin([(KEY, 7)], 'conntrack_limit', 'N-2'), settings.OWNED)
    assert settings.plan_sysctl_file(None, [(KEY, 7)], 'conntrack_limit', 'N-2') == (new, settings.CREATE)


def test_issue10_h8_foreign_modules_load_file_gets_only_missing_names_appended():
    ack = '# ACK\nip_vs\n; comment\nip-vs-rr\n'
    new, mode = settings.plan_modules_load_file(ack, ['ip_vs', 'ip_vs_rr', 'ip_vs_lc'], 'ipvs_modules', 'N-4')
    assert (new, mode) == (ack + 'ip_vs_lc\n', settings.EDIT)
    assert settings.plan_modules_load_file(new, ['ip_vs_lc'], 'ipvs_modules', 'N-4') == (new, settings.EDIT)
    own, mode = settings.plan_modules_load_file(None, ['nf_conntrack'], 'conntrack_limit', 'N-2')
    assert mode == settings.CREATE and own.startswith('# Managed by netmedic.k8s (conntrack_limit); catalog N-2.\n')
    assert own.endswith('\nnf_conntrack\n')


def test_issue10_h8_foreign_unit_file_is_refused():
    with pytest.raises(settings.PersistError, match=r'was not written by netmedic.k8s \(ipvs_timeouts\).*nothing was changed'):
        settings.plan_unit_file('[Service]\nExecStart=/bin/true\n', 'new', 'ipvs_timeouts', '/etc/systemd/system/x.service')
    own = '# Managed by netmedic.k8s (ipvs_timeouts); catalog N-5.\n[Service]\n'
    assert settings.plan_unit_file(own, 'new', 'ipvs_timeouts', 'x') == ('new', settings.OWNED)


@pytest.mark.parametrize('path, words', [
    ('/etc/sysctl.d/netmedic.txt', 'must end in .conf'),
    ('/etc/sysctl.d/.conf', 'must end in .conf'),
    ('/etc/sysctl.d/.hidden.conf', 'not start with a dot'),
    ('sysctl.d/x.conf', 'absolute path'),
    ('', 'absolute path'),
])
def test_issue13_one_name_check_for_every_boot_file(path, words):
    with pytest.raises(settings.PersistError, match=words.replace('.', r'\.')):
        settings.check_name(path, '.conf', 'systemd-sysctl')
    settings.check_name('/etc/sysctl.d/90-netmedic-conntrack.conf', '.conf', 'systemd-sysctl')


# --- the transaction --------------------------------------------------------------------

def test_issue13_commit_sets_kernel_then_writes_files_with_backups(env):
    dropin = env.root / 'etc/sysctl.d/90-x.conf'
    dropin.write_text('old\n')
    steps = [env.step('200000')]
    files = [settings.FileStep('/etc/sysctl.d/90-x.conf', 'old\n', 'new\n'),
             settings.FileStep('/etc/modules-load.d/netmedic-nf_conntrack.conf', None, 'nf_conntrack\n')]
    assert settings.commit(env.result, steps, files, env.files) is None
    assert env.kernel[KEY] == '200000'
    assert dropin.read_text() == 'new\n'
    assert (env.root / 'etc/modules-load.d/netmedic-nf_conntrack.conf').read_text() == 'nf_conntrack\n'
    assert env.result.backups == [{'path': str(dropin) + '.backup~', 'of': '/etc/sysctl.d/90-x.conf'}]
    assert (env.root / 'etc/sysctl.d/90-x.conf.backup~').read_text() == 'old\n'


def test_issue13_file_write_fails_after_kernel_set_kernel_value_restored(env):
    env.module.fail_move_for = ('90-x.conf',)
    with pytest.raises(Exit, match=r'could not write /etc/sysctl.d/90-x.conf: .*No space left'):
        settings.commit(env.result, [env.step('200000')], [settings.FileStep('/etc/sysctl.d/90-x.conf', None, 'new\n')],
                        env.files)
    assert env.kernel[KEY] == '65536'  # read back: restored
    assert os.listdir(env.root / 'etc/sysctl.d') == []
    failed = env.module.failed
    assert 'kernel value restored: %s = 65536' % KEY in failed['msg']
    assert 'nothing was left changed' in failed['msg']
    assert failed['changed'] is False
    assert failed['rolled_back'] == ['kernel value restored: %s = 65536' % KEY]


def test_issue13_second_file_fails_first_file_put_back_and_kernel_restored(env):
    dropin = env.root / 'etc/sysctl.d/90-x.conf'
    dropin.write_text('old\n')
    env.module.fail_move_for = ('netmedic-nf_conntrack.conf',)
    files = [settings.FileStep('/etc/sysctl.d/90-x.conf', 'old\n', 'new\n'),
             settings.FileStep('/etc/modules-load.d/netmedic-nf_conntrack.conf', None, 'nf_conntrack\n')]
    with pytest.raises(Exit, match=r'could not write /etc/modules-load.d/netmedic-nf_conntrack.conf'):
        settings.commit(env.result, [env.step('200000')], files, env.files)
    assert dropin.read_text() == 'old\n'
    assert env.kernel[KEY] == '65536'
    assert os.listdir(env.root / 'etc/modules-load.d') == []
    msg = env.module.failed['msg']
    assert '/etc/sysctl.d/90-x.conf put back' in msg and 'backups: %s.backup~' % dropin in msg
    assert env.module.failed['changed'] is False


def test_issue13_restore_failure_is_reported_as_still_changed(env):
    env.module.fail_move_for = ('90-x.conf',)
    with pytest.raises(Exit, match=r'still changed: %s is still 200000 \(restoring 65536 failed' % KEY):
        settings.commit(env.result, [env.step('200000', fail_undo=True)],
                        [settings.FileStep('/etc/sysctl.d/90-x.conf', None, 'new\n')], env.files)
    assert env.kernel[KEY] == '200000'
    assert env.module.failed['changed'] is True


def test_issue13_kernel_write_fails_nothing_written(env):
    with pytest.raises(Exit, match='could not set %s = 200000: .*not permitted; nothing was left changed' % KEY):
        settings.commit(env.result, [env.step('200000', fail_apply=True)],
                        [settings.FileStep('/etc/sysctl.d/90-x.conf', None, 'new\n')], env.files)
    assert env.kernel[KEY] == '65536'
    assert os.listdir(env.root / 'etc/sysctl.d') == []


def test_issue13_irreversible_step_and_failed_followup_reported(env):
    loaded = []
    step = settings.KernelStep('ip_vs_lc', 'not loaded', 'loaded', lambda: loaded.append('ip_vs_lc'), None,
                               doing='modprobe ip_vs_lc')

    def reload():
        raise CommandError(['systemctl', 'daemon-reload'], 1, '', 'Failed to connect to bus')
    unit = env.root / 'etc/systemd/system/x.service'
    with pytest.raises(Exit, match=r'systemctl daemon-reload failed: .*Failed to connect to bus'):
        settings.commit(env.result, [step], [settings.FileStep('/etc/systemd/system/x.service', None, 'unit\n')],
                        env.files, followups=[('systemctl daemon-reload', reload)])
    assert not unit.exists()  # the new unit was removed again
    assert 'still changed: ip_vs_lc = loaded (cannot be undone)' in env.module.failed['msg']
    assert env.module.failed['changed'] is True
    assert loaded == ['ip_vs_lc']


def test_issue10_h8_symlinked_file_is_written_through_the_link(env):
    """Debian's /etc/sysctl.d/99-sysctl.conf -> ../sysctl.conf stays a link; sysctl.conf is edited."""
    conf = env.root / 'etc/sysctl.conf'
    conf.write_bytes(SYSCTL_CONF.encode())
    os.symlink('../sysctl.conf', str(env.root / 'etc/sysctl.d/99-sysctl.conf'))
    text = settings.read_file(str(env.root / 'etc/sysctl.d/99-sysctl.conf'))
    assert text == SYSCTL_CONF  # CRLF kept as it is
    new, _mode = settings.plan_sysctl_file(text, [(KEY, 5)], 'conntrack_limit', 'N-2')
    settings.commit(env.result, [], [settings.FileStep('/etc/sysctl.d/99-sysctl.conf', SYSCTL_CONF, new)], env.files)
    assert os.path.islink(str(env.root / 'etc/sysctl.d/99-sysctl.conf'))
    assert conf.read_bytes() == new.encode()
    assert env.result.backups[0]['path'] == str(conf) + '.backup~'


def test_issue13_every_generated_file_is_recognised_as_owned():
    """One header rule: what the renderers write is what owner_of recognises (and nobody else's)."""
    from ansible_collections.netmedic.k8s.plugins.module_utils import ipvs, kmod
    generated = {
        'conntrack_limit': sysctl.render_dropin([(KEY, 1)], 'conntrack_limit', 'N-2'),
        'ipvs_modules': kmod.render_modules_load(['ip_vs'], 'ipvs_modules', 'N-4'),
        'ipvs_timeouts': ipvs.render_timeout_unit({'tcp': 1, 'tcpfin': 2, 'udp': 3}, '/usr/sbin/ipvsadm', '/usr/sbin/modprobe'),
    }
    for owner, text in generated.items():
        assert settings.owner_of(text, owner)
        assert not settings.owner_of(text, 'port_range')


def test_issue10_h8_persist_file_itself_is_not_its_own_overrider(tmp_path):
    """persist_file=/etc/sysctl.conf (read last) holding the old value is not "a later file that undoes the fix"."""
    etc = tmp_path / 'etc' / 'sysctl.d'
    etc.mkdir(parents=True)
    conf = tmp_path / 'etc' / 'sysctl.conf'
    conf.write_text('%s = 70000\n' % KEY)
    (etc / '10-early.conf').write_text('%s = 1\n' % KEY)
    assert sysctl.overriders(KEY, str(conf), 200000, [str(etc)], str(conf)) == []
    os.symlink('../sysctl.conf', str(etc / '99-sysctl.conf'))  # Debian
    for own in (conf, etc / '99-sysctl.conf'):
        assert sysctl.overriders(KEY, str(own), 200000, [str(etc)], str(conf)) == []
    # a drop-in that sorts before 99-sysctl.conf is still overridden by it
    assert sysctl.overriders(KEY, str(etc / '90-netmedic-conntrack.conf'), 200000, [str(etc)], str(conf)) == [
        {'path': str(etc / '99-sysctl.conf'), 'value': '70000'}]


def test_a_file_outside_the_boot_directories_is_warned_about():
    from ansible_collections.netmedic.k8s.plugins.module_utils import kmod
    dirs, files = sysctl.SYSCTL_DIRS, [sysctl.SYSCTL_CONF]
    assert settings.boot_warning('/etc/sysctl.d/90-netmedic-conntrack.conf', dirs, files, 'systemd-sysctl') is None
    assert settings.boot_warning('/etc/sysctl.conf', dirs, files, 'systemd-sysctl') is None
    assert settings.boot_warning('/etc/modules', kmod.MODULES_LOAD_DIRS, [kmod.MODULES_FILE], 'systemd-modules-load') is None
    warning = settings.boot_warning('/tmp/netmedic.conf', dirs, files, 'systemd-sysctl')
    assert warning.startswith('/tmp/netmedic.conf is not in a directory systemd-sysctl reads at boot (/etc/sysctl.d, ')
    assert 'does not apply after a reboot' in warning
