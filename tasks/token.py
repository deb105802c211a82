"""The cluster token: one secret shared by every node, never printed, never world-readable.

From the K3S_TOKEN environment variable when set (a CI secret), else generated once into
build/secrets/k3s-token and reused, so that re-embedding an ISO keeps the cluster together.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from tasks.common import TOKEN_FILE, TOKEN_VERSION_FILE, BuildError, log, write_atomic
from tasks.doit_glue import TaskDict, action

TOKEN_ENV = "K3S_TOKEN"


def token_is_current(target: Path) -> bool:
    """Up to date when the file holds $K3S_TOKEN (or, unset, any token): compared here, at run time,
    so that nothing derived from the token, not even a digest, is stored in doit's DB."""
    from_env = os.environ.get(TOKEN_ENV)
    try:
        return target.read_text() == from_env if from_env else True
    except FileNotFoundError:
        return False


def check_token(token: str) -> str:
    if not token or any(c.isspace() for c in token) or not token.isprintable():
        raise BuildError(f"${TOKEN_ENV}: the cluster token must be printable with no white space",
                         hint="set it to e.g. the output of `openssl rand -hex 32`")
    return token


@action
def write_token(target: Path, version: Path) -> None:
    # Read here, not in the task dict: `doit info` prints a task's actions and arguments.
    from_env = os.environ.get(TOKEN_ENV) or None  # CI sets an unset secret to "": same as unset
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(target.parent, 0o700)
    changed = False
    if from_env is not None:
        token = check_token(from_env)
        if not target.exists() or target.read_text() != token:
            write_atomic(target, token, mode=0o600)
            changed = True
            log(f"cluster token taken from ${TOKEN_ENV}")
    elif not target.exists():
        if TOKEN_ENV in os.environ:
            log(f"${TOKEN_ENV} is empty: using a generated token")
        write_atomic(target, secrets.token_hex(32), mode=0o600)
        changed = True
        log(f"generated a new cluster token in {target} (keep it: nodes join with it)")
    if changed or not version.exists():  # a new name whenever the value changes
        write_atomic(version, secrets.token_hex(16))


def task_token() -> TaskDict:
    """Provide the cluster token (from $K3S_TOKEN, else generated once)."""
    return {
        "basename": "_token",
        "actions": [(write_token, [TOKEN_FILE, TOKEN_VERSION_FILE])],
        "targets": [TOKEN_FILE, TOKEN_VERSION_FILE],
        "uptodate": [lambda: token_is_current(TOKEN_FILE)],
        "verbosity": 2,
    }
