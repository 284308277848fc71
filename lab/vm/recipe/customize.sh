#!/bin/sh
# Host side: turn the mmdebstrap rootfs directory into a lab node image.
# Called by `labctl build` as: customize.sh ROOTFS
# Environment (set by labctl):
#   KVER          kernel release, e.g. 6.1.0-56-amd64
#   KERNEL_DIR    the unpacked linux-image-$KVER .deb (dpkg-deb -x)
#   RECIPE_DIR    this directory
#   PUBKEY        the lab SSH public key (root login by key)
#   IMAGE_TAR     the local busybox container image (docker-archive)
#   IMAGE_NAME    its name inside containerd, e.g. localhost/netmedic/busybox:lab
#   ANSIBLE_MODULE_UTILS  the controller's ansible/module_utils directory (optional)
# Every change to this file changes the recipe hash (rebuild).
set -eu

R=$1
[ -d "$R/etc" ] || { echo "customize.sh: $R is not a rootfs" >&2; exit 1; }

# --- kernel modules (so `modprobe ip_vs_lc`, nf_conntrack, overlay... work)
mkdir -p "$R/usr/lib/modules" "$R/boot"
cp -a "$KERNEL_DIR/lib/modules/$KVER" "$R/usr/lib/modules/"
# Drop hardware a virtio guest never has (~220 MB); all of net/ (netfilter,
# IPVS, bridge, vxlan...), fs/, crypto/ and the virtual NIC drivers stay.
M="$R/usr/lib/modules/$KVER/kernel"
rm -rf "$M/sound" "$M/net/bluetooth" "$M/net/mac80211" "$M/net/wireless" \
    "$M/drivers/gpu" "$M/drivers/media" "$M/drivers/infiniband" "$M/drivers/iio" \
    "$M/drivers/staging" "$M/drivers/usb" "$M/drivers/bluetooth" "$M/drivers/hwmon" \
    "$M/drivers/isdn" "$M/drivers/mmc" "$M/drivers/nfc" "$M/drivers/mtd" \
    "$M/drivers/thunderbolt" "$M/drivers/video" "$M/drivers/net/wireless" \
    "$M/drivers/net/ethernet" "$M/drivers/net/usb" "$M/drivers/net/wwan" \
    "$M/drivers/net/hamradio" "$M/drivers/net/can" "$M/drivers/net/ieee802154"
cp "$KERNEL_DIR/boot/config-$KVER" "$R/boot/"
chroot "$R" depmod -a "$KVER"

# --- identity and addresses from the kernel command line, at every boot
install -m 0755 "$RECIPE_DIR/lab-node-setup" "$R/usr/local/sbin/lab-node-setup"
cat >"$R/etc/systemd/system/lab-node-setup.service" <<'EOF'
[Unit]
Description=netmedic lab: hostname and addresses from the kernel command line
Wants=sys-subsystem-net-devices-eth0.device sys-subsystem-net-devices-eth1.device
After=sys-subsystem-net-devices-eth0.device sys-subsystem-net-devices-eth1.device
Before=network.target ssh.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/lab-node-setup

[Install]
WantedBy=multi-user.target
EOF

# --- the local container image, imported into containerd (k8s.io) at first boot
mkdir -p "$R/usr/local/share/netmedic-lab" "$R/var/lib/netmedic-lab" "$R/etc/netmedic-lab"
cp "$IMAGE_TAR" "$R/usr/local/share/netmedic-lab/busybox.tar"
echo "$IMAGE_NAME" >"$R/etc/netmedic-lab/container-image"
cat >"$R/etc/systemd/system/lab-image-import.service" <<'EOF'
[Unit]
Description=netmedic lab: import the local busybox image into containerd (k8s.io)
Requires=containerd.service
After=containerd.service
ConditionPathExists=!/var/lib/netmedic-lab/image-imported

[Service]
Type=oneshot
ExecStart=/usr/bin/ctr -n k8s.io images import /usr/local/share/netmedic-lab/busybox.tar
ExecStart=/usr/bin/touch /var/lib/netmedic-lab/image-imported

