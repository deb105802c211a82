"""A local FCOS download mirror for tests: HTTP on 127.0.0.1, Range support, injected faults.

    with Mirror(tmp_path / "mirror") as mirror:          # started: the port is known now
        published = publish_fcos(mirror.root, iso, key, base_url=mirror.url(""))
        mirror.drop_after(path, 1_000_000, times=2)      # cut the connection mid-body, twice
        mirror.fail(path, 503, times=3)                  # then answer 503 three times
        ...
        mirror.requests                                   # [(method, path, range header or None)]
        mirror.stop()                                     # from here on, any download must fail

Files are read at request time, so a tree can be published (or changed) after the mirror started.
Faults are per path (relative to root, no leading slash) and consumed one per request, in order;
`mirror.faults` is the plain dict behind the helper methods and may be set directly.
"""

from __future__ import annotations

import email.utils
import json
import os
import re
import shutil
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.signing import SigningKey
from tests.tools import sha256_file

HTML_ERROR_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Service Unavailable</title></head>\n"
                   b"<body><h1>Sorry, the mirror is under maintenance</h1></body></html>\n")


@dataclass
class Fault:
    """One misbehaviour for one request to a path.

    kind: "drop" (send headers, `after_bytes` of body, then close the connection),
          "stall" (send `after_bytes`, then hang for `seconds` before closing: time for a Ctrl-C),
          "status" (answer `status` with a short body), "ignore_range" (answer 200 with the whole
          file even when a Range was asked), "html" (200 text/html error page instead of the file).
    times: how many requests it applies to; None = every request until removed.
    """

    kind: str
    times: int | None = 1
    after_bytes: int = 0
    status: int = 500
    seconds: float = 0.0


