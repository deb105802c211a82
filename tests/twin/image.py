"""The twin: a Debian-built stand-in for the Fedora CoreOS live ISO and installed system.

Built from Debian's archive with mmdebstrap (kernel, systemd, udev, dracut with Debian's `ignition`
module, xfsprogs, GRUB...), plus the stand-ins in tests/twin/rootfs for what only FCOS has. The
result is a live ISO in the FCOS layout (`images/ignition.img`, `coreos/igninfo.json`,
`coreos/kargs.json`, karg areas in isolinux.cfg/grub.cfg) that `embed` writes into unchanged and
that boots in QEMU through isolinux, the kernel reading `initrd.img` + `ignition.img` as on FCOS.
The live root is the ISO9660 tree itself, made writable with systemd.volatile=overlay.

Cached under ~/.cache/k3s-twin (K3S_TWIN_CACHE), keyed by a hash of the recipe: the Debian
bootstrap (package list) in one layer, the overlay, initramfs and ISO in the next, so editing a
stand-in does not download Debian again. `python -m tests.twin.image` builds it and prints the paths.
Runs as root (mmdebstrap root mode, chroot for dracut); nothing here starts systemd or udev.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOTFS_OVERLAY = HERE / "rootfs"
INITRD_OVERLAY = HERE / "initrd"
CACHE = Path(os.environ.get("K3S_TWIN_CACHE", Path.home() / ".cache" / "k3s-twin"))

SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
PACKAGES = (
    "systemd", "systemd-sysv", "udev", "dbus", "linux-image-amd64", "kmod",
    # Debian's ignition ships a dracut module; it needs dracut-network's url-lib/network modules,
    # which pick systemd-networkd and so need dbus (twin-spike.md, pitfalls 1-2)
    "dracut", "dracut-network", "ignition", "procps",
    "util-linux", "fdisk", "e2fsprogs", "xfsprogs", "grub-pc-bin", "grub2-common",
    "iproute2", "curl", "ca-certificates", "openssl", "python3", "passwd",
)
VOLUME_ID = "fedora-coreos-44.20260707.3.1"  # what the test mirror publishes as the release
LIVE_KARGS = (
    "console=ttyS0,115200 root=/dev/sr0 rootfstype=iso9660 ro systemd.volatile=overlay "
    f"coreos.liveiso={VOLUME_ID} ignition.firstboot ignition.platform.id=metal twin.live mitigations=off"
)
# The initramfs: Ignition plus what the twin's virtual hardware needs (spike: "lean" initrd).
DRACUT_OMIT = "kernel-modules kernel-modules-extra crypt dm nvdimm resume lunmask virtiofs overlay-root plymouth"
DRACUT_DRIVERS = ("virtio_blk virtio_pci virtio_scsi virtio_net ext4 xfs isofs sr_mod cdrom ata_piix "
                  "ata_generic overlay qemu_fw_cfg")
# Under emulation every byte and every file costs: what the VMs never use is not unpacked at all
# (dpkg path filters), and dpkg's fsyncs are pointless in a bootstrap that is thrown away on failure.
DPKG_OPTIONS = ("force-unsafe-io", "path-exclude=/usr/share/doc/*", "path-exclude=/usr/share/man/*",
                "path-exclude=/usr/share/locale/*", "path-exclude=/usr/share/info/*",
                "path-exclude=/usr/lib/udev/hwdb.d/*")
# The kernel package's own initramfs is never used (the twin builds its own with dracut): INITRD=No
# skips building it during the bootstrap, which costs a minute or more.
INITRD_DURING_BOOTSTRAP = "No"
# Kernel modules kept, with their dependencies: what the twin's virtual hardware and our scripts use.
# Udev loads nothing else, which also makes each boot shorter under emulation.
# (evdev and button: logind sees the ACPI power button through them; without, a shutdown never starts)
KEPT_MODULES = (*DRACUT_DRIVERS.split(), "af_packet", "loop", "squashfs", "dm_mod", "autofs4", "nls_utf8",
                "nls_cp437", "vfat", "virtio_rng", "virtio_console", "sg", "sd_mod", "tun", "bridge",
                "binfmt_misc", "evdev", "button", "configfs", "fuse", "efi_pstore")
# Debian's periodic housekeeping: it only costs time in VMs that live for minutes.
MASKED_UNITS = ("e2scrub_reap.service", "e2scrub_all.timer", "apt-daily.timer", "apt-daily-upgrade.timer",
                "dpkg-db-backup.timer", "fstrim.timer", "man-db.timer")
ENABLED_UNITS = {  # target.wants -> units (the base image's own services and the twin's)
    "multi-user.target.wants": ("systemd-networkd.service", "twin-firstboot-complete.service",
                                "twin-console-info.service"),
    "sysinit.target.wants": ("twin-rpm-ostree-deploy.service", "twin-nm-keyfiles.service"),
    "sockets.target.wants": ("systemd-networkd.socket",),
    "network-online.target.wants": ("systemd-networkd-wait-online.service",),
}
KARG_AREA_SIZE = 1139
KARG_MARKER = "# COREOS_KARG_EMBED_AREA\n"
IGNITION_AREA_SIZE = 256 * 1024
ROOT_IMAGE = "images/twin-root.img"  # read by rootfs/usr/bin/coreos-installer
ISOLINUX_HEAD = ("serial 0 115200\ndefault linux\nprompt 0\ntimeout 0\n\nlabel linux\n"
                 "  kernel /images/pxeboot/vmlinuz\n"
                 "  append initrd=/images/pxeboot/initrd.img,/images/ignition.img ")
GRUB_HEAD = "set timeout=1\nmenuentry 'Fedora CoreOS (twin)' {\n\tlinux /images/pxeboot/vmlinuz "
GRUB_TAIL = "\tinitrd /images/pxeboot/initrd.img /images/ignition.img\n}\n"


@dataclass(frozen=True)
class TwinImage:
    iso: Path  # the stock live ISO (what the test mirror publishes as Fedora CoreOS)
    kernel: Path
    initrd: Path
    key: str


def _digest(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()[:16]


def mmdebstrap_command(target: Path) -> list[str]:
    return ["mmdebstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES),
            *(f"--dpkgopt={option}" for option in DPKG_OPTIONS), SUITE, os.fspath(target), *MIRRORS]


def base_key() -> str:
    return _digest(" ".join(mmdebstrap_command(Path("-"))).encode(), INITRD_DURING_BOOTSTRAP.encode())


def _tree_parts(root: Path) -> Iterator[bytes]:
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root).as_posix().encode()
        if path.is_symlink():
            yield relative + b" -> " + os.readlink(path).encode()
        elif path.is_file():
            yield relative + b"\0" + path.read_bytes()


def recipe_key() -> str:
    """Changes with anything that changes the image: packages, this builder, the overlays."""
    return _digest(base_key().encode(), Path(__file__).read_bytes(),
                   *_tree_parts(ROOTFS_OVERLAY), *_tree_parts(INITRD_OVERLAY))


def log(message: str) -> None:
    print(f"twin-image: {message}", file=sys.stderr, flush=True)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _run(command: list[str], **kwargs: object) -> None:
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-4000:]
        raise RuntimeError(f"{command[0]} failed (exit {result.returncode}):\n{tail}")


def build_base(target: Path) -> None:
    """mmdebstrap's rootfs as a tarball (root mode keeps ownership)."""
    log(f"bootstrapping Debian {SUITE} ({len(PACKAGES)} packages) with mmdebstrap; a few minutes")
    partial = target.with_suffix(".partial.tar")
    _run(mmdebstrap_command(partial), env={**os.environ, "INITRD": INITRD_DURING_BOOTSTRAP})
    partial.rename(target)


