"""bindep.txt, the one list of host packages, agrees with the modules and the tests (issue 12).

- Each node module's DOCUMENTATION ``requirements`` names, as ``PROGRAM (Debian package
  PACKAGE)``, every program the module runs (found in its code and in the module_utils
  functions it calls, by reading their syntax trees), and each named package is a
  ``node`` entry of bindep.txt that provides the program; every ``node`` entry is
  required by some module.
- tests/integration's ``require()`` fails (never skips) naming the package.

No host binary is needed: bindep.txt and the sources are read as text.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / 'plugins' / 'modules'
MODULE_UTILS = ROOT / 'plugins' / 'module_utils'
UTILS_PREFIX = 'ansible_collections.netmedic.k8s.plugins.module_utils'
# The container runtime's own CLIs come with the runtime (containerd, CRI-O, Docker),
# never from a package netmedic asks for.
RUNTIME_CLIS = {'ctr', 'crictl', 'docker'}
REQUIREMENT = re.compile(r'^(?P<programs>[\w.-]+(?:, [\w.-]+)*) \(Debian package (?P<package>[a-z0-9][a-z0-9.+-]+)\)')


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, str(path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hostdeps = _load('netmedic_hostdeps_unit', ROOT / 'scripts' / 'hostdeps.py')


# ---- which programs does a module run? ---------------------------------------------------

def _programs_in(node):
    """String programs in ``x.run(['prog', ...])``, ``x.has('prog')``, ``x.which('prog')``, ``for tool in [...]``."""
    found = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Attribute) and sub.args:
            first = sub.args[0]
            if sub.func.attr == 'run' and isinstance(first, ast.List) and first.elts:
                first = first.elts[0]
            if sub.func.attr in ('run', 'has', 'which') and isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
        if isinstance(sub, ast.For) and isinstance(sub.target, ast.Name) and sub.target.id == 'tool':
            found.update(c.value for lst in ast.walk(sub.iter) if isinstance(lst, ast.List)
                         for c in lst.elts if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return found


def _utils_aliases(tree):
    """{local name: module_utils module} for ``from ...module_utils import a, b as c``."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == UTILS_PREFIX:
            for alias in node.names:
                aliases[alias.asname or alias.name] = alias.name
    return aliases


def _calls(node, aliases):
    """(module_utils module, function) pairs used as ``alias.function`` and bare names used.

    Uses, not only calls: a function put in a table (``PROBES = [('ip', _ip_probe)]``)
    runs when the table is walked.
    """
    pairs, names = set(), set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and isinstance(sub.value, ast.Name) and sub.value.id in aliases:
            pairs.add((aliases[sub.value.id], sub.attr))
        elif isinstance(sub, ast.Name):
            names.add(sub.id)
    return pairs, names


_UTILS = {}


def _utils_functions(name):
    """{function: programs it runs, directly or through functions it calls} for module_utils ``name``."""
    if name not in _UTILS:
        _UTILS[name] = {}
        path = MODULE_UTILS / (name + '.py')
        if not path.exists():
            return _UTILS[name]
        tree = ast.parse(path.read_text())
        aliases = _utils_aliases(tree)
        direct, calls = {}, {}
        for top in tree.body:
            if isinstance(top, ast.FunctionDef):
                direct[top.name] = _programs_in(top)
                calls[top.name] = _calls(top, aliases)
            elif isinstance(top, ast.Assign) and len(top.targets) == 1 and isinstance(top.targets[0], ast.Name):
                # a module-level table: using its name uses the functions in it
                direct[top.targets[0].id] = set()
                calls[top.targets[0].id] = _calls(top.value, aliases)
        for fn in direct:
            seen, todo, progs = set(), [fn], set()
            while todo:
                cur = todo.pop()
                if cur in seen or cur not in direct:
                    continue
                seen.add(cur)
                progs |= direct[cur]
                pairs, names = calls[cur]
                todo.extend(names)
                for other, func in pairs:
                    progs |= _utils_functions(other).get(func, set()) if other != name else set()
            _UTILS[name][fn] = progs
    return _UTILS[name]


def programs_of(module_path):
    tree = ast.parse(Path(module_path).read_text())
    aliases = _utils_aliases(tree)
    progs = _programs_in(tree)
    pairs, _names = _calls(tree, aliases)
    for util, func in pairs:
        progs |= _utils_functions(util).get(func, set())
    return progs


