"""The cluster's two tokens: never printed, never world-readable.

The server token (servers only: it admits a new server, which holds the datastore and every secret)
and the agent token (k3s's `agent-token`: admits agents only), each from its environment variable
when set (CI secrets K3S_TOKEN, K3S_AGENT_TOKEN), else generated once into build/secrets/ and
reused, so that re-embedding an ISO keeps the cluster together.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from tasks.common import AGENT_TOKEN_FILE, TOKEN_FILE, TOKEN_VERSION_FILE, BuildError, log, write_atomic
from tasks.doit_glue import TaskDict, action

TOKEN_ENV = "K3S_TOKEN"
AGENT_TOKEN_ENV = "K3S_AGENT_TOKEN"
TOKENS = ((TOKEN_FILE, TOKEN_ENV, "cluster token"), (AGENT_TOKEN_FILE, AGENT_TOKEN_ENV, "agent token"))


def token_is_current(target: Path, env: str = TOKEN_ENV) -> bool:
    """Up to date when the file holds $env (or, unset, any token): compared here, at run time,
    so that nothing derived from the token, not even a digest, is stored in doit's DB."""
    from_env = os.environ.get(env)
    try:
        return target.read_text() == from_env if from_env else True
    except FileNotFoundError:
        return False


def check_token(token: str, env: str = TOKEN_ENV) -> str:
    if not token or any(c.isspace() for c in token) or not token.isprintable():
        raise BuildError(f"${env}: the token must be printable with no white space",
                         hint="set it to e.g. the output of `openssl rand -hex 32`")
    return token


@action
def write_token(target: Path, version: Path, env: str = TOKEN_ENV, what: str = "cluster token") -> None:
    # Read here, not in the task dict: `doit info` prints a task's actions and arguments.
    from_env = os.environ.get(env) or None  # CI sets an unset secret to "": same as unset
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(target.parent, 0o700)
    changed = False
    if from_env is not None:
        token = check_token(from_env, env)
        if not target.exists() or target.read_text() != token:
            write_atomic(target, token, mode=0o600)
            changed = True
            log(f"{what} taken from ${env}")
    elif not target.exists():
        if env in os.environ:
            log(f"${env} is empty: using a generated {what}")
        write_atomic(target, secrets.token_hex(32), mode=0o600)
        changed = True
        log(f"generated a new {what} in {target} (keep it: nodes join with it)")
    if changed or not version.exists():  # a new name whenever the value changes
        write_atomic(version, secrets.token_hex(16))


def tokens_are_current() -> bool:
    return all(token_is_current(path, env) for path, env, _ in TOKENS)


def task_token() -> TaskDict:
    """Provide the server and agent tokens (from $K3S_TOKEN / $K3S_AGENT_TOKEN, else generated once)."""
    return {
        "basename": "_token",
        "actions": [(write_token, [path, TOKEN_VERSION_FILE, env, what]) for path, env, what in TOKENS],
        "targets": [*(path for path, _, _ in TOKENS), TOKEN_VERSION_FILE],
        "uptodate": [tokens_are_current],
        "verbosity": 2,
    }
