// The cluster: one self-installing ISO per node. Every field is documented in README.md
// ("Configuration"); fields left out take the defaults shown there.
{
  name: 'k3s',  // marks this cluster's installs on disk: an ISO left in never wipes them
  fcos: {
    stream: 'stable',
    architecture: 'x86_64',
    // release: '44.20260707.3.1',  // pin; without it the first build records the latest
  },
  k3s: {
    channel: 'stable',  // or version: 'v1.33.5+k3s1' (a pin wins over the channel)
    disable: [],  // e.g. ['traefik', 'servicelb']
    // install_script_sha256: '...',  // pin get.k3s.io
    // manifests: { argocd: 'manifests/argocd.yaml' },  // RFC 1123 names, deployed by servers
  },
  install: { countdown_seconds: 10 },  // before wiping a disk that holds partitions; 0 = none
  nodes: [
    // disk: 'auto' (the single fixed disk >= 8 GiB) or '/dev/disk/by-id/...';
    // after_install: 'reboot' | 'poweroff';
    // network: { interface: 'enp1s0', address: '192.168.1.10/24', gateway: '192.168.1.1', dns: ['192.168.1.1'] }
    { name: 'k3s-server-1', role: 'server' },
  ],
}
