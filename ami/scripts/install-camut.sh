#!/bin/sh
# Installs the camut binary and the camut-drone systemd unit (uploaded to /tmp by the
# Packer template), and raises the open-file limit. Run as root.
set -eu

install -m 0755 /tmp/camut /usr/local/bin/camut
/usr/local/bin/camut --version

install -d -m 0755 /etc/camut
install -m 0644 /tmp/camut-drone.service /etc/systemd/system/camut-drone.service
install -m 0644 /tmp/99-camut-limits.conf /etc/security/limits.d/99-camut.conf
# The same entry in limits.conf itself, for tools that read only that file.
if ! grep -q 'camut: open files' /etc/security/limits.conf; then
  {
    echo '# camut: open files'
    echo '*     soft  nofile  1000000'
    echo '*     hard  nofile  1000000'
  } >> /etc/security/limits.conf
fi

# Enabled: it starts at boot once the deployer has written /etc/camut/drone.env
# (the unit's ConditionPathExists skips it on a fresh instance).
systemctl daemon-reload
systemctl enable camut-drone.service
rm -f /tmp/camut /tmp/camut-drone.service /tmp/99-camut-limits.conf
