"""HTTP(S) and file:// downloads for the fetch step: retried, resumable, hashed while streaming.

`download(url, part, ...)` writes into a `.part` file and never renames it: the caller decides what
a finished file becomes (fetch checks its sha256 first). A `.part` left by an interrupted run (a
dropped connection, Ctrl-C, a killed doit) is resumed with an HTTP Range request; a sidecar
`<part>.source` records which file it belongs to, so a part of another release is never resumed.
Memory stays constant: 1 MiB chunks are hashed and written as they arrive.

`read_url(url, ...)` fetches the small files (stream metadata, signature, keyring, meta.json).

Transient failures (connection errors, timeouts, HTTP 408/429/5xx) are retried with exponential
backoff; everything else is a BuildError with one line saying what, where and what to do.
"""

from __future__ import annotations

import functools
import hashlib
import http.client
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from tasks import common
from tasks.common import BuildError, log

if TYPE_CHECKING:  # imported where used: requests costs ~80 ms of every doit command's start-up
    import requests

CHUNK = 1 << 20  # 1 MiB: big enough that Python's per-chunk cost vanishes, small enough for memory
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
SMALL_FILE_LIMIT = 64 << 20  # stream JSON, keyrings and signatures are KBs; refuse to buffer an ISO


@functools.cache
def network_errors() -> tuple[type[BaseException], ...]:
    """What a dropped or stalled connection raises while the body streams."""
    import requests
    import urllib3

    return (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
            requests.exceptions.Timeout, urllib3.exceptions.ProtocolError, urllib3.exceptions.ReadTimeoutError,
            http.client.IncompleteRead, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: `attempts` in all, waiting backoff, 2×backoff, … (capped) in between."""

    attempts: int = 5
    backoff: float = 2.0
    max_backoff: float = 60.0
    timeout: float = 30.0  # connect and per-read timeout, seconds

    def delay(self, failures: int) -> float:
        return float(min(self.max_backoff, self.backoff * 2 ** (failures - 1)))


@dataclass(frozen=True)
class Downloaded:
    sha256: str
    size: int
    resumed_at: tuple[int, ...]  # byte offsets this download resumed from (empty: one go)


class Transient(Exception):
    """A failure worth another attempt (the message says what happened)."""


# --- URLs --------------------------------------------------------------------------------------------

def is_remote(url: str) -> bool:
    return url.startswith(("http://", "https://"))


def local_path(url: str) -> Path:
    """file:///abs/path → /abs/path; a plain path stays as it is."""
    if url.startswith("file:"):
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise BuildError(f"{url}: file:// URLs with a host are not supported",
                             hint="use file:///absolute/path")
        return Path(urllib.parse.unquote(parts.path))
    return Path(url)


# --- small files -------------------------------------------------------------------------------------

def read_url(url: str, *, what: str, policy: RetryPolicy, session: requests.Session | None = None) -> bytes:
    """The whole content of a small file at an http(s)/file URL or a local path."""
    if not is_remote(url):
        path = local_path(url)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise BuildError(f"{what} not found: {path}",
                             hint="check the path or URL in the config") from None
        except OSError as error:
            raise BuildError(f"{what}: cannot read {path}: {error.strerror}") from None
    if session is None:
        import requests

        session = requests.Session()
    failures = 0
    while True:
        try:
            return _get_small(session, url, what=what, policy=policy)
        except Transient as problem:
            failures += 1
            if failures >= policy.attempts:
                raise BuildError(f"{what}: {problem} from {url}, {failures} attempts",
                                 hint="check the network, or set fcos.mirror to a reachable mirror") from None
            _wait(what, str(problem), failures, policy)


def _get_small(session: requests.Session, url: str, *, what: str, policy: RetryPolicy) -> bytes:
    try:
        with session.get(url, stream=True, timeout=policy.timeout) as response:
            _check_status(response, url, what)
            body = bytearray()
            for chunk in response.iter_content(CHUNK):
                body += chunk
                if len(body) > SMALL_FILE_LIMIT:
                    raise BuildError(f"{what} at {url} is larger than {SMALL_FILE_LIMIT >> 20} MiB",
                                     hint="is the URL right?")
            return bytes(body)
    except network_errors() as error:
        raise Transient(describe_network_error(error)) from None


def _check_status(response: requests.Response, url: str, what: str) -> None:
    status = response.status_code
    if status in RETRYABLE_STATUS:
        raise Transient(f"HTTP {status} {response.reason or ''}".strip())
    if status == 404 or status == 410:
        raise BuildError(f"{what} not found: HTTP {status} from {url}",
                         hint="check the release, the stream and fcos.mirror")
    if status >= 400:
        raise BuildError(f"{what}: HTTP {status} {response.reason or ''} from {url}",
                         hint="check the URL and the server's access rules")


def describe_network_error(error: BaseException) -> str:
    import requests
    import urllib3

    text = str(error)
    if "IncompleteRead" in text or isinstance(error, (requests.exceptions.ChunkedEncodingError,
                                                      http.client.IncompleteRead)):
        return "connection dropped mid-transfer"
    if isinstance(error, (requests.exceptions.Timeout, TimeoutError, urllib3.exceptions.ReadTimeoutError)):
        return "timed out"
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "NameResolutionError" in text:
        return "host name not resolvable"
    return "connection failed"


def _wait(what: str, problem: str, failures: int, policy: RetryPolicy) -> None:
    delay = policy.delay(failures)
    log(f"{what}: {problem}; retrying in {delay:g} s (attempt {failures + 1} of {policy.attempts})")
    time.sleep(delay)


# --- big files ---------------------------------------------------------------------------------------

class Tee(Protocol):
    """Also gets every byte of the file, in order (a signature check running alongside)."""

    def feed(self, chunk: bytes) -> None: ...

    def abandon(self) -> None: ...


def download(url: str, part: Path, *, what: str, policy: RetryPolicy, identity: str | None = None,
             progress: bool | None = None, tee: Tee | None = None) -> Downloaded:
    """Download url into part (resuming what an earlier attempt left); return its sha256 and size.

    identity names the content (default: the URL); a part recorded under another identity is
    discarded rather than resumed. progress: None = a tqdm bar on a terminal, plain lines otherwise.
    tee gets the file's bytes as they are hashed (a resumed part's first), or is abandoned.
    """
    identity = identity or url
    part.parent.mkdir(parents=True, exist_ok=True)
    source = part.with_name(part.name + ".source")
    if part.exists() and read_source(source).get("identity") != identity:
        part.unlink()
    if not is_remote(url):
        return _copy_local(local_path(url), part, what=what, progress=progress, tee=tee)

    import requests

    state = _PartState.from_disk(part, tee)
    session = requests.Session()
    failures = 0
    resumed_at: list[int] = []
    while True:
        if state.size:
            resumed_at.append(state.size)
            log(f"{what}: resuming at byte {state.size:,} ({state.size / (1 << 20):.1f} MiB already here)")
        try:
            total = _attempt(session, url, part, state, what=what, policy=policy, progress=progress,
                             identity=identity, source=source)
            if total is not None and state.size != total:
                raise Transient(f"download ended at byte {state.size:,} of {total:,}")
            return Downloaded(sha256=state.hasher.hexdigest(), size=state.size, resumed_at=tuple(resumed_at))
        except Transient as problem:
            failures += 1
            if failures >= policy.attempts:
                raise BuildError(
                    f"{what}: {problem} at byte {state.size:,} from {url}, {failures} attempts",
                    hint=f"the partial file {part} is kept; run doit again to resume") from None
            _wait(what, f"{problem} at byte {state.size:,}", failures, policy)


def read_source(source: Path) -> dict[str, Any]:
    try:
        value = json.loads(source.read_text())
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}


