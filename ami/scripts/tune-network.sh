#!/bin/sh
# Installs the network sysctls for many concurrent connections and applies them now.
# Run as root.
set -eu

install -m 0644 /tmp/99-camut-sysctl.conf /etc/sysctl.d/99-camut.conf
rm -f /tmp/99-camut-sysctl.conf
sysctl --system >/dev/null
for key in net.ipv4.ip_local_port_range net.ipv4.tcp_tw_reuse net.core.somaxconn \
  net.core.netdev_max_backlog net.ipv4.tcp_max_syn_backlog; do
  sysctl "$key"
done
