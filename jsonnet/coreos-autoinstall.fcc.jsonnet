// The live ISO's Butane config (→ coreos-autoinstall.ign, embedded in the node's ISO).
// run-coreos-installer.service installs Fedora CoreOS offline to the node's disk with the nested
// /home/core/k3s-autoinstall.ign, then reboots or powers off. See docs/k3s.md.
// node: a node's name for its own ISO; null for the cluster ISO, which carries every node (their
// settings in /etc/k3s-autoinstall/nodes/, their installed configs in /home/core/k3s-autoinstall/)
// and decides at boot which node the machine is (k3s-autoinstall-select-node).
local k = import 'k3s.libsonnet';

function(cluster, node, cluster_id='')
  local perNode = node != null;
  local nodes = if perNode then [k.node(cluster, node)] else cluster.nodes;
  local n = nodes[0];
  // The consoles the live kernel and the installed nodes write to: their gettys wait for the install.
  local consoles = if perNode then n.console
                   else std.set(std.flattenArrays([m.console for m in nodes]) + cluster.install.console);
  local nodeEnv(m) = {
    K3S_AI_NODE: m.name,
    K3S_AI_ROLE: m.role,
    K3S_AI_CONSOLES: std.join(' ', m.console),
    K3S_AI_DISK: m.disk,
    K3S_AI_AFTER_INSTALL: m.after_install,
  };
  assert std.length(cluster_id) > 0 : 'the cluster id is empty (pass it as the cluster_id argument)';
  {
    variant: 'fcos',
    version: '1.4.0',
    // The same keys as the installed system, to look into a live system that stopped.
    passwd: k.users(cluster),
    storage: {
      files: [
        k.file('/etc/k3s-autoinstall/install.env', k.envFile({
          K3S_AI_CLUSTER: cluster.name,
          K3S_AI_CLUSTER_ID: cluster_id,
          K3S_AI_COUNTDOWN: cluster.install.countdown_seconds,
        } + (if perNode then nodeEnv(n) + { K3S_AI_IGNITION: k.nestedConfig }
             else { K3S_AI_NODE: '', K3S_AI_NODES: std.join(' ', [m.name for m in nodes]),
                    K3S_AI_NODES_DIR: k.nodesDir, K3S_AI_IGNITION_DIR: k.nestedConfigDir }))),
        k.script('/usr/local/bin/run-coreos-installer', importstr 'scripts/run-coreos-installer'),
        // What the stock installer's coreos-installer-disable-device-auto-activation.service does,
        // in place before the live root's udev starts: old volume groups and RAID arrays on the
        // disks stay inactive, so that coreos-installer gets the target to itself.
        k.file('/etc/mdadm.conf.d/k3s-autoinstall.conf', '# no MD auto-assembly: the installer needs the disk to itself\nAUTO -all\n'),
        {
          path: '/etc/lvm/lvm.conf',
          append: [{ inline: '\n# k3s-autoinstall: no LVM auto-activation, the installer needs the disk to itself\ndevices {\n\tfilter = [ "r|.*|" ]\n}\n' }],
        },
      ] + (
        // Filled in by the `inline` step with the installed system's Ignition config(s).
        if perNode then [{ path: k.nestedConfig, mode: 384, contents: { inline: '' } }]
        else [
          k.script('/usr/local/bin/k3s-autoinstall-select-node', importstr 'scripts/select-node'),
        ] + std.flattenArrays([
          [
            { path: k.nestedConfigDir + '/' + m.name + '.ign', mode: 384, contents: { inline: '' } },
            k.file(k.nodesDir + '/' + m.name + '.env', k.envFile(nodeEnv(m) + {
              K3S_AI_MACS: std.join(' ', m.macs),
              K3S_AI_SERIAL: m.serial,
              K3S_AI_UUID: m.uuid,
            })),
          ]
          for m in nodes
        ])
      ),
    },
    systemd: {
      units: [
        k.unit('run-coreos-installer.service', k.fill(|||
          [Unit]
          Description=Install Fedora CoreOS and k3s %(what)s to disk (k3s-autoinstall)
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
        |||, { what: if perNode then 'node ' + n.name else 'cluster ' + cluster.name + ' (one of its nodes)',
                gettys: std.join(' ', k.gettys(consoles)) })),
      ],
    },
  }