class Mirror:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.faults: dict[str, list[Fault] | Fault] = {}
        self.requests: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> Mirror:
        mirror = self

        class Handler(_Handler):
            pass

        Handler.mirror = mirror
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"mirror:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port: any later request gets 'connection refused'."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Mirror:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses and assertions -----------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def url(self, relpath: str | Path) -> str:
        return self.base_url + urllib.parse.quote(os.fspath(relpath).lstrip("/"))

    def requests_for(self, relpath: str) -> list[tuple[str, str, str | None]]:
        path = "/" + relpath.lstrip("/")
        with self._lock:
            return [r for r in self.requests if r[1] == path]

    # --- fault injection --------------------------------------------------------------------------
    def add_fault(self, relpath: str, fault: Fault) -> None:
        key = relpath.lstrip("/")
        with self._lock:
            existing = self.faults.get(key, [])
            queue = [existing] if isinstance(existing, Fault) else list(existing)
            queue.append(fault)
            self.faults[key] = queue

    def drop_after(self, relpath: str, after_bytes: int, *, times: int | None = 1) -> None:
        self.add_fault(relpath, Fault("drop", times=times, after_bytes=after_bytes))

    def stall_after(self, relpath: str, after_bytes: int, *, seconds: float = 30.0,
                    times: int | None = 1) -> None:
        self.add_fault(relpath, Fault("stall", times=times, after_bytes=after_bytes, seconds=seconds))

    def fail(self, relpath: str, status: int, *, times: int | None = 1) -> None:
        self.add_fault(relpath, Fault("status", times=times, status=status))

    def ignore_range(self, relpath: str, *, times: int | None = None) -> None:
        self.add_fault(relpath, Fault("ignore_range", times=times))

    def serve_html(self, relpath: str, *, times: int | None = 1) -> None:
        self.add_fault(relpath, Fault("html", times=times))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_fault(self, relpath: str) -> Fault | None:
        """The fault for this request (consuming one use of it), or None."""
        with self._lock:
            entry = self.faults.get(relpath)
            if entry is None:
                return None
            queue = [entry] if isinstance(entry, Fault) else list(entry)
            while queue and queue[0].times is not None and queue[0].times <= 0:
                queue.pop(0)
            if not queue:
                self.faults.pop(relpath, None)
                return None
            fault = queue[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times == 0:
                    queue.pop(0)
            if queue:
                self.faults[relpath] = queue
            else:
                self.faults.pop(relpath, None)
            return fault

    def _log(self, method: str, path: str, range_header: str | None) -> None:
        with self._lock:
            self.requests.append((method, path, range_header))


class _Handler(BaseHTTPRequestHandler):
    mirror: Mirror
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows assertions instead
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, *, head: bool) -> None:
        raw_path = urllib.parse.urlsplit(self.path).path
        range_header = self.headers.get("Range")
        self.mirror._log(self.command, raw_path, range_header)
        relpath = urllib.parse.unquote(raw_path).lstrip("/")
        fault = self.mirror._take_fault(relpath)

        if fault and fault.kind == "status":
            return self._send_body(fault.status, f"error {fault.status}\n".encode(), "text/plain", head)
        if fault and fault.kind == "html":
            return self._send_body(200, HTML_ERROR_PAGE, "text/html; charset=utf-8", head)

        file = (self.mirror.root / relpath).resolve()
        if self.mirror.root.resolve() not in file.parents or not file.is_file():
            return self._send_body(404, b"not found\n", "text/plain", head)

        size = file.stat().st_size
        start, end = 0, size - 1
        status = 200
        wanted = parse_range(range_header, size) if range_header else None
        if wanted and not (fault and fault.kind == "ignore_range"):
            if isinstance(wanted, str):  # "unsatisfiable"
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = wanted
            status = 206
        length = end - start + 1 if size else 0

        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Last-Modified", email.utils.formatdate(file.stat().st_mtime, usegmt=True))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head or length == 0:
            return
        limit = length
        if fault and fault.kind in ("drop", "stall"):
            limit = min(length, fault.after_bytes)
        with file.open("rb") as f:
            self.wfile.flush()
            try:
                self.connection.sendfile(f, offset=start, count=limit)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
        if fault and fault.kind == "stall":
            self._stall(fault.seconds)
        if limit < length:  # the injected drop: close mid-body, as a flaky network would
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _stall(self, seconds: float) -> None:
        """Hang mid-body (a stuck network) until the time is up or the mirror stops."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.mirror._server is not None:
            time.sleep(0.05)

    def _send_body(self, status: int, body: bytes, content_type: str, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)


def parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """A single `bytes=a-b` / `bytes=a-` / `bytes=-n` range; None = ignore (serve the whole file)."""
    match = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if not match or (not match[1] and not match[2]):
        return None
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:
        start, end = max(0, size - int(match[2])), size - 1
    if start >= size or start > end:
        return "unsatisfiable"
    return start, end


# --- a mirror tree shaped like builds.coreos.fedoraproject.org -------------------------------------

def fcos_iso_relpath(release: str, arch: str = "x86_64", stream: str = "stable") -> str:
    return f"prod/streams/{stream}/builds/{release}/{arch}/fedora-coreos-{release}-live-iso.{arch}.iso"


def _place(source: Path, target: Path) -> None:
    """Hard-link when possible (1 GiB benchmark ISOs), else copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def publish_fcos(root: Path, iso: Path, key: SigningKey, *, release: str = "44.20260707.3.1",
                 arch: str = "x86_64", stream: str = "stable", base_url: str,
                 armor: bool = False, textmode: bool = False, meta_json: bool = True,
                 write_stream: bool = True) -> dict[str, str]:
    """Lay out streams/<stream>.json, the build directory (ISO, .sig, meta.json) and keys/test.asc.

    base_url is the mirror root the stream's URLs point at (e.g. mirror.url("") or
    "https://builds.coreos.fedoraproject.org/" to exercise `fcos.mirror` rewriting). Returns
    stream_url, keyring_url, fingerprint, iso_url, sig_url, sha256, release, iso_relpath — the
    *_url values under base_url.
    """
    base = base_url if base_url.endswith("/") else base_url + "/"
    iso_rel = fcos_iso_relpath(release, arch, stream)
    iso_target = root / iso_rel
    _place(iso, iso_target)
    key.sign(iso_target, armor=armor, textmode=textmode)
    sha256 = sha256_file(iso_target)
    if meta_json:  # the subset of coreos-assembler's meta.json a pinned fetch reads
        meta = {"buildid": release, "coreos-assembler.basearch": arch,
                "images": {"live-iso": {"path": iso_target.name, "sha256": sha256,
                                        "size": iso_target.stat().st_size}}}
        (iso_target.parent / "meta.json").write_text(json.dumps(meta, indent=2))
    keys = root / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    (keys / "test.asc").write_bytes(key.public_armored)
    if write_stream:
        stream_doc = stream_metadata(stream, {arch: (release, base + iso_rel, sha256)})
        streams = root / "streams"
        streams.mkdir(parents=True, exist_ok=True)
        (streams / f"{stream}.json").write_text(json.dumps(stream_doc, indent=4))
    return {"stream_url": f"{base}streams/{stream}.json", "keyring_url": f"{base}keys/test.asc",
            "fingerprint": key.fingerprint, "iso_url": base + iso_rel, "sig_url": base + iso_rel + ".sig",
            "sha256": sha256, "release": release, "iso_relpath": iso_rel}


