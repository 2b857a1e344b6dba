"""The two rules every client of the package follows: where the API key comes from, and
what a base URL may be.

One key rule: an explicit key wins, else the dialect's environment variable (or the one
named with ``--api-key-env``); a missing or blank key is an :class:`AuthError` before anything
is sent; the key is registered with the process's scrubber at once, so no message, result or
trace can carry it afterwards. A key shorter than the scrubber's minimum
(:data:`~batchjudge.core.scrub.MIN_SECRET_LEN`) cannot be scrubbed without mangling ordinary
text, so it is refused (:class:`ConfigError`) for any server not on this machine; on loopback
(the emulator, a test server) it is allowed, and may then appear as the server echoes it.

One base-URL rule: ``https://host[/prefix]`` without a trailing slash or ``/v1`` (every path
adds it); a user or password in the URL is refused (the key goes in a header, and a URL is
printed and stored); plain ``http://`` to a host other than this machine is refused while a
key would be sent over it, unless the caller allows it explicitly.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import SplitResult, urlsplit

from batchjudge.adapters.mistral._wire import Dialect
from batchjudge.core.scrub import MIN_SECRET_LEN, remember_secret
from batchjudge.errors import AuthError, ConfigError

__all__ = ["is_loopback", "normalise_base_url", "resolve_api_key", "split_base_url"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def resolve_api_key(api_key: str | None, dialect: Dialect, *, base_url: str, env: str | None = None) -> str:
    """The key to send to ``base_url``: ``api_key`` if given, else ``$env`` (default: the
    dialect's variable); refused by the rule in the module docstring."""
    variable = env or dialect.key_env
    key = (api_key if api_key is not None else os.environ.get(variable, "")).strip()
    if not key:
        hint = " (any non-empty value works against `batchjudge emulator`)" if dialect.name == "mistral" else ""
        raise AuthError(f"no API key for {dialect.label}: set {variable}{hint}")
    if len(key) < MIN_SECRET_LEN and not is_loopback(urlsplit(base_url).hostname or ""):
        source = "api_key" if api_key is not None else variable
        raise ConfigError(
            f"{source}: the API key is shorter than {MIN_SECRET_LEN} characters, too short to keep out of "
            f"results and messages; set the real key (a short one is accepted only for a server on this "
            "machine, such as `batchjudge emulator`)"
        )
    remember_secret(key)
    return key


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def normalise_base_url(
    base_url: str | None, dialect: Dialect, *, allow_insecure_http: bool = False
) -> str:
    """The server's root URL by the rule in the module docstring; ConfigError otherwise."""
    url = (base_url or dialect.default_base_url).strip().rstrip("/").removesuffix("/v1")
    parts = split_base_url(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--base-url {url!r} must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        shown = f"{parts.scheme}://{parts.hostname}{f':{parts.port}' if parts.port else ''}{parts.path}"
        raise ConfigError(
            f"--base-url {shown} carries a user or password; remove it (the API key goes in "
            f"{dialect.key_env}, sent as a header)"
        )
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(parts.hostname):
        raise ConfigError(
            f"--base-url {url} is plain http:// to another machine: the API key would cross the "
            "network unencrypted; use https://, or pass --allow-insecure-http if the network is trusted"
        )
    return url


def split_base_url(url: str) -> SplitResult:
    """``url``'s parts, its port checked (a port out of range or not a number, or a broken
    IPv6 address, is a ConfigError naming the option, not a ValueError deep in a client)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        why = str(exc)
    else:
        if port != 0:
            return parts
        why = "port 0"
    raise ConfigError(f"--base-url {url!r} is not a valid URL ({why}): give http(s)://HOST[:PORT][/PATH] "
                      "with a port from 1 to 65535")
