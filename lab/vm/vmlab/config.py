"""The VM lab's settings: paths (environment overrides), names and sizes every part shares."""

import os

# lab/vm: this package's parent, where the recipe lives beside labctl.
HERE = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
RECIPE_DIR = os.path.join(HERE, 'recipe')
CACHE = os.environ.get('NETMEDIC_LAB_CACHE') or '/var/cache/netmedic-lab'
STATE = os.environ.get('NETMEDIC_LAB_STATE') or '/run/netmedic-lab'
LAB_LOCK = os.environ.get('NETMEDIC_LAB_LOCK') or '/tmp/netmedic-lab.lock'

SUITE = 'bookworm'
BRIDGE = 'nmlab0'
TAP_PREFIX = 'nmlabt'
L2_PREFIX = '10.77.0.'
L2_DEV = 'eth1'
HOST_L2_IP = '10.77.0.1/24'
CONTAINER_IMAGE = 'localhost/netmedic/busybox:lab'
DISK_SIZE = '6G'
MEM_MB = int(os.environ.get('NETMEDIC_LAB_MEM') or 512)
SSH_PORT_BASE = int(os.environ.get('NETMEDIC_LAB_SSH_PORT_BASE') or 22210)
QEMU = 'qemu-system-x86_64'
PROC_PREFIX = 'nmlab-node-'  # qemu process name (comm) of every lab VM
# Host apt runs one at a time (scripts/apt-locked: the one host apt lock, taken by make setup and fresh-check too).
APT_LOCK = [os.path.join(HERE, '..', '..', 'scripts', 'apt-locked')]
# Bump when the build steps change in a way the hashed sources do not show.
BUILD_FORMAT = 2


# Host packages (Debian 12) `labctl deps` makes sure of.
HOST_PACKAGES = [
    'qemu-system-x86',
    'qemu-utils',
    'mmdebstrap',
    'e2fsprogs',
    'cpio',
    'gzip',
    'zstd',
    'iproute2',
    'openssh-client',
    'procps',
    'dpkg',
    'apt',
]

# Modules the initramfs loads to reach the root disk (dependencies are added
# from modules.dep; crc32c is only a soft dependency of ext4, hence listed),
# and virtio_net: eth0/eth1 then exist before systemd starts. Left to udev, on a
# busy host it came after the 90 s device wait of lab-node-setup.service, which
# then failed on the missing eth0 and the node never answered SSH (2026-12-02).
INITRAMFS_MODULES = ['virtio_pci', 'virtio_blk', 'virtio_net', 'crc32c_generic', 'ext4']
