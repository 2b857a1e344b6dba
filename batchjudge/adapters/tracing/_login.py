"""Whether ``weave.init`` will find W&B credentials, checked without importing Weave.

Without credentials ``weave.init`` asks for an API key on a terminal it does not have (the
trace child's stdin is ``/dev/null``), prints its coloured prompts, then retries the server
for seconds before it gives up: a 0.3 s run took 10 s and ended with a screen of escape
codes. Looking first costs microseconds, so a run without a login gets one plain warning
and goes on untraced at full speed.

The lookup follows Weave's own (``weave/trace/env.py`` and ``weave/wandb_interface/auth.py``
in weave 0.5x): ``WANDB_API_KEY``, an identity token file (``WANDB_IDENTITY_TOKEN_FILE``),
or a ``~/.netrc`` (``~/_netrc``) entry for the W&B host, which is ``WANDB_BASE_URL``'s, else
the ``base_url`` of wandb's settings file, else ``api.wandb.ai``. ``WEAVE_DISABLED`` (true,
yes, 1 or on) needs no login at all. When a file cannot be parsed the answer is "maybe",
and Weave is left to report its own error.
"""

from __future__ import annotations

import configparser
import netrc
import os
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["weave_login_problem"]

_DEFAULT_BASE_URL = "https://api.wandb.ai"
_TRUE = frozenset({"yes", "true", "1", "on"})


def weave_login_problem(project: str) -> str | None:
    """Why ``weave:<project>`` cannot log in, in one line; ``None`` when it may."""
    if os.environ.get("WEAVE_DISABLED", "").strip().lower() in _TRUE:
        return None
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return None
    host = urlparse(_base_url()).netloc
    for name in (".netrc", "_netrc"):
        path = Path.home() / name
        if not path.is_file():
            continue
        try:
            if netrc.netrc(str(path)).authenticators(host):
                return None
        except (OSError, netrc.NetrcParseError):
            return None
    return (
        f"weave:{project} is off: no W&B login for {host} here "
        "(set WANDB_API_KEY or run `wandb login`)"
    )


def _base_url() -> str:
    """The W&B server Weave would talk to (see the module docstring)."""
    from_env = os.environ.get("WANDB_BASE_URL")
    if from_env:
        return from_env
    config_dir = os.environ.get("WANDB_CONFIG_DIR", str(Path.home() / ".config" / "wandb"))
    settings = configparser.ConfigParser()
    try:
        settings.read([os.path.join(config_dir, "settings"), os.path.join("wandb", "settings")])
    except configparser.Error:
        return _DEFAULT_BASE_URL
    return settings.get("default", "base_url", fallback=_DEFAULT_BASE_URL)