def _copy_overlay(source: Path, root: Path) -> None:
    for path in sorted(source.rglob("*")):
        target = root / path.relative_to(source)
        if path.is_symlink():
            target.unlink(missing_ok=True)
            target.symlink_to(os.readlink(path))
        elif path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            executable = path.read_bytes().startswith(b"#!")
            target.chmod(0o755 if executable else 0o644)


def _customise(root: Path) -> str:
    """Overlay, unit links, first-boot machine-id, initramfs. Returns the kernel version."""
    _copy_overlay(ROOTFS_OVERLAY, root)
    systemd_dir = root / "etc/systemd/system"
    for wants, units in ENABLED_UNITS.items():
        (systemd_dir / wants).mkdir(parents=True, exist_ok=True)
        for unit in units:
            link = systemd_dir / wants / unit
            link.unlink(missing_ok=True)
            link.symlink_to(f"/lib/systemd/system/{unit}")
    for unit in MASKED_UNITS:
        masked = systemd_dir / unit
        masked.unlink(missing_ok=True)
        masked.symlink_to("/dev/null")
    alias = systemd_dir / "dbus-org.freedesktop.network1.service"
    alias.unlink(missing_ok=True)
    alias.symlink_to("/lib/systemd/system/systemd-networkd.service")
    # Empty means "not first boot" to systemd 252: Ignition's presets would never apply (pitfall 4).
    (root / "etc/machine-id").write_text("uninitialized\n")
    for stale in [*root.glob("boot/initrd.img-*"), root / "initrd.img", root / "initrd.img.old"]:
        stale.unlink(missing_ok=True)
    kernels = sorted(root.glob("boot/vmlinuz-*"))
    if not kernels:
        raise RuntimeError("no kernel in the bootstrapped root")
    version = kernels[-1].name.removeprefix("vmlinuz-")
    _keep_only_needed_modules(root, version)
    staging = root / "tmp/twin-initrd"
    shutil.rmtree(staging, ignore_errors=True)
    _copy_overlay(INITRD_OVERLAY, staging)
    log("building the initramfs (dracut, Ignition module); about a minute")
    _run(["chroot", os.fspath(root), "dracut", "--no-hostonly", "--add", "ignition", "--omit", DRACUT_OMIT,
          "--add-drivers", DRACUT_DRIVERS, "--include", "/tmp/twin-initrd", "/", "--install", "cp mkdir sleep",
          "--force", "/boot/initrd-twin.img", version])
    shutil.rmtree(staging)
    shutil.rmtree(root / "usr/lib/dracut")  # only the initramfs build needs it
    return version


