"""fcos-variant sugar: boot_device (LUKS, mirroring), grub.users and fcos-only checks."""

from __future__ import annotations

import re
from typing import Any

from .dataurl import make_data_url
from .report import Path, Report
from .translate import Obj

RESERVED_TYPE_GUID = "8DA63339-0007-60C0-C436-083AC8230908"
BIOS_TYPE_GUID = "21686148-6449-6E6F-744E-656564454649"
PREP_TYPE_GUID = "9E1A2D38-C612-4316-AA26-8B49521E5A8B"
ESP_TYPE_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
BOOT_DISK = "/dev/disk/by-id/coreos-boot-disk"
S390X_LAYOUTS = ("s390x-eckd", "s390x-virt", "s390x-zfcp")

ERR_REUSE_BY_LABEL = (
    "partitions cannot be reused by label; number must be specified except on boot disk "
    "(/dev/disk/by-id/coreos-boot-disk) or when wipe_table is true"
)
ERR_WRONG_PARTITION_NUMBER = "incorrect partition number; a new partition will be created using reserved label"
ERR_MIRROR_NEEDS_LAYOUT = "boot_device.layout should be specified when boot_device.mirror is specified"
ERR_ROOT_CONSTRAINED = (
    "root partition cannot expand; it is set to fill available space but is followed by an auto-positioned partition"
)
# Butane's wording for this warning could not be read from its source; the check itself is Butane's.
ERR_ROOT_TOO_SMALL = "root partition should be at least 8 GiB (size_mib 8192) to leave room for OS updates"
ROOT_MIN_MIB = 8192
_RESERVED_LABEL_NUMBERS = {"BIOS-BOOT": 1, "PowerPC-PReP-boot": 1, "EFI-SYSTEM": 2, "boot": 3, "root": 4}


def _layouts(minor: int) -> tuple[str, ...]:
    return ("aarch64", "ppc64le", *S390X_LAYOUTS, "x86_64") if minor >= 6 else ("aarch64", "ppc64le", "x86_64")


def validate_fcos_storage(config: dict[str, Any], minor: int, report: Report) -> None:
    """fcos Config.Validate (1.6.0+): Butane runs it before the base schema's checks."""
    boot = config.get("boot_device", {})
    if minor >= 6:
        storage = config.get("storage", {})
        # boot_device.mirror rewrites those disks' tables, so labels there are not reused
        mirrored = set(boot.get("mirror", {}).get("devices", []))
        for index, disk in enumerate(storage.get("disks", [])):
            device = disk.get("device")
            if device != BOOT_DISK and device not in mirrored and disk.get("wipe_table") is not True:
                for p_index, part in enumerate(disk.get("partitions", [])):
                    if not part.get("number") and "label" in part:
                        report.warn(("storage", "disks", index, "partitions", p_index, "number"), ERR_REUSE_BY_LABEL)
        for index, fs in enumerate(storage.get("filesystems", [])):
            path = fs.get("path")
            if path is not None and fs.get("with_mount_unit") is True and not re.match(r"^/(etc|var)(/|$)", path):
                report.error(("storage", "filesystems", index, "path"),
                             "path must be under /etc or /var if with_mount_unit is true")


