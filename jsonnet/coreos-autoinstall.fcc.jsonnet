// The live ISO's Butane config (→ coreos-autoinstall.ign, embedded in the node's ISO).
// run-coreos-installer.service installs Fedora CoreOS offline to the node's disk with the nested
// /home/core/k3s-autoinstall.ign, then reboots or powers off. See docs/k3s.md.
local k = import 'k3s.libsonnet';

function(cluster, node, cluster_id='')
  local n = k.node(cluster, node);
  assert std.length(cluster_id) > 0 : 'the cluster id is empty (pass it as the cluster_id argument)';
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
          K3S_AI_CLUSTER_ID: cluster_id,
          K3S_AI_NODE: n.name,
          K3S_AI_CONSOLES: std.join(' ', n.console),
          K3S_AI_DISK: n.disk,
          K3S_AI_AFTER_INSTALL: n.after_install,
          K3S_AI_COUNTDOWN: cluster.install.countdown_seconds,
          K3S_AI_IGNITION: '/home/core/k3s-autoinstall.ign',
        })),
        k.script('/usr/local/bin/run-coreos-installer', importstr 'scripts/run-coreos-installer'),
        // What the stock installer's coreos-installer-disable-device-auto-activation.service does,
        // in place before the live root's udev starts: old volume groups and RAID arrays on the
        // disks stay inactive, so that coreos-installer gets the target to itself.
        k.file('/etc/mdadm.conf.d/k3s-autoinstall.conf', '# no MD auto-assembly: the installer needs the disk to itself\nAUTO -all\n'),
        {
          path: '/etc/lvm/lvm.conf',
          append: [{ inline: '\n# k3s-autoinstall: no LVM auto-activation, the installer needs the disk to itself\ndevices {\n\tfilter = [ "r|.*|" ]\n}\n' }],
        },
      ],
    },
    systemd: {
      units: [
        k.unit('run-coreos-installer.service', |||
          [Unit]
          Description=Install Fedora CoreOS and k3s node %(node)s to disk (k3s-autoinstall)
          After=local-fs.target
          # The console is ours until the install is done (the countdown reads a key from it);
          # SSH logins stay open, to look at a machine that stopped.
          Before=%(gettys)s
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
        ||| % { node: n.name, gettys: std.join(' ', k.gettys(n.console)) }),
      ],
    },
  }