class _PartState:
    """Bytes on disk and the running sha256 over exactly those bytes."""

    def __init__(self, tee: Tee | None = None) -> None:
        self.hasher = hashlib.sha256()
        self.size = 0
        self.tee = tee

    @classmethod
    def from_disk(cls, part: Path, tee: Tee | None = None) -> _PartState:
        state = cls(tee)
        if part.exists():  # resuming after a restart: hash what is already here first
            with part.open("rb") as f:
                while chunk := f.read(CHUNK):
                    state.update(chunk)
        return state

    def update(self, chunk: bytes) -> None:
        self.hasher.update(chunk)
        if self.tee is not None:
            self.tee.feed(chunk)
        self.size += len(chunk)

    def restart(self, part: Path) -> None:
        self.hasher = hashlib.sha256()
        self.size = 0
        if self.tee is not None:
            self.tee.abandon()
            self.tee = None
        part.unlink(missing_ok=True)


def _attempt(session: requests.Session, url: str, part: Path, state: _PartState, *, what: str,
             policy: RetryPolicy, progress: bool | None, identity: str, source: Path) -> int | None:
    """One GET, appending to part; returns the full size when the server said it, else None."""
    headers = {"Accept-Encoding": "identity"}  # the sha256 is over the bytes as served
    if state.size:
        headers["Range"] = f"bytes={state.size}-"
        validator = read_source(source).get("validator")
        if validator:  # the file changed upstream → the server sends it whole instead (200)
            headers["If-Range"] = validator
    try:
        with session.get(url, headers=headers, stream=True, timeout=policy.timeout) as response:
            if response.status_code == 416 and state.size:
                total = content_range_total(response.headers.get("Content-Range", ""))
                if total == state.size:
                    return total  # the part was already complete
                log(f"{what}: the server refused to resume at byte {state.size:,}; starting over")
                state.restart(part)
                raise Transient("resume refused")
            _check_status(response, url, what)
            if response.status_code not in (200, 206):
                raise BuildError(f"{what}: unexpected HTTP {response.status_code} from {url}")
            if state.size and response.status_code == 200:
                log(f"{what}: the server ignored the Range request; downloading from the start")
                state.restart(part)
            elif response.status_code == 206:
                start = content_range_start(response.headers.get("Content-Range", ""))
                if start != state.size:
                    log(f"{what}: the server resumed at {start} instead of {state.size}; starting over")
                    state.restart(part)
                    raise Transient("mismatched resume")
            length = response.headers.get("Content-Length")
            total = state.size + int(length) if length and length.isdigit() else None
            if state.size == 0:
                validator = response.headers.get("ETag") or response.headers.get("Last-Modified")
                source.write_text(json.dumps({"identity": identity, "url": url, "validator": validator}))
            chunks = body_chunks(response)
            first = next(chunks, b"")
            refuse_html(first, response.headers.get("Content-Type", ""), url=url, what=what)
            with open_part(part) as file, _progress(what, total, state.size, progress) as advance:
                _write(file, first, state, part)
                advance(len(first))
                for chunk in chunks:
                    _write(file, chunk, state, part)
                    advance(len(chunk))
            return total
    except network_errors() as error:
        raise Transient(describe_network_error(error)) from None