[Install]
WantedBy=multi-user.target
EOF

mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
for unit in lab-node-setup.service lab-image-import.service; do
    ln -sf "/etc/systemd/system/$unit" "$R/etc/systemd/system/multi-user.target.wants/$unit"
done

# --- SSH: root by key only
mkdir -p "$R/root/.ssh"
chmod 0700 "$R/root/.ssh"
install -m 0600 "$PUBKEY" "$R/root/.ssh/authorized_keys"
mkdir -p "$R/etc/ssh/sshd_config.d"
cat >"$R/etc/ssh/sshd_config.d/netmedic-lab.conf" <<'EOF'
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
MaxStartups 64:30:128
MaxSessions 64
ClientAliveInterval 15
EOF
# Every SSH session (command, subsystem, one over a shared connection) appends a line; labctl's clock reset after a
# restore leaves the file as the one line "clean <eth1 neighbour table fingerprint>", and `labctl reset` leaves a node that nothing
# reached since then as it is (lab/vm/vmlab/ssh.py, lifecycle.py). sshd runs this with sh before the session's command; it must print nothing.
cat >"$R/etc/ssh/sshrc" <<'EOF'
{ echo session >>/run/nmlab-sessions; } 2>/dev/null
EOF

# --- trimming: no getty, no periodic jobs, volatile journal, empty fstab
for unit in getty.target getty@tty1.service serial-getty@ttyS0.service \
        systemd-binfmt.service proc-sys-fs-binfmt_misc.automount proc-sys-fs-binfmt_misc.mount \
        apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
        e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-tmpfiles-clean.timer \
        systemd-pstore.service systemd-firstboot.service systemd-hwdb-update.service \
        modprobe@drm.service; do
    ln -sf /dev/null "$R/etc/systemd/system/$unit"
done
mkdir -p "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n' >"$R/etc/systemd/journald.conf.d/netmedic-lab.conf"
: >"$R/etc/fstab"

# A fixed machine-id avoids systemd's first-boot path; each node gets its own
# through systemd.machine_id= on the kernel command line.
echo 0123456789abcdef0123456789abcdef >"$R/etc/machine-id"
echo lab-node >"$R/etc/hostname"
{
    echo '127.0.0.1 localhost'
    echo '::1 localhost ip6-localhost ip6-loopback'
    i=1
    while [ "$i" -le 20 ]; do
        echo "10.77.0.$((10 + i)) lab-node-$i"
        i=$((i + 1))
    done
} >"$R/etc/hosts"
: >"$R/etc/resolv.conf"

# --- Python: bytecode of modules run from an AnsiballZ zip is kept (nmlab_zipcache.py
# says why); every stdlib module has its .pyc already (py3compile at package install).
PYLIB="$R/usr/lib/python3/dist-packages"
install -m 0644 "$RECIPE_DIR/nmlab_zipcache.py" "$PYLIB/nmlab_zipcache.py"
echo 'import nmlab_zipcache' >"$PYLIB/nmlab_zipcache.pth"
chroot "$R" python3 -m py_compile /usr/lib/python3/dist-packages/nmlab_zipcache.py
if [ -n "${ANSIBLE_MODULE_UTILS:-}" ] && [ -d "$ANSIBLE_MODULE_UTILS" ]; then
    mkdir -p "$R/tmp/nmlab-warm/ansible"
    cp -a "$ANSIBLE_MODULE_UTILS" "$R/tmp/nmlab-warm/ansible/module_utils"
    chroot "$R" env NMLAB_ZIPCACHE=0 python3 -c \
        'import nmlab_zipcache as z; print("    bytecode cache:", z.warm("/tmp/nmlab-warm"), "ansible module_utils files")'
fi

# --- leftovers
rm -rf "$R/var/cache/apt/"*.bin "$R/var/lib/apt/lists/"* "$R/tmp/"* "$R/var/tmp/"*
