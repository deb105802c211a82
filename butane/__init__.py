"""Pure-Python Butane (fcos variant, 1.0.0-1.7.0 and 1.8.0-experimental) to Ignition transpiler.

``transpile(text)`` returns ``(ignition_json, warnings)`` or raises :class:`ButaneError`.
"""

from __future__ import annotations

from .core import SUPPORTED_VERSIONS, transpile
from .report import ButaneError

__all__ = ["ButaneError", "SUPPORTED_VERSIONS", "transpile"]
