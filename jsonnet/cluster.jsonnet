// The cluster: one self-installing ISO per node. Every field is documented in README.md
// ("Configuration"); fields left out take the defaults shown there.
{
  name: 'k3s',
  fcos: {
    stream: 'stable',
    architecture: 'x86_64',
  },
  k3s: {
    channel: 'stable',
    disable: [],
  },
  nodes: [
    { name: 'k3s-server-1', role: 'server' },
  ],
}
