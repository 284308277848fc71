# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Edits of Flannel's CNI config (``kube-flannel-cfg``, key ``cni-conf.json``), catalog C-5 and N-7 step 2.

The key holds either one plugin object (``"type": "flannel"`` at the top) or a conflist
(``"plugins": [flannel, portmap]``).  Edits keep the key order and the indentation width of
the document; a document that needs no change is returned byte for byte.  Input that is not
strict JSON (the published ACK example carries ``#`` comments and a trailing comma) is refused
with its position, so nothing half-understood is ever written back.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections import OrderedDict

CONFIGMAP = 'kube-flannel-cfg'
KEY = 'cni-conf.json'
POD_LABEL = ('app', ('flannel',))     # seed 002: kubectl delete pod -l app=flannel
DAEMONSET = 'kube-flannel-ds'

_CNI_VERSION_RE = re.compile(r'^\d+\.\d+\.\d+$')


class FlannelError(ValueError):
    """Bad input, or a cni-conf.json that cannot be edited safely."""


def load(text):
    if not isinstance(text, str) or not text.strip():
        raise FlannelError('%s is empty' % KEY)
    try:
        conf = json.loads(text, object_pairs_hook=OrderedDict)
    except ValueError as e:
        raise FlannelError('%s is not valid JSON (%s); fix it by hand first, nothing was changed' % (KEY, e))
    if not isinstance(conf, dict):
        raise FlannelError('%s must be a JSON object, got %s' % (KEY, type(conf).__name__))
    return conf


def indent_of(text):
    """The indentation width of the document's first indented line (2 when it has none)."""
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(' ')
        if stripped and len(stripped) != len(line):
            return len(line) - len(stripped)
    return 2


def dump(conf, indent=2):
    return json.dumps(conf, indent=indent, ensure_ascii=False, separators=(',', ': ')) + '\n'


def flannel_plugin(conf):
    """``(path, plugin)`` of the flannel plugin: ``plugins[i]`` of a conflist or the document itself."""
    if 'plugins' in conf:
        plugins = conf['plugins']
        if not isinstance(plugins, list):
            raise FlannelError('"plugins" must be a list')
        found = [(i, p) for i, p in enumerate(plugins) if isinstance(p, dict) and p.get('type') == 'flannel']
        if len(found) != 1:
            raise FlannelError('expected exactly one plugin of type "flannel" in "plugins", found %d' % len(found))
        return 'plugins[%d].' % found[0][0], found[0][1]
    if conf.get('type') != 'flannel':
        raise FlannelError('neither a conflist with "plugins" nor a plugin of type "flannel" (type: %r)' % (conf.get('type'),))
    return '', conf


def _insert_after(mapping, after_key, key, value):
    """Put ``key`` right after ``after_key`` (at the front when that is missing), in place."""
    items = list(mapping.items())
    position = 0
    for i, (k, _v) in enumerate(items):
        if k == after_key:
            position = i + 1
    items.insert(position, (key, value))
    mapping.clear()
    mapping.update(items)


def _abs_path(value, what):
    if not isinstance(value, str) or not value.startswith('/') or posixpath.normpath(value) != value.rstrip('/') or '..' in value.split('/'):
        raise FlannelError('%s must be a normalised absolute path such as /var/run/cni/networks, got %r' % (what, value))
    return value.rstrip('/') or '/'


def validate(settings):
    """Typed settings; unknown keys and bad values raise FlannelError."""
    out = {}
    for key, value in settings.items():
        if value is None:
            continue
        if key == 'cni_version':
            if not isinstance(value, str) or not _CNI_VERSION_RE.match(value):
                raise FlannelError('cni_version must look like 0.3.1, got %r' % (value,))
        elif key == 'hairpin_mode':
            if not isinstance(value, bool):
                raise FlannelError('hairpin_mode must be true or false, got %r' % (value,))
        elif key in ('ipam_data_dir', 'flannel_data_dir'):
            out[key] = _abs_path(value, key)
            continue
        else:
            raise FlannelError('unsupported setting %r' % key)
        out[key] = value
    if not out:
        raise FlannelError('nothing to set: give at least one of cni_version, hairpin_mode, ipam_data_dir, flannel_data_dir')
    return out


def summary(conf_or_text):
    conf = load(conf_or_text) if isinstance(conf_or_text, str) else conf_or_text
    _path, plugin = flannel_plugin(conf)
    ipam = plugin.get('ipam') if isinstance(plugin.get('ipam'), dict) else {}
    delegate = plugin.get('delegate') if isinstance(plugin.get('delegate'), dict) else {}
    return {
        'form': 'conflist' if 'plugins' in conf else 'plugin',
        'cniVersion': conf.get('cniVersion'),
        'hairpinMode': delegate.get('hairpinMode'),
        'dataDir': plugin.get('dataDir'),
        'ipam.type': ipam.get('type'),
        'ipam.dataDir': ipam.get('dataDir'),
    }


def plan(text, settings):
    """``(new_text, changes)`` for ``settings`` (see ``validate``); ``new_text is text`` when nothing changes."""
    wanted = validate(settings)
    conf = load(text)
    prefix, plugin = flannel_plugin(conf)
    changes = []

    def change(path, before, after):
        changes.append({'path': path, 'before': before, 'after': after})

    if 'cni_version' in wanted and conf.get('cniVersion') != wanted['cni_version']:
        change('cniVersion', conf.get('cniVersion'), wanted['cni_version'])
        if 'cniVersion' in conf:
            conf['cniVersion'] = wanted['cni_version']
        else:
            _insert_after(conf, 'name', 'cniVersion', wanted['cni_version'])
    if 'hairpin_mode' in wanted:
        delegate = plugin.get('delegate')
        if delegate is None:
            delegate = plugin['delegate'] = OrderedDict()
        if not isinstance(delegate, dict):
            raise FlannelError('%sdelegate must be an object' % prefix)
        if delegate.get('hairpinMode') is not wanted['hairpin_mode']:
            change(prefix + 'delegate.hairpinMode', delegate.get('hairpinMode'), wanted['hairpin_mode'])
            delegate['hairpinMode'] = wanted['hairpin_mode']
    if 'flannel_data_dir' in wanted and plugin.get('dataDir') != wanted['flannel_data_dir']:
        change(prefix + 'dataDir', plugin.get('dataDir'), wanted['flannel_data_dir'])
        plugin['dataDir'] = wanted['flannel_data_dir']
    if 'ipam_data_dir' in wanted:
        ipam = plugin.get('ipam')
        if ipam is None:
            change(prefix + 'ipam', None, {'type': 'host-local', 'dataDir': wanted['ipam_data_dir']})
            plugin['ipam'] = OrderedDict([('type', 'host-local'), ('dataDir', wanted['ipam_data_dir'])])
        elif not isinstance(ipam, dict) or ipam.get('type') != 'host-local':
            raise FlannelError('%sipam is %r, not host-local; refusing to change its dataDir'
                               % (prefix, ipam.get('type') if isinstance(ipam, dict) else ipam))
        elif ipam.get('dataDir') != wanted['ipam_data_dir']:
            change(prefix + 'ipam.dataDir', ipam.get('dataDir'), wanted['ipam_data_dir'])
            ipam['dataDir'] = wanted['ipam_data_dir']
    if not changes:
        return text, []
    return dump(conf, indent_of(text)), changes
