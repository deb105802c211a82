// Shared helpers for the two templates: node lookup, Butane building blocks, k3s config.yaml.

{
  // Stamps and the data-safety marker all live here on the installed system (persistent /var).
  stateDir: '/var/lib/k3s-autoinstall',
  // The live system: where the installed configs and (cluster ISO) the nodes' settings are.
  nestedConfig: '/home/core/k3s-autoinstall.ign',
  nestedConfigDir: '/home/core/k3s-autoinstall',
  nodesDir: '/etc/k3s-autoinstall/nodes',
  markerFile: self.stateDir + '/marker',
  // The line that identifies an install of this cluster: its name and its id (a one-way hash of
  // the server token, the same in every build with that token). It appears verbatim in the marker
  // file and as a comment in a unit of the installed config (plain text in the Ignition JSON that
  // coreos-installer leaves on the boot partition until first boot). The live installer matches
  // whole fields: cluster=k3s is not cluster=k3s-lab.
  markerLine(cluster, clusterId)::
    assert std.length(clusterId) > 0 : 'the cluster id is empty (pass it as the cluster_id argument)';
    'k3s-autoinstall-marker: cluster=' + cluster.name + ' id=' + clusterId,

  // Zincati drop-ins (/etc/zincati/config.d/, read in name order, later files win).
  zincatiHold: '/etc/zincati/config.d/99-k3s-autoinstall-hold.toml',
  zincatiStrategy: '/etc/zincati/config.d/90-k3s-autoinstall-updates.toml',
  zincatiToml(updates)::
    '[updates]\nstrategy = "' + updates.strategy + '"\n'
    + (if updates.strategy == 'fleet_lock' then
         '\n[updates.fleet_lock]\nbase_url = "' + updates.fleet_lock_url + '"\n'
       else if updates.strategy == 'periodic' then
         '\n[[updates.periodic.window]]\ndays = [ ' + std.join(', ', ['"' + d + '"' for d in updates.window.days])
         + ' ]\nstart_time = "' + updates.window.start_time
         + '"\nlength_minutes = ' + ('%d' % updates.window.length_minutes) + '\n'
       else ''),

  // Units ordered before the gettys of these consoles keep the console to themselves.
  gettys(consoles)::
    std.set(['getty@tty1.service'] + [
      local device = std.split(c, ',')[0];
      local vt = std.startsWith(device, 'tty') && std.length(device) > 3 &&
                 std.all([$.isDigit(ch) for ch in std.stringChars(std.substr(device, 3, 9))]);
      if !vt then 'serial-getty@' + device + '.service'
      else 'getty@' + (if device == 'tty0' then 'tty1' else device) + '.service'
      for c in consoles
    ] + ['serial-getty@ttyS0.service']),

  node(cluster, name)::
    local found = [n for n in cluster.nodes if n.name == name];
    assert std.length(found) == 1 : 'node %s is not in cluster.nodes' % name;
    found[0],

  servers(cluster):: [n for n in cluster.nodes if n.role == 'server'],

  isFirstServer(cluster, node):: node.name == cluster.first_server,

  // Servers after the first join one at a time: the k-th joining server waits k * stagger
  // seconds once the first server's API answers. Agents do not become etcd members.
  joinDelay(cluster, node)::
    if node.role != 'server' || $.isFirstServer(cluster, node) then 0
    else
      local names = [n.name for n in $.servers(cluster)];
      std.find(node.name, names)[0] * cluster.k3s.join_stagger_seconds,

  // https://host:6443 → host (what goes into tls-san).
  urlHost(url)::
    local rest = std.lstripChars(std.substr(url, std.length('https://'), std.length(url)), '');
    local hostport = std.split(rest, '/')[0];
    if std.startsWith(hostport, '[') then std.split(std.substr(hostport, 1, std.length(hostport)), ']')[0]
    else std.split(hostport, ':')[0],

  // Character tests by code point: std.member on a string is std.findSubstr, interpreted and slow.
  isDigit(c):: local cp = std.codepoint(c); cp >= 48 && cp <= 57,
  isLabelChar(c):: local cp = std.codepoint(c); $.isDigit(c) || (cp >= 97 && cp <= 122) || cp == 45,

  rfc1123(name):: std.length(name) > 0 && std.length(name) <= 63 &&
                  std.all([$.isLabelChar(c) for c in std.stringChars(name)]) &&
                  !std.startsWith(name, '-') && !std.endsWith(name, '-'),

  // A value for a systemd EnvironmentFile that bash can also source: single-quoted.
  envFile(vars)::
    std.join('', [
      local v = if vars[k] == null then '' else std.toString(vars[k]);
      assert !$.contains(v, "'") && !$.contains(v, '\n')
             : 'environment value for %s must not contain a quote or a newline' % k;
      k + "='" + v + "'\n"
      for k in std.objectFields(vars)
    ]),

  file(path, text, mode=420, overwrite=true):: {
    path: path,
    mode: mode,
    overwrite: overwrite,
    contents: { inline: text },
  },

  script(path, text):: $.file(path, text, mode=493),

  unit(name, text, enabled=true):: { name: name, enabled: enabled, contents: text },

  users(cluster):: {
    users: [{ name: 'core', ssh_authorized_keys: cluster.ssh_authorized_keys }],
  },

  // YAML for config.yaml: keys plain (k3s flag names), values as JSON (valid YAML flow scalars),
  // lists as block sequences. Hand-written because std.manifestYamlDoc with quote_keys=false
  // costs a quarter of a second per document, the largest part of a rebuild after a key change.
  yaml(obj)::
    local scalar(value) = if std.isString(value) then std.escapeStringJson(value)
                          else std.manifestJsonMinified(value);
    std.join('', [
      if std.isArray(obj[key]) && std.length(obj[key]) > 0 then
        key + ':\n' + std.join('', ['- ' + scalar(item) + '\n' for item in obj[key]])
      else key + ': ' + scalar(obj[key]) + '\n'
      for key in std.objectFields(obj)
    ]),

  // Speed: std.format and std.findSubstr are written in jsonnet and go a character at a time (in
  // go-jsonnet too: std.format for fill makes a render four times slower); std.split, std.splitLimit,
  // std.strReplace and std.escapeStringJson are native. These helpers give the same strings with them.

  // Whether text contains part (std.length(std.findSubstr(part, text)) > 0).
  contains(text, part):: std.strReplace(text, part, '') != text,

  // std.format's %(name)s: text % values, for named string fields, in one pass.
  fill(text, values)::
    local parts = std.split(text, '%(');
    parts[0] + std.join('', [
      local field = std.splitLimit(parts[i], ')s', 1);
      std.toString(values[field[0]]) + field[1]
      for i in std.range(1, std.length(parts) - 1)
    ]),
}
