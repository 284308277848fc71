# -*- coding: utf-8 -*-
# Copyright: netmedic contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ip-masq-agent ``--random-fully`` (catalog C-4), as pure functions over the DaemonSet dict.

Seeds 000/001 (GKE Dataplane V2 known issue): ip-masq-agent 2.10 and later applies
``--random-fully`` by default, which with NodePort/LoadBalancer Services can collide with the
NodePort range; set ``--random-fully=false`` explicitly in the agent's arguments, effective from
2.11.  The agent's ConfigMap (nonMasqueradeCIDRs, masqLinkLocal, resyncInterval) has no such
setting, so the flag goes into the container's ``args``.
"""

from __future__ import annotations

import copy
import re

from ansible_collections.netmedic.k8s.plugins.module_utils.versions import Version, VersionError

FLAG = '--random-fully'
# Kubernetes' addon manager re-applies objects labelled mode Reconcile from its own manifests (within a minute),
# so an edit of such a DaemonSet would be reverted (issue 10, C-4).
ADDON_MODE_LABEL = 'addonmanager.kubernetes.io/mode'
FIRST_HONOURED = '2.11'
_FLAG_RE = re.compile(r'^--?random-fully(?:=(.*))?$')
_TAG_RE = re.compile(r':(v?\d+(?:\.\d+)+[^@/:]*)(?:@sha256:[0-9a-f]+)?$')


class MasqError(ValueError):
    """Bad input or a DaemonSet this module will not edit."""


def wanted_arg(random_fully):
    return '%s=%s' % (FLAG, 'true' if random_fully else 'false')


def image_version(image):
    """The version in an image tag (``.../ip-masq-agent:v2.10.1`` -> ``v2.10.1``), or None."""
    match = _TAG_RE.search(image or '')
    if not match:
        return None
    try:
        return Version(match.group(1))
    except VersionError:
        return None


def pick_container(ds, name=None):
    containers = (((ds.get('spec') or {}).get('template') or {}).get('spec') or {}).get('containers') or []
    if name:
        found = [c for c in containers if c.get('name') == name]
        if not found:
            raise MasqError('the DaemonSet has no container %r (it has: %s)' % (name, ', '.join(c.get('name', '?') for c in containers)))
        return found[0]
    if len(containers) == 1:
        return containers[0]
    found = [c for c in containers if c.get('name') == 'ip-masq-agent']
    if len(found) == 1:
        return found[0]
    raise MasqError('the DaemonSet has %d containers; name the agent with container' % len(containers))


def plan_args(args, random_fully):
    """``(new_args, change)``: one ``--random-fully=<value>`` replaces every form of the flag, in place of the first."""
    args = list(args or [])
    target = wanted_arg(random_fully)
    positions = [i for i, a in enumerate(args) if isinstance(a, str) and _FLAG_RE.match(a)]
    if len(positions) == 1 and args[positions[0]] == target:
        return args, None
    before = [args[i] for i in positions]
    if positions:
        new = [a for i, a in enumerate(args) if i not in positions[1:]]
        new[positions[0]] = target
    else:
        new = args + [target]
    return new, {'path': 'args', 'before': before or None, 'after': target}


def plan(ds, random_fully=False, container=None, image=None):
    """``(new_ds, changes, facts)`` for the DaemonSet dict ``ds`` (not modified)."""
    new = copy.deepcopy(ds)
    target = pick_container(new, container)
    changes = []
    if FLAG in ' '.join(target.get('command') or []):
        raise MasqError('--random-fully is set in the container command, not its args; edit it by hand')
    if image is not None and target.get('image') != image:
        changes.append({'path': 'image', 'before': target.get('image'), 'after': image})
        target['image'] = image
    new_args, change = plan_args(target.get('args'), random_fully)
    if change:
        target['args'] = new_args
        changes.append(change)
    return (new if changes else ds), changes, container_facts(target)


def container_facts(container):
    version = image_version(container.get('image'))
    return {'container': container.get('name'), 'image': container.get('image'), 'args': list(container.get('args') or []),
            'version': str(version) if version is not None else None}


def reconciled(obj):
    """True when the addon manager reconciles ``obj`` (label ``addonmanager.kubernetes.io/mode: Reconcile``)."""
    labels = (obj.get('metadata') or {}).get('labels') or {}
    return str(labels.get(ADDON_MODE_LABEL, '')).strip().lower() == 'reconcile'


def version_problem(image):
    """A message when the agent in ``image`` will not honour the flag (older than 2.11 or unknown), else None."""
    version = image_version(image)
    if version is None:
        return 'cannot read the ip-masq-agent version from image %r; --random-fully=false is honoured from %s' % (image, FIRST_HONOURED)
    if version < FIRST_HONOURED:
        return 'ip-masq-agent %s is older than %s, which is the first to honour --random-fully=false' % (version, FIRST_HONOURED)
    return None
