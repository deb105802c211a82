// The live ISO's Butane config (→ coreos-autoinstall.ign, embedded in the node's ISO).
// run-coreos-installer.service installs Fedora CoreOS offline to the node's disk with the nested
// /home/core/k3s-autoinstall.ign, then reboots or powers off. See docs/k3s.md.
local k = import 'k3s.libsonnet';

function(cluster, node, token='')
  local n = k.node(cluster, node);
  {
    variant: 'fcos',
    version: '1.4.0',
    // The same keys as the installed system, to look into a live system that stopped.
    passwd: k.users(cluster),
    storage: {
      files: [
        // Filled in by the `inline` step with the installed system's Ignition config.
        { path: '/home/core/k3s-autoinstall.ign', mode: 384, contents: { inline: '' } },
        k.file('/etc/k3s-autoinstall/install.env', k.envFile({
          K3S_AI_CLUSTER: cluster.name,
          K3S_AI_NODE: n.name,
          K3S_AI_DISK: n.disk,
          K3S_AI_AFTER_INSTALL: n.after_install,
          K3S_AI_COUNTDOWN: cluster.install.countdown_seconds,
          K3S_AI_IGNITION: '/home/core/k3s-autoinstall.ign',
        })),
        k.script('/usr/local/bin/run-coreos-installer', importstr 'scripts/run-coreos-installer'),
      ],
    },
    systemd: {
      units: [
        k.unit('run-coreos-installer.service', |||
          [Unit]
          Description=Install Fedora CoreOS and k3s node %(node)s to disk (k3s-autoinstall)
          After=systemd-udev-settle.service local-fs.target
          Wants=systemd-udev-settle.service
          # The console is ours until the install is done (the countdown reads a key from it).
          Before=systemd-user-sessions.service getty@tty1.service serial-getty@ttyS0.service
          # coreos.inst.install_dev= on the kernel command line means the stock installer runs instead.
          ConditionKernelCommandLine=!coreos.inst.install_dev

          [Service]
          Type=oneshot
          RemainAfterExit=yes
          EnvironmentFile=/etc/k3s-autoinstall/install.env
          ExecStart=/usr/local/bin/run-coreos-installer
          StandardInput=tty-force
          StandardOutput=inherit
          StandardError=inherit
          TTYPath=/dev/console
          TTYReset=yes
          TimeoutStartSec=infinity

          [Install]
          WantedBy=multi-user.target
        ||| % { node: n.name }),
      ],
    },
  }
