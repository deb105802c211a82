// Three nodes: two servers (embedded etcd; the first starts the cluster) and one agent, with
// static addresses, so that the joining nodes reach the first server without DNS.
// Build with: ./build.sh config=jsonnet/examples/three-nodes.jsonnet
{
  name: 'homelab',
  fcos: { stream: 'stable', architecture: 'x86_64' },
  k3s: {
    channel: 'stable',
    disable: ['traefik', 'servicelb'],
    join_stagger_seconds: 60,
    server_config: { 'node-label': ['topology.kubernetes.io/zone=rack-1'] },
    agent_config: { 'node-label': ['node-role.example.org/worker=true'] },
  },
  install: { countdown_seconds: 10 },
  nodes: [
    {
      name: 'k3s-server-1', role: 'server',
      // A stable link to the disk (ls -l /dev/disk/by-id/ on the machine); the others pick 'auto'.
      disk: '/dev/disk/by-id/nvme-Samsung_SSD_980_1TB_S649NF0R000001',
      network: { interface: 'enp1s0', address: '192.168.1.11/24', gateway: '192.168.1.1', dns: ['192.168.1.1'] },
    },
    {
      name: 'k3s-server-2', role: 'server',
      network: { interface: 'enp1s0', address: '192.168.1.12/24', gateway: '192.168.1.1', dns: ['192.168.1.1'] },
    },
    { name: 'k3s-agent-1', role: 'agent', after_install: 'poweroff' },
  ],
}
