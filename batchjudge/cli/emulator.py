"""``batchjudge emulator``: serve the local Mistral API emulator over HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from batchjudge.cli._options import flag

__all__ = ["register"]


def emulator(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8787,
    api: Annotated[
        str, typer.Option(help="API to speak: mistral, or openai (chat completions and models).")
    ] = "mistral",
    rps: Annotated[
        float | None,
        typer.Option(help="Requests per second per API key (strict rolling 1 s window)."),
    ] = None,
    rpm: Annotated[
        int | None,
        typer.Option(help="Requests per minute per API key (strict rolling 60 s window)."),
    ] = None,
    tpm: Annotated[
        int | None,
        typer.Option(help="Tokens (prompt + completion) per minute per API key, on arrival."),
    ] = None,
    tokens_per_month: Annotated[
        int | None,
        typer.Option(
            "--tokens-per-month",
            help="Tokens per API key for the server's life; once spent, 429 with no Retry-After.",
        ),
    ] = None,
    headers: Annotated[
        str | None,
        typer.Option(
            help="Rate-limit headers: mistral (the API's 2026 x-ratelimit-*-minute), second "
            "(x-ratelimit-*-req-second + retry-after-ms), bysize (older x-ratelimitbysize-*), "
            "openai, or none (no headers, no Retry-After). Default: the --api's own."
        ),
    ] = None,
    outage: Annotated[
        str | None,
        typer.Option(
            help="AT:FOR: reset every connection for FOR seconds, AT seconds after the first "
            "request (also on demand: POST /admin/outage {\"seconds\": S})."
        ),
    ] = None,
    latency_ms: Annotated[
        str, typer.Option("--latency-ms", help="Reply latency MEAN[:JITTER] in milliseconds.")
    ] = "0",
    faults: Annotated[
        str,
        typer.Option(
            help="Injected faults, e.g. 500:0.05,drop:0.02,slow:0.02,malformed:0.02,nonjson:0.01,"
            "400:0.01 (a status 400-599, drop, slow, malformed, nonjson, echo: error bodies "
            "echoing the request headers, huge: a 10 MB reply, retry-after=SECONDS: a 429 "
            "with that Retry-After, stall=MS: the server stops for MS milliseconds, stamping "
            "the requests that arrive meanwhile late)."
        ),
    ] = "",
    seed: Annotated[int, typer.Option(help="Seed of the latency and fault draws.")] = 0,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="BATCHJUDGE_EMULATOR_API_KEY",
            help="Require this key (401 otherwise); by default any key is accepted.",
        ),
    ] = None,
    ft_gone: Annotated[
        bool,
        flag("ft-gone", "Answer fine-tuning endpoints 410 Gone, as Mistral does."),
    ] = False,
) -> None:
    """Serve a local emulator of the Mistral API (NOT the real API) for tests and offline runs.

    Limits are per API key, announced on every chat reply in the --headers shape.
    """
    from batchjudge.emulator import (
        EmulatorConfig,
        FaultSpec,
        bind,
        parse_latency,
        parse_outage,
        serve,
    )
    from batchjudge.errors import ConfigError

    try:
        if not 0 <= port <= 65535:
            raise ConfigError(f"--port must be between 0 and 65535 (0: any free port), got {port}")
        mean, jitter = parse_latency(latency_ms)
        config = EmulatorConfig(
            api=api,
            rps=rps,
            rpm=rpm,
            tpm=tpm,
            tokens_per_month=tokens_per_month,
            headers=headers,
            outage=parse_outage(outage) if outage is not None else None,
            latency_ms=mean,
            jitter_ms=jitter,
            faults=FaultSpec.parse(faults),
            seed=seed,
            api_key=api_key,
            ft_gone=ft_gone,
        )
        sock = bind(host, port)
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    bound_host, bound_port = sock.getsockname()[:2]
    what = "the Mistral API" if config.api == "mistral" else "an OpenAI-compatible API"
    typer.echo(
        f"batchjudge emulator (NOT {what}) listening on http://{bound_host}:{bound_port}",
        err=False,
    )
    typer.echo(f"  {config.describe()}")
    typer.echo("  answers come from the local judge; GET /stats shows what it saw; Ctrl-C stops it")
    serve(config, sock)


def register(app: typer.Typer) -> None:
    """Add ``emulator`` to the ``batchjudge`` command."""
    app.command("emulator")(emulator)