def documentation(module_path):
    tree = ast.parse(Path(module_path).read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', None) == 'DOCUMENTATION' for t in node.targets):
            return yaml.safe_load(node.value.value)
    raise AssertionError('%s has no DOCUMENTATION' % module_path)


def required(module_path):
    """{program: package} from the module's ``requirements`` lines of the declared form."""
    result = {}
    for line in documentation(module_path).get('requirements') or []:
        m = REQUIREMENT.match(line)
        if m:
            for program in m.group('programs').split(', '):
                result[program] = m.group('package')
    return result


NODE_MODULES = sorted(p for p in MODULES.glob('*.py') if programs_of(p))


# ---- the tests -------------------------------------------------------------------------

def test_issue12_1_the_scan_finds_what_the_modules_run():
    """Literal: the scan is not vacuous (it sees programs run through module_utils too)."""
    found = {p.stem: sorted(programs_of(p)) for p in NODE_MODULES}
    assert found['cilium_lb_maps'] == ['bpftool']
    assert found['neighbor_flush'] == ['arping', 'ip']
    assert found['ipvs_modules'] == ['modprobe']  # through kmod.probe_exists / kmod.load
    assert found['ipvs_timeouts'] == ['ipvsadm', 'modprobe', 'systemctl']
    assert found['node_network_facts'] == ['conntrack', 'dmesg', 'ip', 'ipvsadm', 'journalctl']  # through node_facts
    assert found['pod_bridge'] == ['bridge', 'ip']


@pytest.mark.parametrize('module_path', NODE_MODULES, ids=[p.stem for p in NODE_MODULES])
def test_issue12_1_requirements_name_every_program_and_its_declared_package(module_path):
    progs = programs_of(module_path) - RUNTIME_CLIS
    req = required(module_path)
    missing = sorted(progs - set(req))
    assert missing == [], '%s runs %s but its requirements do not say "%s (Debian package ...)"' % (
        module_path.stem, missing, missing[0] if missing else '')
    entries = {e.package: e for e in hostdeps.entries()}
    for program, package in sorted(req.items()):
        assert package in entries, '%s requires %s, which bindep.txt does not list' % (module_path.stem, package)
        entry = entries[package]
        assert 'node' in entry.profiles, '%s: bindep.txt lists %s without the node profile' % (module_path.stem, package)
        assert program in entry.provides, 'bindep.txt: %s does not say "# provides: %s"' % (package, program)
        assert program in progs, '%s requires %s but never runs it' % (module_path.stem, program)


def test_issue12_1_every_node_package_is_required_by_a_module():
    required_packages = {pkg for p in NODE_MODULES for pkg in required(p).values()}
    node_packages = {e.package for e in hostdeps.entries() if 'node' in e.profiles}
    assert node_packages - required_packages == set(), 'bindep.txt node entries no module requires'


def test_issue12_1_bindep_entries_are_debian_profiled_and_provide_programs():
    entries = hostdeps.entries()
    assert len(entries) >= 10
    for e in entries:
        assert e.platforms == ['platform:dpkg'], e
        assert e.profiles and set(e.profiles) <= {'node', 'test', 'ci'}, e
        assert e.provides, '%s has no "# provides:" comment' % e.package
    assert hostdeps.package_for('arping').package == 'iputils-arping'
    assert hostdeps.package_for('bpftool').package == 'bpftool'
    assert hostdeps.package_for('/usr/lib/cni/host-local').package == 'containernetworking-plugins'
    assert hostdeps.package_for('no-such-program') is None


def test_issue12_1_test_profile_is_what_make_setup_installs():
    """The programs the integration tests need are in the profile scripts/setup.sh installs."""
    test_packages = {e.package for e in hostdeps.entries() if 'test' in e.profiles}
    assert {'iproute2', 'iputils-arping', 'bpftool', 'util-linux', 'mount', 'shellcheck', 'containernetworking-plugins'} <= test_packages
    setup = (ROOT / 'scripts' / 'setup.sh').read_text()
    assert 'hostdeps missing test' in setup and 'hostdeps check test' in setup


@pytest.fixture
def integration_conftest():
    return _load('netmedic_it_conftest_unit', ROOT / 'tests' / 'integration' / 'conftest.py')


def test_issue12_3_missing_program_fails_naming_its_package(integration_conftest, monkeypatch):
    monkeypatch.setattr(integration_conftest.hostdeps, 'find_program', lambda program, root='/': None)
    with pytest.raises(pytest.fail.Exception, match=r'arping is missing on this machine: install Debian package iputils-arping'):
        integration_conftest.require_program('arping')


def test_issue12_3_undeclared_or_node_only_program_fails(integration_conftest):
    with pytest.raises(pytest.fail.Exception, match=r'nm-undeclared is not declared in bindep.txt'):
        integration_conftest.require_program('nm-undeclared')
    with pytest.raises(pytest.fail.Exception, match=r'ipvsadm comes from Debian package ipvsadm, which bindep.txt does not list in the test profile'):
        integration_conftest.require_program('ipvsadm')


def test_issue12_3_present_program_returns_its_path(integration_conftest, monkeypatch):
    monkeypatch.setattr(integration_conftest.hostdeps, 'find_program', lambda program, root='/': '/usr/sbin/' + program)
    assert integration_conftest.require_program('bpftool') == '/usr/sbin/bpftool'


def test_issue12_6_find_program_resolves_symlinks_inside_the_root(tmp_path):
    """A bare root's absolute symlinks (usrmerge, /usr/sbin/modprobe -> /bin/kmod) resolve inside it."""
    root = tmp_path / 'root'
    (root / 'usr' / 'bin').mkdir(parents=True)
    (root / 'usr' / 'sbin').mkdir()
    (root / 'bin').symlink_to('usr/bin')
    (root / 'sbin').symlink_to('usr/sbin')
    kmod = root / 'usr' / 'bin' / 'kmod'
    kmod.write_text('#!/bin/sh\n')
    kmod.chmod(0o755)
    (root / 'usr' / 'sbin' / 'modprobe').symlink_to('/bin/kmod')
    (root / 'usr' / 'sbin' / 'ipvsadm').symlink_to('/no/such/file')
    (root / 'usr' / 'lib' / 'cni').mkdir(parents=True)
    assert hostdeps.find_program('modprobe', str(root)) == '/usr/sbin/modprobe'
    assert hostdeps.find_program('kmod', str(root)) == '/usr/bin/kmod'
    assert hostdeps.find_program('ipvsadm', str(root)) is None
    assert hostdeps.find_program('/usr/lib/cni/host-local', str(root)) is None


def test_issue12_2_unit_tests_cannot_look_up_a_host_binary():
    """tests/unit/conftest.py: a unit test whose Runner would search this machine fails (no host dependency)."""
    from ansible.module_utils.basic import AnsibleModule

    from ansible_collections.netmedic.k8s.plugins.module_utils.node.runner import Runner

    with pytest.raises(AssertionError, match=r"unit test looked up the host binary 'bpftool'"):
        Runner(AnsibleModule.__new__(AnsibleModule)).which('bpftool')


def test_issue12_1_an_empty_selection_is_an_error_not_nothing_to_do(capsys):
    """No entry for the profiles (or the platform): fail, never "all 0 programs present"."""
    assert hostdeps.main(['check', 'nm-no-such-profile']) == 1
    assert 'no bindep.txt entry applies to profiles nm-no-such-profile' in capsys.readouterr().err


def test_issue12_a_python_module_path_is_provided_by_a_regular_file(tmp_path):
    """bindep.txt's python3-yaml provides /usr/lib/python3/dist-packages/yaml/__init__.py: not executable, still present."""
    root = tmp_path / 'root'
    module = root / 'usr/lib/python3/dist-packages/yaml/__init__.py'
    module.parent.mkdir(parents=True)
    assert hostdeps.find_program('/usr/lib/python3/dist-packages/yaml/__init__.py', str(root)) is None
    module.write_text('')
    assert hostdeps.find_program('/usr/lib/python3/dist-packages/yaml/__init__.py', str(root)) == \
        '/usr/lib/python3/dist-packages/yaml/__init__.py'
    (root / 'usr/lib/cni').mkdir(parents=True)
    (root / 'usr/lib/cni/host-local').write_text('')          # a program must still be executable
    assert hostdeps.find_program('/usr/lib/cni/host-local', str(root)) is None
