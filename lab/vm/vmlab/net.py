"""Host network: the bridge nmlab0 and one tap per node."""

import contextlib
import os
import re

from .common import run
from .config import BRIDGE, HOST_L2_IP, TAP_PREFIX


def sysfs_write(path, value):
    with contextlib.suppress(OSError), open(path, 'w') as fh:
        fh.write(value)


def net_up(indexes):
    if not os.path.exists(f'/sys/class/net/{BRIDGE}'):
        run(['ip', 'link', 'add', BRIDGE, 'type', 'bridge', 'stp_state', '0'])
    # keep the host quiet on the segment: the guests' neighbour tables show only guests
    sysfs_write(f'/proc/sys/net/ipv6/conf/{BRIDGE}/disable_ipv6', '1')
    if os.environ.get('NETMEDIC_LAB_HOST_IP') == '1':
        run(['ip', 'addr', 'replace', HOST_L2_IP, 'dev', BRIDGE])
    run(['ip', 'link', 'set', BRIDGE, 'up'])
    for i in indexes:
        tap = f'{TAP_PREFIX}{i}'
        if not os.path.exists(f'/sys/class/net/{tap}'):
            run(['ip', 'tuntap', 'add', 'dev', tap, 'mode', 'tap'])
        sysfs_write(f'/proc/sys/net/ipv6/conf/{tap}/disable_ipv6', '1')
        run(['ip', 'link', 'set', tap, 'master', BRIDGE])
        run(['ip', 'link', 'set', tap, 'up'])


def net_down():
    removed = []
    for name in sorted(os.listdir('/sys/class/net')):
        if re.fullmatch(TAP_PREFIX + r'\d+', name):
            run(['ip', 'link', 'del', name], check=False)
            removed.append(name)
    if os.path.exists(f'/sys/class/net/{BRIDGE}'):
        run(['ip', 'link', 'del', BRIDGE], check=False)
        removed.append(BRIDGE)
    return removed
