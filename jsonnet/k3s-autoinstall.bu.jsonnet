// The installed system's Butane config (→ k3s-autoinstall.ign, nested in the live ISO's config).
// First boot: run-k3s-prereq-installer layers k3s-selinux and reboots; second boot:
// run-k3s-installer installs and starts k3s. See docs/k3s.md.
local k = import 'k3s.libsonnet';

// token: what this node joins with (a server's token, or for an agent the agent token);
// agent_token: servers only, k3s's agent-token; cluster_id: names this cluster's installs on disk.
function(cluster, node, token='', agent_token='', cluster_id='')
  local n = k.node(cluster, node);
  local k3s = cluster.k3s;
  local isServer = n.role == 'server';
  local first = k.isFirstServer(cluster, n);
  local joinHost = k.urlHost(k3s.server_url);
  assert std.length(token) > 0 : 'the cluster token is empty (pass it as the token argument)';
  assert !isServer || std.length(agent_token) > 0 : 'a server needs the agent token (the agent_token argument)';
  assert std.all([k.rfc1123(m) for m in std.objectFields(k3s.manifests)])
         : 'k3s.manifests: names must be RFC 1123 labels (a-z, 0-9, -): %s' % std.join(', ', std.objectFields(k3s.manifests));

  // /etc/rancher/k3s/config.yaml: the role's settings, then the user's (server_config /
  // agent_config), then what must hold for every node (tokens, SELinux). Agents carry only the
  // agent token: it admits agents, not servers.
  local staticIp = if n.network != null then { 'node-ip': std.split(n.network.address, '/')[0] } else {};
  local serverBase = {
    'write-kubeconfig-mode': '0600',
    'tls-san': [joinHost],
  } + (if first then { 'cluster-init': true } else { server: k3s.server_url })
    + (if std.length(k3s.disable) > 0 then { disable: k3s.disable } else {});
  local agentBase = { server: k3s.server_url };
  local k3sConfig =
    (if isServer then serverBase + staticIp + k3s.server_config else agentBase + staticIp + k3s.agent_config)
    + { token: token, selinux: true }
    + (if isServer then { 'agent-token': agent_token } else {});

  // The Rancher k3s-common repository for CoreOS, as install.sh would write it.
  local rpmChannel =
    local c = if k3s.channel == null then 'stable' else k3s.channel;
    if std.endsWith(c, 'testing') then 'testing' else if std.endsWith(c, 'latest') then 'latest' else 'stable';
  local rpmHost = if rpmChannel == 'testing' then 'rpm-testing.rancher.io' else 'rpm.rancher.io';
  local repo = k.fill(|||
    [rancher-k3s-common-%(ch)s]
    name=Rancher K3s Common (%(ch)s)
    baseurl=https://%(host)s/k3s/%(ch)s/common/coreos/noarch
    enabled=1
    gpgcheck=1
    repo_gpgcheck=0
    gpgkey=https://%(host)s/public.key
  |||, { ch: rpmChannel, host: rpmHost });

  local installerEnv = k.envFile({
    K3S_AI_ROLE: n.role,
    K3S_AI_FIRST_SERVER: if first then 'true' else 'false',
    K3S_AI_SERVER_URL: k3s.server_url,
    K3S_AI_JOIN_DELAY: k.joinDelay(cluster, n),
    K3S_AI_SCRIPT_URL: k3s.install_script_url,
    K3S_AI_SCRIPT_SHA256: k3s.install_script_sha256,
    K3S_AI_VERSION: k3s.version,
    K3S_AI_CHANNEL: if k3s.version == null then k3s.channel else null,
    K3S_AI_UPDATES_HOLD: k.zincatiHold,
    K3S_AI_UPDATES: n.updates.strategy,
    K3S_AI_NODES: if first then std.join(' ', [m.name for m in cluster.nodes]) else null,
  });

  local keyfile(net) =
    local v6 = k.contains(net.address, ':');
    local fam = if v6 then 'ipv6' else 'ipv4';
    local other = if v6 then 'ipv4' else 'ipv6';
    k.fill(|||
      [connection]
      id=%(iface)s
      type=ethernet
      interface-name=%(iface)s
      autoconnect=true

      [%(fam)s]
      method=manual
      address1=%(addr)s%(gw)s
    |||, { iface: net.interface, fam: fam, addr: net.address,
            gw: if net.gateway != null then ',' + net.gateway else '' })
    + (if std.length(net.dns) > 0 then 'dns=' + std.join(';', net.dns) + ';\n' else '')
    + '\n[' + other + ']\nmethod=' + (if v6 then 'disabled' else 'auto') + '\n';

  local marker = k.markerLine(cluster, cluster_id) + ' node=' + n.name;

  {
    variant: 'fcos',
    version: '1.4.0',
    passwd: k.users(cluster),
    storage: {
      directories: [
        { path: k.stateDir, mode: 448 },
        { path: '/etc/rancher/k3s', mode: 448 },
      ] + (if isServer then [{ path: '/var/lib/rancher/k3s/server', mode: 448 }] else []),
      files: [
        k.file('/etc/hostname', n.name + '\n'),
        k.file(k.markerFile, marker + '\n'),
        k.file('/etc/yum.repos.d/rancher-k3s-common.repo', repo),
        k.file('/etc/k3s-autoinstall/k3s-installer.env', installerEnv),
        // Zincati would update and reboot at once, during layering or a join: held until k3s
        // runs (run-k3s-installer removes the hold), then the configured strategy applies.
        k.file(k.zincatiHold, '# until k3s is installed (removed by run-k3s-installer)\n[updates]\nenabled = false\n'),
        k.file(k.zincatiStrategy, k.zincatiToml(n.updates)),
        k.file('/etc/rancher/k3s/config.yaml', k.yaml(k3sConfig), mode=384),
        k.script('/usr/local/bin/run-k3s-prereq-installer', importstr 'scripts/run-k3s-prereq-installer'),
        k.script('/usr/local/bin/run-k3s-installer', importstr 'scripts/run-k3s-installer'),
      ] + (
        if first then [k.script('/usr/local/bin/report-cluster-nodes', importstr 'scripts/report-cluster-nodes')] else []
      ) + (
        if n.network != null then [
          k.file('/etc/NetworkManager/system-connections/' + n.network.interface + '.nmconnection',
                 keyfile(n.network), mode=384),
        ] else []
      ) + (
        if isServer then [
          k.file('/var/lib/rancher/k3s/server/manifests/' + name + '.yaml', k3s.manifests[name], mode=384)
          for name in std.objectFields(k3s.manifests)
        ] else []
      ),
    },
    systemd: {
      units: [
        k.unit('run-k3s-prereq-installer.service', k.fill(|||
          # %(marker)s
          [Unit]
          Description=Layer the packages k3s needs (k3s-selinux), then reboot
          Documentation=https://docs.fedoraproject.org/en-US/fedora-coreos/os-extensions/
          Wants=network-online.target
          After=network-online.target systemd-machine-id-commit.service
          Before=zincati.service run-k3s-installer.service
          ConditionPathExists=!%(state)s/prereq-installed
          # Never give up: the script retries with a capped backoff; a crash restarts it.
          StartLimitIntervalSec=0

          [Service]
          Type=oneshot
          RemainAfterExit=yes
          Environment=K3S_AI_STATE_DIR=%(state)s
          Environment=K3S_AI_DNS_HOST=%(rpmHost)s
          ExecStart=/usr/local/bin/run-k3s-prereq-installer
          Restart=on-failure
          RestartSec=60
          TimeoutStartSec=infinity
          StandardOutput=journal+console
          StandardError=journal+console

          [Install]
          WantedBy=multi-user.target
        |||, { marker: marker, state: k.stateDir, rpmHost: rpmHost })),
        k.unit('run-k3s-installer.service', k.fill(|||
          [Unit]
          Description=Install and start k3s (%(role)s)
          Documentation=https://docs.k3s.io/installation/configuration
          Wants=network-online.target
          After=network-online.target run-k3s-prereq-installer.service
          ConditionPathExists=%(state)s/prereq-installed
          ConditionPathExists=!%(state)s/k3s-installed
          StartLimitIntervalSec=0

          [Service]
          Type=oneshot
          RemainAfterExit=yes
          EnvironmentFile=/etc/k3s-autoinstall/k3s-installer.env
          Environment=K3S_AI_STATE_DIR=%(state)s
          ExecStart=/usr/local/bin/run-k3s-installer
          Restart=on-failure
          RestartSec=60
          TimeoutStartSec=infinity
          StandardOutput=journal+console
          StandardError=journal+console

          [Install]
          WantedBy=multi-user.target
        |||, { role: n.role, state: k.stateDir })),
      ] + (
        // The first server says on its console which nodes are Ready until all are (`doit smoke`
        // reads it). Started by run-k3s-installer once k3s runs, and at boot while the cluster forms.
        if first then [k.unit('report-cluster-nodes.service', k.fill(|||
          [Unit]
          Description=Report the cluster's Ready nodes on the console until every node is Ready
          After=run-k3s-installer.service
          ConditionPathExists=%(state)s/k3s-installed

          [Service]
          Type=simple
          EnvironmentFile=/etc/k3s-autoinstall/k3s-installer.env
          ExecStart=/usr/local/bin/report-cluster-nodes
          StandardOutput=journal+console
          StandardError=journal+console

          [Install]
          WantedBy=multi-user.target
        |||, { state: k.stateDir }))] else []
      ) + [
        // Not named k3s*.service: k3s-killall.sh stops every /etc/systemd/system/k3s*.service, so
        // such a unit would wait on its own stop job, and k3s-uninstall.sh would refuse to run.
        k.unit('stop-k3s-at-shutdown.service', |||
          [Unit]
          Description=Stop k3s and its containers cleanly at shutdown (k3s-killall.sh)
          # Stopped after k3s (reverse start order), while the network and filesystems are still up.
          After=network-online.target local-fs.target
          Before=k3s.service k3s-agent.service

          [Service]
          Type=oneshot
          RemainAfterExit=yes
          ExecStart=/bin/true
          ExecStop=/bin/sh -c 'if [ -x /usr/local/bin/k3s-killall.sh ]; then /usr/local/bin/k3s-killall.sh; fi'
          TimeoutStopSec=120

          [Install]
          WantedBy=multi-user.target
        |||),
      ],
    },
  }