def _keep_only_needed_modules(root: Path, version: str) -> None:
    """Delete every kernel module but KEPT_MODULES and what they depend on, then depmod."""
    modules = root / "usr/lib/modules" / version
    kept: set[str] = set()
    for name in KEPT_MODULES:
        result = subprocess.run(["chroot", os.fspath(root), "modprobe", "-S", version, "--show-depends",
                                 "--ignore-install", name], capture_output=True, text=True, check=False)
        # `insmod /lib/modules/<version>/kernel/...ko` per module; built-in ones print `builtin <name>`
        kept.update(line.split()[1].split(f"/{version}/", 1)[1] for line in result.stdout.splitlines()
                    if line.startswith("insmod "))
    for path in modules.rglob("*.ko*"):
        if path.relative_to(modules).as_posix() not in kept:
            path.unlink()
    _run(["chroot", os.fspath(root), "depmod", version])


def _karg_area(kargs: str) -> str:
    area = kargs + "\n"
    return area + "#" * (KARG_AREA_SIZE - len(area))


def _write_iso_extras(extras: Path, root: Path, version: str, initrd: Path) -> None:
    """The FCOS-specific files the live ISO carries beside the root tree."""
    pxeboot = extras / "images/pxeboot"
    pxeboot.mkdir(parents=True)
    shutil.copyfile(root / f"boot/vmlinuz-{version}", pxeboot / "vmlinuz")
    shutil.copyfile(initrd, pxeboot / "initrd.img")
    _write_root_image(root, extras / ROOT_IMAGE)
    (extras / "images/ignition.img").write_bytes(bytes(IGNITION_AREA_SIZE))
    isolinux = extras / "isolinux"
    isolinux.mkdir()
    shutil.copyfile("/usr/lib/ISOLINUX/isolinux.bin", isolinux / "isolinux.bin")
    shutil.copyfile("/usr/lib/syslinux/modules/bios/ldlinux.c32", isolinux / "ldlinux.c32")
    isolinux_cfg = ISOLINUX_HEAD + _karg_area(LIVE_KARGS) + KARG_MARKER
    (isolinux / "isolinux.cfg").write_text(isolinux_cfg)
    (extras / "EFI/fedora").mkdir(parents=True)
    grub_cfg = GRUB_HEAD + _karg_area(LIVE_KARGS) + KARG_MARKER + GRUB_TAIL
    (extras / "EFI/fedora/grub.cfg").write_text(grub_cfg)
    coreos = extras / "coreos"
    coreos.mkdir()

    def pretty(value: object) -> str:
        return json.dumps(value, indent=2, sort_keys=True) + "\n"

    (coreos / "igninfo.json").write_text(pretty({"file": "images/ignition.img"}))
    (coreos / "kargs.json").write_text(pretty({
        "default": LIVE_KARGS,
        "files": [
            {"end": "\n", "offset": len(GRUB_HEAD), "pad": "#", "path": "EFI/fedora/grub.cfg"},
            {"end": "\n", "offset": len(ISOLINUX_HEAD), "pad": "#", "path": "isolinux/isolinux.cfg"},
        ],
        "size": KARG_AREA_SIZE,
    }))
    (coreos / "features.json").write_text(pretty({"installer-config": True, "live-initrd-network": True}))