def body_chunks(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives, up to 1 MiB at a time, keeping every byte received before a drop.

    iter_content would lose the partial last chunk when the connection drops (urllib3 raises instead
    of returning the short read); read1 returns what one socket read brought, so resume starts
    exactly where the data stopped.
    """
    raw = response.raw
    if not hasattr(raw, "read1"):  # urllib3 < 2
        yield from response.iter_content(CHUNK)
        return
    while chunk := raw.read1(CHUNK):
        yield chunk


def open_part(part: Path) -> IO[bytes]:
    """The part, for appending, unbuffered: a full disk fails the write that hit it (one clear error),
    not a later flush when the file is closed."""
    return part.open("ab", buffering=0)


def _write(file: IO[bytes], chunk: bytes, state: _PartState, part: Path) -> None:
    try:
        view = memoryview(chunk)
        while view:  # an unbuffered write may take only part of the chunk
            view = view[file.write(view) or 0:]
    except OSError as error:
        if state.tee is not None:  # the part may hold less than was fed: no resumable verdict
            state.tee.abandon()
            state.tee = None
        raise disk_error(error, part) from None
    state.update(chunk)


def disk_error(error: OSError, part: Path) -> BuildError:
    """A full disk while downloading: the hint says the download will resume."""
    return common.disk_error(error, part, then=": the download resumes where it stopped")


def refuse_html(first_chunk: bytes, content_type: str, *, url: str, what: str) -> None:
    """A captive portal or a broken mirror answers 200 with a web page: never take it for the file."""
    head = first_chunk[:512].lstrip().lower()
    if content_type.lower().startswith("text/html") or head.startswith((b"<!doctype html", b"<html")):
        raise BuildError(f"{what}: {url} served an HTML page instead of the file",
                         hint="a proxy, captive portal or broken mirror? open the URL in a browser, "
                              "check fcos.mirror")


def content_range_start(header: str) -> int | None:
    try:
        return int(header.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def content_range_total(header: str) -> int | None:
    try:
        return int(header.rsplit("/", 1)[1])
    except (IndexError, ValueError):
        return None


def _copy_local(path: Path, part: Path, *, what: str, progress: bool | None, tee: Tee | None = None) -> Downloaded:
    """file:// "download": a hashed copy (resuming like HTTP would, by seeking)."""
    state = _PartState.from_disk(part, tee)
    try:
        source = path.open("rb")
    except FileNotFoundError:
        raise BuildError(f"{what} not found: {path}", hint="check fcos.mirror / the path") from None
    except OSError as error:
        raise BuildError(f"{what}: cannot read {path}: {error.strerror}") from None
    with source:
        total = os.fstat(source.fileno()).st_size
        if state.size > total:
            state.restart(part)
        source.seek(state.size)
        first = source.read(CHUNK)
        refuse_html(first, "", url=path.as_uri(), what=what)
        with open_part(part) as file, _progress(what, total, state.size, progress) as advance:
            chunk = first
            while chunk:
                _write(file, chunk, state, part)
                advance(len(chunk))
                chunk = source.read(CHUNK)
    return Downloaded(sha256=state.hasher.hexdigest(), size=state.size, resumed_at=())


# --- progress ----------------------------------------------------------------------------------------

class _progress:
    """A tqdm bar on a terminal; otherwise a plain line at each quarter (CI logs stay short)."""

    def __init__(self, what: str, total: int | None, initial: int, enabled: bool | None) -> None:
        self.what, self.total, self.done = what, total, initial
        self.interactive = sys.stderr.isatty() if enabled is None else enabled
        self.bar: Any = None
        self.next_quarter = (initial * 4 // total + 1) if total else 0
        self.started = time.monotonic()
        self.initial = initial

    def __enter__(self) -> Any:
        if self.interactive:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, initial=self.initial, unit="B", unit_scale=True,
                            unit_divisor=1024, desc=self.what, file=sys.stderr, mininterval=0.5)
            return self.bar.update
        return self.advance

    def advance(self, count: int) -> None:
        self.done += count
        if self.total and self.done * 4 >= self.next_quarter * self.total:
            elapsed = max(time.monotonic() - self.started, 1e-6)
            rate = (self.done - self.initial) / elapsed / (1 << 20)
            log(f"{self.what}: {self.done * 100 // self.total}% "
                f"({self.done / 2**20:.1f} of {self.total / 2**20:.1f} MiB, "
                f"{rate:.0f} MiB/s)")
            self.next_quarter = self.done * 4 // self.total + 1

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()
