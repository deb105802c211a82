#!/bin/sh
# Twin stand-in for the k3s install script (get.k3s.io), served by the test's HTTP server. Does what
# the real one does to the system, in short: downloads the k3s binary, writes k3s.service (or
# k3s-agent.service) with its env file, k3s-killall.sh and k3s-uninstall.sh, labels the binary unless
# INSTALL_K3S_SKIP_SELINUX_RPM=true makes it return first, then enables and starts the service.
set -e
BASE_URL=@BASE_URL@
BIN_DIR=/usr/local/bin
SYSTEMD_DIR=/etc/systemd/system
info() { echo "[INFO]  $*"; }

CMD_K3S=${INSTALL_K3S_EXEC:-server}
case "$CMD_K3S" in
    agent*) SYSTEM_NAME=k3s-agent ;;
    *) SYSTEM_NAME=k3s ;;
esac
info "Using ${INSTALL_K3S_VERSION:-twin} as release"
info "Downloading binary $BASE_URL/k3s"
curl -sfL -o "$BIN_DIR/k3s.tmp" "$BASE_URL/k3s"
chmod 755 "$BIN_DIR/k3s.tmp"
mv -f "$BIN_DIR/k3s.tmp" "$BIN_DIR/k3s"
for link in kubectl crictl ctr; do ln -sf k3s "$BIN_DIR/$link"; done

if [ "${INSTALL_K3S_SKIP_SELINUX_RPM:-}" != true ]; then
    chcon -u system_u -r object_r -t container_runtime_exec_t "$BIN_DIR/k3s"
fi

cat > "$BIN_DIR/k3s-killall.sh" <<'KILLALL'
#!/bin/sh
[ $(id -u) -eq 0 ] || exec sudo $0 $@
for service in /etc/systemd/system/k3s*.service; do
    [ -s $service ] && systemctl stop $(basename $service)
done
pkill -f '/usr/local/bin/k3s ' 2>/dev/null || true
exit 0
KILLALL
chmod 755 "$BIN_DIR/k3s-killall.sh"

cat > "$BIN_DIR/k3s-uninstall.sh" <<UNINSTALL
#!/bin/sh
set -x
if command -v systemctl; then
    systemctl disable $SYSTEM_NAME
    systemctl reset-failed $SYSTEM_NAME
    systemctl daemon-reload
fi
if (ls $SYSTEMD_DIR/k3s*.service || ls /etc/init.d/k3s*) >/dev/null 2>&1; then
    [ "\$(ls $SYSTEMD_DIR/k3s*.service 2>/dev/null | wc -l)" -le 1 ] || { echo "Additional k3s services installed, skipping uninstall of k3s"; exit 1; }
fi
$BIN_DIR/k3s-killall.sh
rm -f $SYSTEMD_DIR/$SYSTEM_NAME.service $SYSTEMD_DIR/$SYSTEM_NAME.service.env $BIN_DIR/k3s $BIN_DIR/k3s-killall.sh
rm -rf /etc/rancher/k3s/k3s.yaml /var/lib/rancher/k3s
UNINSTALL
chmod 755 "$BIN_DIR/k3s-uninstall.sh"

umask 077
env | grep -E '^(K3S|CONTAINERD)_' | sed 's/^\([^=]*\)=\(.*\)$/\1='"'"'\2'"'"'/' > "$SYSTEMD_DIR/$SYSTEM_NAME.service.env" || true
umask 022
cat > "$SYSTEMD_DIR/$SYSTEM_NAME.service" <<UNIT
[Unit]
Description=Lightweight Kubernetes
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target

[Install]
WantedBy=multi-user.target

[Service]
Type=notify
NotifyAccess=all
EnvironmentFile=-/etc/default/%N
EnvironmentFile=-/etc/sysconfig/%N
EnvironmentFile=-$SYSTEMD_DIR/$SYSTEM_NAME.service.env
KillMode=process
Delegate=yes
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStart=$BIN_DIR/k3s $CMD_K3S
UNIT

systemctl daemon-reload
if [ "${INSTALL_K3S_SKIP_ENABLE:-}" != true ]; then
    info "systemd: Enabling $SYSTEM_NAME unit"
    systemctl enable "$SYSTEM_NAME" >/dev/null 2>&1
fi
if [ "${INSTALL_K3S_SKIP_START:-}" != true ] && [ "${INSTALL_K3S_SKIP_ENABLE:-}" != true ]; then
    info "systemd: Starting $SYSTEM_NAME"
    systemctl restart "$SYSTEM_NAME"
fi
