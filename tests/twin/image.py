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
    f"coreos.liveiso={VOLUME_ID} ignition.firstboot ignition.platform.id=metal twin.live"
)
# The initramfs: Ignition plus what the twin's virtual hardware needs (spike: "lean" initrd).
DRACUT_OMIT = "kernel-modules kernel-modules-extra crypt dm nvdimm resume lunmask virtiofs overlay-root plymouth"
DRACUT_DRIVERS = ("virtio_blk virtio_pci virtio_scsi virtio_net ext4 xfs isofs sr_mod cdrom ata_piix "
                  "ata_generic overlay qemu_fw_cfg")
# What the twin's virtual machines never use: less for the installer to copy under emulation.
PRUNED = ("usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info")
PRUNED_MODULES = ("sound", "drivers/gpu", "drivers/media", "drivers/net/wireless", "drivers/net/ethernet",
                  "drivers/infiniband", "drivers/staging", "drivers/bluetooth", "drivers/isdn", "drivers/mtd",
                  "drivers/iio", "drivers/usb", "drivers/hid", "drivers/video", "drivers/net/can",
                  "drivers/net/usb", "drivers/hwmon", "drivers/platform", "drivers/misc", "drivers/mmc",
                  "drivers/thunderbolt", "drivers/nfc", "drivers/pinctrl", "drivers/regulator", "drivers/power",
                  "drivers/mfd", "drivers/leds", "drivers/rtc", "drivers/spi", "drivers/i2c",
                  "net/wireless", "net/mac80211", "net/bluetooth", "net/netfilter", "net/sched")
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


def base_key() -> str:
    return _digest(SUITE.encode(), "\n".join(MIRRORS).encode(), " ".join(PACKAGES).encode())


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
    _run(["mmdebstrap", "--variant=minbase", "--include=" + ",".join(PACKAGES), SUITE, os.fspath(partial),
          *MIRRORS])
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
    for relative in PRUNED:
        shutil.rmtree(root / relative, ignore_errors=True)
    for relative in PRUNED_MODULES:
        shutil.rmtree(root / f"usr/lib/modules/{version}/kernel" / relative, ignore_errors=True)
    _run(["chroot", os.fspath(root), "depmod", version])
    staging = root / "tmp/twin-initrd"
    shutil.rmtree(staging, ignore_errors=True)
    _copy_overlay(INITRD_OVERLAY, staging)
    log("building the initramfs (dracut, Ignition module); about a minute")
    _run(["chroot", os.fspath(root), "dracut", "--no-hostonly", "--add", "ignition", "--omit", DRACUT_OMIT,
          "--add-drivers", DRACUT_DRIVERS, "--include", "/tmp/twin-initrd", "/", "--install", "cp mkdir sleep",
          "--force", "/boot/initrd-twin.img", version])
    shutil.rmtree(staging)
    return version


def _karg_area(kargs: str) -> str:
    area = kargs + "\n"
    return area + "#" * (KARG_AREA_SIZE - len(area))


def _write_iso_extras(extras: Path, root: Path, version: str) -> None:
    """The FCOS-specific files the live ISO carries beside the root tree."""
    pxeboot = extras / "images/pxeboot"
    pxeboot.mkdir(parents=True)
    shutil.copyfile(root / f"boot/vmlinuz-{version}", pxeboot / "vmlinuz")
    shutil.copyfile(root / "boot/initrd-twin.img", pxeboot / "initrd.img")
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
            extras = Path(scratch) / "extras"
            _write_iso_extras(extras, root, version)
            staged = Path(scratch) / "out"
            staged.mkdir()
            shutil.copyfile(root / f"boot/vmlinuz-{version}", staged / "vmlinuz")
            shutil.copyfile(root / "boot/initrd-twin.img", staged / "initrd.img")
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