def validate_fcos(config: dict[str, Any], minor: int, report: Report) -> None:
    """fcos boot_device and grub checks (config/fcos/v1_*/validate.go), after the base checks."""
    boot = config.get("boot_device", {})
    layout = boot.get("layout")
    if layout is not None:
        layouts = _layouts(minor)
        if layout not in layouts:
            report.error(("boot_device", "layout"), "layout must be one of: " + ", ".join(layouts))
        device = boot.get("luks", {}).get("device")
        if layout == "s390x-eckd":
            if not device:
                report.error(("boot_device", "layout"), "device is required for layouts: s390x-eckd, s390x-zfcp")
            elif not re.search(r"/dev/dasd[a-z]$", device):
                report.error(("boot_device", "layout"), "device name must start with /dev/dasd on s390x-eckd layout "
                             "or /dev/sd on s390x-zfcp layout")
        if layout == "s390x-zfcp":
            if not device:
                report.error(("boot_device", "layout"), "device is required for layouts: s390x-eckd, s390x-zfcp")
            elif not re.search(r"/dev/sd[a-z]$", device):
                report.error(("boot_device", "layout"), "device name must start with /dev/dasd on s390x-eckd layout "
                             "or /dev/sd on s390x-zfcp layout")
        if layout in S390X_LAYOUTS and boot.get("mirror", {}).get("devices"):
            report.error(("boot_device", "layout"),
                         "mirroring not supported on layouts: s390x-eckd, s390x-zfcp, s390x-virt")
    luks = boot.get("luks", {})
    if luks.get("cex", {}).get("enabled") is True:
        if layout is None:
            report.error(("boot_device", "luks", "cex"), "when using cex the targeted architecture must match s390x")
        elif layout not in S390X_LAYOUTS:
            report.error(("boot_device", "layout"), "when using cex the targeted architecture must match s390x")
        if luks.get("tang") or luks.get("tpm2") is True:
            report.error(("boot_device", "luks"), "cex is not currently supported on the target platform")
    if len(boot.get("mirror", {}).get("devices", [])) == 1:
        report.error(("boot_device", "mirror", "devices"), "mirroring requires at least two devices")
    if minor >= 3 and boot.get("mirror", {}).get("devices") and not boot.get("layout"):
        # without a layout Butane renders x86_64 partitions, wrong on other architectures:
        # an error from fcos 1.7.0, a warning in the older (stable) specs
        kind = "error" if minor >= 7 else "warning"
        report.add(kind, ("boot_device", "mirror"), ERR_MIRROR_NEEDS_LAYOUT)
    for index, user in enumerate(config.get("grub", {}).get("users", [])):
        if not user.get("name"):
            report.error(("grub", "users", index, "name"), 'field "name" is required')
        if not user.get("password_hash"):
            report.error(("grub", "users", index, "password_hash"), 'field "password_hash" is required')


def _obj(here: Path, **fields: Any) -> Obj:
    obj = Obj(here)
    for key, value in fields.items():
        obj.put(key, value)
    return obj


def _partition(here: Path, label: str, size: int | None, type_guid: str | None) -> Obj:
    part = _obj(here, label=label)
    if size is not None:
        part.put("sizeMiB", size)
    if type_guid is not None:
        part.put("typeGuid", type_guid)
    return part


def boot_device_config(config: dict[str, Any], minor: int) -> Obj | None:
    """The storage config ``boot_device`` expands to (parent of the user's config)."""
    boot = config.get("boot_device", {})
    luks = boot.get("luks", {})
    mirror_devices = boot.get("mirror", {}).get("devices", [])
    want_luks = luks.get("tpm2") is True or bool(luks.get("tang")) or luks.get("cex", {}).get("enabled") is True
    want_mirror = bool(mirror_devices)
    if not want_luks and not want_mirror:
        return None
    layout = boot.get("layout") or "x86_64"
    want_bios = layout == "x86_64"
    want_efi = layout in ("x86_64", "aarch64")
    want_prep = layout == "ppc64le"

    disks: list[Obj] = []
    filesystems: list[Obj] = []
    raids: list[Obj] = []
    luks_list: list[Obj] = []
    for index, device in enumerate(mirror_devices):
        here: Path = ("boot_device", "mirror", "devices", index)
        n = index + 1
        parts: list[Obj] = []
        if want_bios:
            parts.append(_partition(here, f"bios-{n}", 1, BIOS_TYPE_GUID))
        elif want_prep:
            parts.append(_partition(here, f"prep-{n}", 4, PREP_TYPE_GUID))
        else:
            parts.append(_partition(here, f"reserved-{n}", 1, RESERVED_TYPE_GUID))
        if want_efi:
            parts.append(_partition(here, f"esp-{n}", 127, ESP_TYPE_GUID))
        else:
            parts.append(_partition(here, f"reserved-{n}", 1, RESERVED_TYPE_GUID))
        parts.append(_partition(here, f"boot-{n}", 384, None))
        parts.append(_partition(here, f"root-{n}", None, None))
        disks.append(_obj(here, device=device, partitions=parts, wipeTable=True))
        if want_efi:
            filesystems.append(_obj(here, device=f"/dev/disk/by-partlabel/esp-{n}", format="vfat",
                                    label=f"esp-{n}", wipeFilesystem=True))
    if want_mirror:
        here = ("boot_device", "mirror")
        count = len(disks)
        raids.append(_obj(here, devices=[f"/dev/disk/by-partlabel/boot-{i + 1}" for i in range(count)],
                          level="raid1", name="md-boot", options=["--metadata=1.0"]))
        raids.append(_obj(here, devices=[f"/dev/disk/by-partlabel/root-{i + 1}" for i in range(count)],
                          level="raid1", name="md-root"))
        filesystems.append(_obj(here, device="/dev/md/md-boot", format="ext4", label="boot", wipeFilesystem=True))
    if want_luks:
        here = ("boot_device", "luks")
        if layout == "s390x-eckd":
            device = luks.get("device", "") + "2"
        elif layout == "s390x-zfcp":
            device = luks.get("device", "") + "4"
        elif want_mirror:
            device = "/dev/md/md-root"
        else:
            device = "/dev/disk/by-partlabel/root"
        entry = Obj(here)
        if luks.get("cex", {}).get("enabled") is True:
            entry.put("cex", _obj(here + ("cex",), enabled=True), here + ("cex",))
        else:
            clevis = Obj(here)
            if luks.get("tang"):
                tangs = []
                for t_index, tang in enumerate(luks["tang"]):
                    t_here = here + ("tang", t_index)
                    obj = Obj(t_here)
                    obj.put("url", tang.get("url", ""), t_here + ("url",))
                    for key in ("thumbprint", "advertisement"):
                        if key in tang:
                            obj.put(key, tang[key], t_here + (key,))
                    tangs.append(obj)
                clevis.put("tang", tangs, here + ("tang",))
            for key in ("threshold", "tpm2"):
                if key in luks:
                    clevis.put(key, luks[key], here + (key,))
            entry.put("clevis", clevis)
        entry.put("device", device)
        if "discard" in luks:
            entry.put("discard", luks["discard"], here + ("discard",))
        entry.put("label", "luks-root")
        entry.put("name", "root")
        entry.put("wipeVolume", True)
        luks_list.append(entry)
    root_device = "/dev/mapper/root" if want_luks else "/dev/md/md-root"
    filesystems.append(_obj(("boot_device",), device=root_device, format="xfs", label="root", wipeFilesystem=True))

    storage = Obj(("boot_device",))
    if disks:
        storage.put("disks", disks)
    storage.put("filesystems", filesystems)
    if luks_list:
        storage.put("luks", luks_list)
    if raids:
        storage.put("raid", raids)
    return _obj(("boot_device",), storage=storage)


