"""The configuration of one run, its validation, and the fingerprint that guards resumes."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, TypeAlias

from batchjudge.engine.input_kinds import in_memory_kind, input_names
from batchjudge.engine.sizing import default_ceiling
from batchjudge.errors import ConfigError

__all__ = ["DEFAULT_MODELS", "Inputs", "MAX_CONCURRENCY", "MAX_SAMPLES", "PROVIDERS", "RunConfig", "describe_changes"]

Inputs: TypeAlias = "str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | Any"
"""What ``RunConfig.inputs`` takes: paths, or a table in memory (``Any``: polars and pandas
are optional, so their classes cannot be named here); checked by
:func:`~batchjudge.engine.input_kinds.input_names`."""

PROVIDERS: tuple[str, ...] = ("local", "mistral", "openai")
"""The providers a config can name (``--provider``); a provider object passed to the run
instead is recorded under its own ``name`` (``mock`` for :class:`MockProvider`)."""

DEFAULT_MODELS: dict[str, str] = {
    "local": "local-judge",
    "mistral": "mistral-small-latest",
}
"""The model each provider uses when ``model`` is not given (``openai`` has none: an
OpenAI-compatible server serves whatever it was started with, so ``--model`` is required)."""

MAX_CONCURRENCY = 10_000
"""The most requests a run keeps in flight (``--concurrency``): the engine runs one task per
slot, and a hundred million of them exhausted the memory before anything was sent."""
MAX_SAMPLES = 100
"""The most samples a row's self-consistency vote takes (``--samples``): each is a request, a
majority settles within a few, and a hundred million of them took 8.7 GB before any was sent."""

_REMOTE = frozenset({"mistral", "openai"})
"""Providers that reach a server at a base URL (whose host joins the fingerprint)."""

_NO_FLAG = frozenset({"inputs", "out", "api_key", "backoff_base", "backoff_cap", "check_labels",
                      "overwrite", "retry_failed", "allow_changed_inputs", "storage_options"})
"""Config fields left out of :meth:`RunConfig.command_line`: positional, secret, API-only, or
(``--overwrite``, ``--retry-failed``, ``--allow-changed-inputs``) not part of resuming."""


@dataclass(slots=True)
class RunConfig:
    """Everything that defines a run. Fields mirror the ``batchjudge run`` options.

    ``api_key`` is never stored, printed or traced; when None the provider reads
    ``MISTRAL_API_KEY`` (``OPENAI_API_KEY`` for ``openai``), or the variable ``api_key_env``
    names, from the environment.
    """

    inputs: Inputs
    """A path (str or PathLike: a file, a directory of shards, a glob), a list of them, or a
    table in memory (polars DataFrame/LazyFrame, pyarrow Table/dataset, pandas DataFrame):
    :mod:`~batchjudge.engine.input_kinds`. Anything else is a TypeError naming its type."""
    out: str | os.PathLike[str]
    provider: str = "local"
    model: str | None = None
    prompt: str = "zero-shot"
    columns: Mapping[str, str] | str | None = None
    base_url: str | Sequence[str] | None = None
    """The server (default: the provider's API), or several (``--engine ray`` spreads rows over them)."""
    allow_insecure_http: bool = False
    """Send the key over plain ``http://`` to another machine (refused by default)."""
    transport: str | None = None
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    """The environment variable holding the key, instead of the provider's usual one."""
    concurrency: int | None = None
    """The most requests in flight (a ceiling: the engine sizes what it keeps in flight from
    the pace and the measured latency, :mod:`~batchjudge.engine.sizing`); None:
    :func:`~batchjudge.engine.sizing.default_ceiling`."""
    rps: float | None = None
    """Requests per second; None: learned from the server's headers, or estimated at a 429."""
    rpm: float | None = None
    """Requests per minute; None: learned from the server's headers."""
    tpm: float | None = None
    """Tokens per minute; None: learned from the server's headers."""
    min_rps: float = 0.1
    """The slowest pace the run accepts: a limit (given, announced or estimated from 429s)
    allowing fewer requests a second stops the run saying so, instead of crawling for hours."""
    max_retries: int = 5
    timeout: float = 60.0
    backoff_base: float = 0.5
    """First retry waits up to this many seconds (full jitter), doubling each attempt..."""
    backoff_cap: float = 30.0
    """...up to this cap. A server's ``Retry-After`` overrides both..."""
    max_retry_after: float = 120.0
    """...up to this many seconds; a longer one is treated as an outage of the endpoint."""
    limit: int | None = None
    max_total_tokens: int | None = None
    """Stop sending once the run (every session) has used this many tokens (prompt + reply)."""
    max_cost: float | None = None
    """Stop sending once the run (every session) has cost this many US dollars."""
    retry_failed: bool = False
    overwrite: bool = False
    allow_changed_inputs: bool = False
    """Resume although an input's content changed: the rows of its changed chunks are judged
    again (default: refused). Not part of the fingerprint, nor of the resuming command."""
    temperature: float = 0.0
    max_tokens: int = 256
    seed: int | None = None
    samples: int = 1
    response_format: Literal["template", "json", "text"] = "template"
    max_context_tokens: int | None = None
    flush_rows: int = 2000
    flush_seconds: float = 5.0
    trace: str | None = None
    trace_sample: float = 1.0
    check_labels: bool = True
    mode: Literal["online", "batch"] = "online"
    """``batch`` sends the rows through Mistral's batch API (:mod:`batchjudge.engine.batch`)."""
    dedupe: bool = True
    """Send identical requests once per run and reuse the answer (:mod:`batchjudge.engine.dedupe`)."""
    engine: Literal["process", "ray"] = "process"
    """``ray`` judges on a Ray cluster (:mod:`batchjudge.ray`); ``process`` in this process."""
    address: str | None = None
    """``--engine ray``: the cluster to join; None starts Ray on this machine."""
    workers: int | None = None
    """``--engine ray``: judging actors (None: one per CPU)."""
    storage_options: Mapping[str, str] | None = field(default=None, repr=False)
    """``--storage-option KEY=VALUE``: how to reach the object store of URL inputs and ``out``
    (:mod:`batchjudge.engine.stores`); never stored, printed or traced (None: the store's own
    chain alone)."""

    def __post_init__(self) -> None:
        input_names(self.inputs)  # TypeError now, naming the type, for inputs no run can read

    @property
    def from_memory(self) -> bool:
        """Whether the inputs are a table in memory (no command line can name them)."""
        return in_memory_kind(self.inputs) is not None

    @property
    def base_urls(self) -> list[str | None]:
        """The endpoints, in order (``[None]``: the provider's default)."""
        if self.base_url is None:
            return [None]
        if isinstance(self.base_url, str):
            return [self.base_url]
        return list(self.base_url) or [None]

    @property
    def max_in_flight(self) -> int:
        """The concurrency ceiling: ``concurrency``, or the default one (:mod:`~batchjudge.engine.sizing`)."""
        return self.concurrency if self.concurrency is not None else default_ceiling()

    @property
    def resolved_model(self) -> str:
        """The model name after applying the provider's default."""
        return self.model or DEFAULT_MODELS.get(self.provider, "")

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first option that cannot work.

        One rule for every number first: it is finite (``inf`` and ``nan`` parse as floats, and
        an infinite rate or wait reached the engine as an internal error or an endless run);
        then each option's range.
        """
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"--{spec.name.replace('_', '-')} must be a finite number, got {value}")
        floor = self.min_rps
        checks: list[tuple[bool, str]] = [
            (self.concurrency is None or 1 <= self.concurrency <= MAX_CONCURRENCY,
             f"--concurrency must be between 1 and {MAX_CONCURRENCY:,}, got {self.concurrency}"),
            (floor > 0, f"--min-rps must be > 0, got {floor}"),
            (self.rps is None or self.rps >= floor,
             f"--rps must be at least --min-rps {floor:g}, got {self.rps} (lower --min-rps to go slower)"),
            (self.rpm is None or self.rpm / 60.0 >= floor,
             f"--rpm must be at least 60 x --min-rps ({60 * floor:g}), got {self.rpm} (lower --min-rps to go slower)"),
            (self.tpm is None or self.tpm / 60.0 >= floor,
             f"--tpm must be at least 60 x --min-rps ({60 * floor:g}), got {self.tpm} (lower --min-rps to go slower)"),
            (self.max_retries >= 0, f"--max-retries must be >= 0, got {self.max_retries}"),
            (self.timeout > 0, f"--timeout must be > 0, got {self.timeout}"),
            (self.max_retry_after >= 0, f"--max-retry-after must be >= 0, got {self.max_retry_after}"),
            (0 <= self.backoff_base <= self.backoff_cap,
             f"backoff must satisfy 0 <= base <= cap, got {self.backoff_base} and {self.backoff_cap}"),
            (self.limit is None or self.limit >= 1, f"--limit must be >= 1, got {self.limit}"),
            (self.max_total_tokens is None or self.max_total_tokens >= 1,
             f"--max-total-tokens must be >= 1, got {self.max_total_tokens}"),
            (self.max_cost is None or self.max_cost > 0, f"--max-cost must be > 0, got {self.max_cost}"),
            (self.mode == "online" or (self.max_total_tokens is None and self.max_cost is None),
             "--max-total-tokens and --max-cost apply to online runs (a batch job is billed as a whole)"),
            (0.0 <= self.temperature <= 2.0, f"--temperature must be in [0, 2], got {self.temperature}"),
            (self.max_tokens >= 1, f"--max-tokens must be >= 1, got {self.max_tokens}"),
            (1 <= self.samples <= MAX_SAMPLES, f"--samples must be between 1 and {MAX_SAMPLES}, got {self.samples}"),
            (self.seed is None or -(2**63) <= self.seed < 2**63, f"--seed must fit in 64 bits, got {self.seed}"),
            (self.flush_rows >= 1, f"--flush-rows must be >= 1, got {self.flush_rows}"),
            (self.flush_seconds > 0, f"--flush-seconds must be > 0, got {self.flush_seconds}"),
            (0.0 < self.trace_sample <= 1.0, f"--trace-sample must be in (0, 1], got {self.trace_sample}"),
            (self.response_format in ("template", "json", "text"),
             f"--response-format must be template, json or text, got {self.response_format!r}"),
            (self.provider in PROVIDERS,
             f"--provider must be one of {', '.join(PROVIDERS)}, got {self.provider!r}"),
            (self.provider != "openai" or bool(self.model),
             "--provider openai needs --model (the name the server serves the judge under)"),
            (self.api_key_env is None or self.api_key_env.isidentifier(),
             f"--api-key-env must name an environment variable, got {self.api_key_env!r}"),
            (self.transport in (None, "http", "sdk"),
             f"--transport must be http or sdk, got {self.transport!r}"),
            (self.mode in ("online", "batch"), f"--mode must be online or batch, got {self.mode!r}"),
            (self.mode == "online" or (self.provider == "mistral" and self.samples == 1),
             "--mode batch needs --provider mistral and --samples 1"),
            (self.engine in ("process", "ray"), f"--engine must be process or ray, got {self.engine!r}"),
            (self.engine == "ray" or (self.address is None and self.workers is None),
             "--address and --workers need --engine ray"),
            (self.workers is None or self.workers >= 1, f"--workers must be >= 1, got {self.workers}"),
            (self.engine == "process" or self.mode == "online", "--engine ray needs --mode online"),
            (self.engine == "process" or not self.from_memory,
             "--engine ray reads its inputs from files: write the table to Parquet and give its path"),
            (self.engine == "process" or (self.max_total_tokens is None and self.max_cost is None),
             "--max-total-tokens and --max-cost need --engine process (Ray workers share no budget)"),
            (len(self.base_urls) == 1 or (self.engine == "ray" and self.provider in _REMOTE),
             "several --base-url need --engine ray and --provider mistral or openai"),
            *self._storage_checks(),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        if self.samples > 1 and self.temperature == 0.0:
            raise ConfigError("--samples > 1 needs --temperature > 0 (identical samples vote alike)")

    def _storage_checks(self) -> list[tuple[bool, str]]:
        """What a run directory in object storage cannot do yet."""
        from batchjudge.engine.stores import is_url, split_url

        remote_out = is_url(self.out) and split_url(os.fspath(self.out))[0] != "file"
        return [
            (not remote_out or split_url(os.fspath(self.out))[0] == "s3",
             f"--out {os.fspath(self.out)}: a run directory in gs:// or az:// is not supported yet; use a local "
             "--out or an s3:// one (any S3-compatible store)"),
            (not remote_out or self.mode == "online", "--mode batch needs a local --out"),
        ]

    @property
    def expected_completion_tokens(self) -> int:
        """Completion tokens a request is expected to use before its reply says: what the TPM
        bucket reserves, and what a dry run prices (a verdict and a reason fit in 64)."""
        return min(64, self.max_tokens)

    @property
    def endpoint(self) -> str | None:
        """``host[:port]`` of the server a remote provider talks to (the default API's when
        ``base_url`` is None); None for the local judge. Part of the fingerprint, so that a run
        started against one server is not resumed against another (the emulator, say)."""
        if self.provider not in _REMOTE:
            return None
        from batchjudge.adapters.mistral import MISTRAL, OPENAI, split_base_url

        dialect = OPENAI if self.provider == "openai" else MISTRAL
        hosts = []
        for url in self.base_urls:
            parts = split_base_url((url or dialect.default_base_url).strip())
            if not parts.hostname:
                raise ConfigError(f"--base-url {url!r} must be an http:// or https:// URL with a host")
            hosts.append(parts.hostname + (f":{parts.port}" if parts.port else ""))
        return ",".join(hosts)

    def command_line(self) -> list[str]:
        """The ``batchjudge run`` command for this config: inputs, ``--out`` and every option
        that differs from its default (never the key, ``--overwrite``, ``--retry-failed`` or
        ``--allow-changed-inputs``).
        Run in the folder the run was started from, it resumes the run."""
        argv = ["batchjudge", "run", *input_names(self.inputs), "--out", os.fspath(self.out)]
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name in _NO_FLAG or value == spec.default:
                continue
            flag = "--" + spec.name.replace("_", "-")
            if isinstance(value, bool):
                argv.append(flag if value else f"--no-{flag[2:]}")
            elif isinstance(value, Mapping):
                argv += [flag, ",".join(f"{k}={v}" for k, v in value.items())]
            elif isinstance(value, (list, tuple)):  # a repeatable option (--base-url)
                for item in value:
                    argv += [flag, str(item)]
            elif isinstance(value, float):
                argv += [flag, str(int(value)) if value.is_integer() else repr(value)]
            else:
                argv += [flag, str(value)]
        return argv

    def public_dict(self) -> dict[str, Any]:
        """The config as stored in ``run.json``: paths as strings (a table in memory as
        ``<dataframe>``), never the API key or the storage options."""
        data = {spec.name: getattr(self, spec.name) for spec in fields(self)
                if spec.name not in ("api_key", "storage_options")}
        data["inputs"] = input_names(self.inputs)
        data["out"] = os.fspath(self.out)
        data["model"] = self.resolved_model
        if isinstance(self.columns, Mapping):
            data["columns"] = dict(self.columns)
        if self.base_url is not None and not isinstance(self.base_url, str):
            data["base_url"] = list(self.base_url)
        return data

    def generation(self) -> dict[str, Any]:
        """The parameters that change what a judge answers."""
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "samples": self.samples,
            "response_format": self.response_format,
        }


_LABELS = {
    "provider": "provider",
    "model": "model",
    "prompt": "prompt",
    "dataset": "dataset (input files)",
    "columns": "column mapping",
    "generation": "generation parameters",
    "endpoint": "endpoint (server host)",
}
_ADDED_LATER = frozenset({"endpoint"})
"""Fingerprint parts older run directories do not record: a resume accepts their absence
(the part is unknown, not different) and the new session records it."""


def _names_only(dataset: object) -> object:
    """A stored ``dataset`` as compared now: file names only (older runs recorded sizes too;
    content is compared by the inputs' own fingerprint)."""
    if not isinstance(dataset, list):
        return dataset
    return [{"file": entry.get("file")} if isinstance(entry, Mapping) else entry for entry in dataset]


def describe_changes(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Name each fingerprint part that differs, with old and new values where short."""
    changes: list[str] = []
    for key, label in _LABELS.items():
        old, new = stored.get(key), current.get(key)
        if key == "dataset":
            old = _names_only(old)
        if old == new or (key in _ADDED_LATER and key not in stored):
            continue
        if isinstance(old, Mapping) and isinstance(new, Mapping):
            diffs = [f"{k} {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
                     if old.get(k) != new.get(k)]
            changes.append(f"{label}: {', '.join(diffs)}")
        elif isinstance(old, str) and isinstance(new, str) and len(old) + len(new) < 120:
            changes.append(f"{label}: {old!r} -> {new!r}")
        else:
            changes.append(label)
    return changes