def _write_root_image(root: Path, target: Path) -> None:
    """The installed root as an XFS filesystem image, /var already in the ostree layout: what the
    installer stand-in writes to the root partition, as coreos-installer writes FCOS's disk image
    block by block (copying the tree file by file took minutes under emulation)."""
    log("writing the installed root's filesystem image")
    # whole 4 KiB blocks per file and directory, as on the filesystem
    used = sum(-(-path.lstat().st_size // 4096) * 4096 + 4096 for path in root.rglob("*"))
    # room for XFS's log and what the first boot writes before the installer grows it (300 MiB at least)
    size = max(300 * 1024**2, (used + 48 * 1024**2) // 1024**2 * 1024**2)
    scratch = root / "tmp/twin-root.img"
    with open(scratch, "wb") as handle:
        handle.truncate(size)
    # the root's own mkfs.xfs: a filesystem the twin's kernel is sure to mount
    # two allocation groups (the least mkfs.xfs allows): fewer places to spread the files over
    _run(["chroot", os.fspath(root), "mkfs.xfs", "-q", "-L", "root", "-d", "agcount=2", "/tmp/twin-root.img"])
    scratch.rename(target)
    with tempfile.TemporaryDirectory(prefix="twin-root-") as mountpoint:
        _run(["mount", "-o", "loop", os.fspath(target), mountpoint])
        try:
            _run(["cp", "-a", f"{root}/.", mountpoint])
            deploy = Path(mountpoint) / "ostree/deploy/fedora-coreos"
            deploy.mkdir(parents=True)
            (Path(mountpoint) / "var").rename(deploy / "var")
            (Path(mountpoint) / "var").symlink_to("ostree/deploy/fedora-coreos/var")
        finally:
            _run(["umount", mountpoint])


def _build_iso(root: Path, extras: Path, output: Path) -> None:
    log("writing the live ISO (xorriso)")
    _run(["xorriso", "-as", "mkisofs", "-quiet", "-R", "-V", VOLUME_ID, "-o", os.fspath(output),
          # no -boot-info-table: with it, xorriso 1.5.4 writes lowercase ISO9660 names, which coreos-installer
          # (and embed) do not find; _write_boot_info_table does its job afterwards
          "-b", "isolinux/isolinux.bin", "-no-emul-boot", "-boot-load-size", "4",
          os.fspath(root), os.fspath(extras)])
    _write_boot_info_table(output)


def _write_boot_info_table(iso: Path) -> None:
    """El Torito boot info table in isolinux.bin (bytes 8-24: PVD sector, file sector, length, checksum
    of the file from byte 64 as 32-bit words), which isolinux reads to find itself."""
    import struct

    from tasks.iso import iso9660

    fd = os.open(iso, os.O_RDWR)
    try:
        volume = iso9660.open_volume(fd)
        record = iso9660.lookup(fd, volume, "ISOLINUX/ISOLINUX.BIN")
        data = bytearray(iso9660.read_exact(fd, record.offset, record.length))
        data += bytes(-len(data) % 4)
        checksum = sum(struct.unpack_from(f"<{(len(data) - 64) // 4}I", data, 64)) & 0xFFFFFFFF
        table = struct.pack("<4I", 16, record.offset // 2048, record.length, checksum)
        os.pwrite(fd, table, record.offset + 8)
    finally:
        os.close(fd)


def build_image() -> TwinImage:
    """The cached twin image, built first if the recipe changed (under a lock: one build at a time)."""
    key = recipe_key()
    final = CACHE / key
    image = TwinImage(final / "live.iso", final / "vmlinuz", final / "initrd.img", key)
    if image.iso.exists():
        return image
    with _locked(CACHE / "build.lock"):
        if image.iso.exists():
            return image
        started = time.monotonic()
        base = CACHE / f"base-{base_key()}.tar"
        if not base.exists():
            build_base(base)
        with tempfile.TemporaryDirectory(dir=CACHE, prefix="build-") as scratch:
            root = Path(scratch) / "root"
            root.mkdir()
            _run(["tar", "-C", os.fspath(root), "--numeric-owner", "-xpf", os.fspath(base)])
            version = _customise(root)
            staged = Path(scratch) / "out"
            staged.mkdir()
            (root / "boot/initrd-twin.img").rename(staged / "initrd.img")  # on the ISO once, in images/
            shutil.copyfile(root / f"boot/vmlinuz-{version}", staged / "vmlinuz")
            extras = Path(scratch) / "extras"
            _write_iso_extras(extras, root, version, staged / "initrd.img")
            _build_iso(root, extras, staged / "live.iso")
            seconds = time.monotonic() - started
            (staged / "build.json").write_text(json.dumps({"seconds": round(seconds), "kernel": version}) + "\n")
            for old in CACHE.glob("????????????????"):  # keep one image: they are ~1 GB each
                if old.is_dir() and old.name != key:
                    shutil.rmtree(old, ignore_errors=True)
            staged.rename(final)
        log(f"built {final} in {seconds:.0f} s")
    return image


if __name__ == "__main__":
    built = build_image()
    print(json.dumps({"iso": os.fspath(built.iso), "kernel": os.fspath(built.kernel),
                      "initrd": os.fspath(built.initrd), "key": built.key}, indent=2))
