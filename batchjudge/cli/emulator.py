"""``batchjudge emulator``: serve the local Mistral API emulator over HTTP."""

from __future__ import annotations

from typing import Annotated

import typer

from batchjudge.cli._options import flag

__all__ = ["register"]


def emulator(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free port).")] = 8787,
    rps: Annotated[
        float | None, typer.Option(help="Requests per second per API key (strict 1 s window).")
    ] = None,
    tpm: Annotated[int | None, typer.Option(help="Tokens per minute per API key.")] = None,
    latency_ms: Annotated[
        str, typer.Option("--latency-ms", help="Reply latency MEAN[:JITTER] in milliseconds.")
    ] = "0",
    faults: Annotated[
        str,
        typer.Option(
            help="Injected faults, e.g. 500:0.05,drop:0.02,slow:0.02,malformed:0.02,nonjson:0.01,"
            "400:0.01 (a status 400-599, drop, slow, malformed or nonjson)."
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
    """Serve a local emulator of the Mistral API (NOT the real API) for tests and offline runs."""
    from batchjudge.emulator import EmulatorConfig, FaultSpec, bind, parse_latency, serve
    from batchjudge.errors import ConfigError

    try:
        mean, jitter = parse_latency(latency_ms)
        config = EmulatorConfig(
            rps=rps,
            tpm=tpm,
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
    typer.echo(
        f"batchjudge emulator (NOT the Mistral API) listening on http://{bound_host}:{bound_port}",
        err=False,
    )
    typer.echo(f"  {config.describe()}")
    typer.echo("  answers come from the local judge; GET /stats shows what it saw; Ctrl-C stops it")
    serve(config, sock)


def register(app: typer.Typer) -> None:
    """Add ``emulator`` to the ``batchjudge`` command."""
    app.command("emulator")(emulator)
