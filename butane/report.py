"""Report entries (errors/warnings) located by YAML path and line, Butane style."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

Path: TypeAlias = tuple[str | int, ...]  # of str keys and int list indices


class ButaneError(Exception):
    """Translation failed; str() is one line naming the YAML path and line."""

    def __init__(self, message: str, entries: list[str] | None = None, summary: str | None = None) -> None:
        super().__init__(message)
        self.entries = entries if entries is not None else [message]
        # what Butane's CLI prints after "Error translating config: "
        self.summary = summary or message


def path_text(path: Path) -> str:
    return "$" + "".join(f".{elem}" for elem in path)


@dataclass
class Locations:
    """Positions of YAML nodes by path: value positions, and key positions for map keys."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)

    def find(self, path: Path) -> tuple[int, int] | None:
        """Position of the node at ``path``, or of its nearest existing ancestor."""
        probe = tuple(path)
        while probe:
            pos = self.values.get(probe)
            if pos is not None:
                return pos
            probe = probe[:-1]
        return self.values.get(())


@dataclass
class Entry:
    kind: str  # "error" or "warning"
    path: Path | None
    message: str
    position: tuple[int, int] | None = None

    def render(self) -> str:
        if self.path is None:
            if self.position:
                return f"{self.kind} at line {self.position[0]} col {self.position[1]}: {self.message}"
            return f"{self.kind}: {self.message}"
        where = path_text(self.path)
        if self.position:
            where += f", line {self.position[0]} col {self.position[1]}"
        return f"{self.kind} at {where}: {self.message}"


@dataclass
class Report:
    locations: Locations
    entries: list[Entry] = field(default_factory=list)

    def add(self, kind: str, path: Path | None, message: str, position: tuple[int, int] | None = None) -> None:
        if position is None and path is not None:
            position = self.locations.find(path)
        self.entries.append(Entry(kind, tuple(path) if path is not None else None, message, position))

    def error(self, path: Path | None, message: str) -> None:
        self.add("error", path, message)

    def warn(self, path: Path | None, message: str) -> None:
        self.add("warning", path, message)

    @property
    def fatal(self) -> bool:
        return any(entry.kind == "error" for entry in self.entries)

    def lines(self) -> list[str]:
        return [entry.render() for entry in self.entries]

    def raise_if_fatal(self, summary: str) -> None:
        if not self.fatal:
            return
        lines = self.lines()
        first_error = next(e.render() for e in self.entries if e.kind == "error")
        raise ButaneError(first_error, lines, summary)