def stream_metadata(stream: str, isos: dict[str, tuple[str, str, str]]) -> dict[str, Any]:
    """Minimal stream JSON: {arch: (release, iso location, sha256)} → the real document's shape."""
    architectures = {}
    for arch, (release, location, sha256) in isos.items():
        architectures[arch] = {"artifacts": {"metal": {"release": release, "formats": {"iso": {"disk": {
            "location": location, "signature": location + ".sig", "sha256": sha256}}}}}}
    return {"stream": stream,
            "metadata": {"last-modified": "2026-07-21T14:07:12Z", "generator": "tests/mirror.py"},
            "architectures": architectures}


PXE_NAMES = {"kernel": "live-kernel-{arch}", "initramfs": "live-initramfs.{arch}.img",
             "rootfs": "live-rootfs.{arch}.img"}


def publish_pxe(root: Path, artifacts: dict[str, Path], key: SigningKey, *, release: str = "44.20260707.3.1",
                arch: str = "x86_64", stream: str = "stable", base_url: str) -> dict[str, str]:
    """Add the PXE kernel, initramfs and rootfs of a release published by publish_fcos: placed in its
    build directory, signed, listed in its meta.json and in the stream (…metal.formats.pxe) with their
    sha256. Returns {kind: relpath}."""
    base = base_url if base_url.endswith("/") else base_url + "/"
    build_dir = Path(fcos_iso_relpath(release, arch, stream)).parent
    formats: dict[str, dict[str, str]] = {}
    placed: dict[str, str] = {}
    meta_path = root / build_dir / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {"images": {}}
    for kind, source in artifacts.items():
        rel = os.fspath(build_dir / f"fedora-coreos-{release}-{PXE_NAMES[kind].format(arch=arch)}")
        _place(source, root / rel)
        key.sign(root / rel)
        sha256 = sha256_file(root / rel)
        formats[kind] = {"location": base + rel, "signature": base + rel + ".sig", "sha256": sha256}
        meta["images"][f"live-{kind}"] = {"path": Path(rel).name, "sha256": sha256}
        placed[kind] = rel
    meta_path.write_text(json.dumps(meta, indent=2))
    stream_path = root / "streams" / f"{stream}.json"
    doc = json.loads(stream_path.read_text())
    doc["architectures"][arch]["artifacts"]["metal"]["formats"]["pxe"] = formats
    stream_path.write_text(json.dumps(doc, indent=4))
    return placed
