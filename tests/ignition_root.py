"""Apply an Ignition config with the real Ignition binary (Debian's `ignition`) to a scratch root.

Ignition's fetch-offline and files stages run with platform `file`, as root, into `<work>/root`: the
files, users, SSH keys, links and the systemd preset that records enabled units land there as on a
first boot. The scratch root has no SELinux policy, so a `setfiles` stub takes Ignition's relabel list.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.tools import require_root, require_tool

# Debian installs the binary inside the dracut module, not on PATH.
IGNITION_BINARY = Path("/usr/lib/dracut/modules.d/30ignition/ignition")

# /etc as Fedora CoreOS ships it: root, and user core (uid 1000) that Ignition adds keys to.
FCOS_ACCOUNTS = {
    "passwd": "root:x:0:0:root:/root:/bin/bash\ncore:x:1000:1000::/home/core:/bin/bash\n",
    "group": "root:x:0:\nwheel:x:10:\nusers:x:100:\ncore:x:1000:\n",
    "shadow": "root:*::0:::::\ncore:*::0:::::\n",
    "gshadow": "root:*::\nwheel:*::\nusers:*::\ncore:!::\n",
}


def ignition_binary() -> str:
    require_root()
    found = shutil.which("ignition") or (os.fspath(IGNITION_BINARY) if IGNITION_BINARY.exists() else None)
    if not found:
        require_tool("ignition")
    require_tool("useradd", "groupadd")
    return found  # type: ignore[return-value]


@contextmanager
def scratch_dir(prefix: str = "ignition-") -> Iterator[Path]:
    """A directory other users can traverse (Ignition writes SSH keys as the key's user; pytest's
    tmp_path sits below a 0700 directory)."""
    work = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
    os.chmod(work, 0o755)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def apply_ignition(ignition_text: str, work: Path, *, accounts: dict[str, str] = FCOS_ACCOUNTS) -> Path:
    """Run the fetch-offline and files stages into work/root and return the root."""
    binary = ignition_binary()
    root = work / "root"
    (root / "etc" / "selinux").mkdir(parents=True)
    (root / "etc" / "selinux" / "config").write_text("SELINUX=disabled\nSELINUXTYPE=targeted\n")
    for name, content in accounts.items():
        (root / "etc" / name).write_text(content)
    if "core:x:1000" in accounts["passwd"]:
        (root / "home" / "core").mkdir(parents=True)
        os.chown(root / "home" / "core", 1000, 1000)
    config_file = work / "config.ign"
    config_file.write_text(ignition_text)
    bin_dir = work / "bin"
    bin_dir.mkdir()
    (bin_dir / "setfiles").write_text("#!/bin/sh\ncat >/dev/null\n")
    (bin_dir / "setfiles").chmod(0o755)
    env = {**os.environ, "IGNITION_CONFIG_FILE": os.fspath(config_file),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    common = ["-root", os.fspath(root), "-config-cache", os.fspath(work / "cache.json"),
              "-state-file", os.fspath(work / "state"), "-log-to-stdout", "-platform", "file"]
    for extra in (["-stage", "fetch-offline", "-neednet", os.fspath(work / "neednet")], ["-stage", "files"]):
        result = subprocess.run([binary, *extra, *common], capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return root
