"""k3s-autoinstall-iso: from a stock Fedora CoreOS live ISO to one self-installing ISO per k3s node.

`doit` builds everything; `doit embed` re-embeds after a change (offline once the ISO is verified);
`doit config=PATH` selects another cluster config; `doit list` shows the steps.
"""

from doit.exceptions import InvalidDodoFile

from tasks import config
from tasks.common import BUILD, DEP_FILE
from tasks.doit_glue import OneLineReporter

BUILD.mkdir(exist_ok=True)  # doit's dependency file lives in build/ and is opened after this import
if not DEP_FILE.exists():  # private from the start: it records md5s of the files that hold the token
    DEP_FILE.touch(mode=0o600)
    DEP_FILE.write_text("{}")
try:
    config.current()
except config.ConfigError as error:  # one line, exit 3, no traceback
    raise InvalidDodoFile(error.line) from None

from tasks.butane import task_butane  # noqa: E402
from tasks.embed import task_embed  # noqa: E402
from tasks.fetch import task_fetch, task_update  # noqa: E402
from tasks.inline import task_inline  # noqa: E402
from tasks.pxe import task_pxe  # noqa: E402  (network boot: `doit pxe`, not a default task)
from tasks.render import task_render  # noqa: E402
from tasks.smoke import task_smoke as task_smoke  # noqa: E402  (`doit smoke`: not a default task)
from tasks.token import task_token  # noqa: E402
from tasks.verify import task_verify  # noqa: E402

__all__ = ["task_fetch", "task_update", "task_verify", "task_token", "task_render", "task_butane", "task_inline",
           "task_embed", "task_pxe"]

DOIT_CONFIG = {
    "default_tasks": ["embed"],
    "dep_file": str(DEP_FILE),
    "backend": "json",  # portable, unlike dbm whose format depends on the Python build
    "check_file_uptodate": "md5",  # content, not mtimes: a fresh clone or restored cache is up to date
    "forget_disable_default": True,
    "minversion": "0.36.0",
    "reporter": OneLineReporter,  # an expected failure once, as one line
}