def grub_config(config: dict[str, Any]) -> Obj | None:
    """``grub.users`` -> /boot filesystem + an appended /boot/grub2/user.cfg."""
    users = config.get("grub", {}).get("users", [])
    if not users:
        return None
    here: Path = ("grub", "users")
    names = " ".join(user.get("name", "") for user in users)
    commands = "\n".join(f"password_pbkdf2 {u.get('name', '')} {u.get('password_hash', '')}" for u in users)
    text = f'# Generated by Butane\n\nset superusers="{names}"\n{commands}\n'
    url, compression = make_data_url(text.encode("utf-8"), None)
    resource = _obj(here, compression=compression, source=url)
    file = _obj(here, path="/boot/grub2/user.cfg", append=[resource])
    fs = _obj(here, device="/dev/disk/by-label/boot", format="ext4", path="/boot")
    storage = _obj(here, files=[file], filesystems=[fs])
    return _obj(here, storage=storage)


def partition_warnings(ignition: Obj, report: Report, root_checks: bool) -> None:
    """Checks on the partitions after boot_device is merged in: reserved labels on the wrong
    partition number (fcos 1.3.0+), and with ``root_checks`` (1.6.0+) a root partition smaller
    than 8 GiB or unable to grow."""
    for disk in (ignition.get("storage") or {}).get("disks", []):
        partitions = disk.get("partitions", [])
        for index, part in enumerate(partitions):
            label = part.get("label")
            if label is None:
                continue
            if label == "root" and root_checks:
                size = part.get("sizeMiB")
                if not size:
                    # "fill the free space" is cut short by any later auto-placed partition
                    if any(not later.get("startMiB") for later in partitions[index + 1 :]):
                        report.warn(part.origin("label"), ERR_ROOT_CONSTRAINED)
                elif size < ROOT_MIN_MIB:
                    report.warn(part.origin("sizeMiB"), ERR_ROOT_TOO_SMALL)
            if disk.get("wipeTable") is True:
                continue
            if label in _RESERVED_LABEL_NUMBERS and part.get("number", 0) != _RESERVED_LABEL_NUMBERS[label]:
                report.warn(part.origin("label"), ERR_WRONG_PARTITION_NUMBER)
