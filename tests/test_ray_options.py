"""``--engine ray``'s options and its optional extra, checked without starting Ray: the core
install and the default CLI never import Ray, and a missing extra is one line saying how to
install it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from batchjudge import ConfigError, RunConfig


def cli(*args: str, code_before: str = "") -> subprocess.CompletedProcess[str]:
    code = f"{code_before}; import sys; from batchjudge.cli import main; sys.argv = ['batchjudge', *{list(args)!r}]; main()"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)


def test_without_the_extra_engine_ray_says_how_to_install_it_in_one_line(write_pairs, tmp_path):
    data = write_pairs(5)
    hide_ray = "import sys; sys.modules['ray'] = None"  # what a core install looks like
    done = cli("run", str(data), "--out", str(tmp_path / "run"), "--engine", "ray", code_before=hide_ray)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and 'pip install "batchjudge[ray]"' in lines[0], done.stderr
    assert not (tmp_path / "run").exists()  # refused before the run directory was touched


def test_a_single_process_run_never_imports_ray(write_pairs, tmp_path):
    data = write_pairs(5)
    code = (
        "import sys, batchjudge; "
        f"batchjudge.run(batchjudge.RunConfig(inputs=[{str(data)!r}], out={str(tmp_path / 'run')!r})); "
        "print('ray' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"workers": 2}, "--address and --workers need --engine ray"),
        ({"address": "ray://head:10001"}, "--address and --workers need --engine ray"),
        ({"engine": "ray", "workers": 0}, "--workers must be >= 1"),
        ({"engine": "spark"}, "--engine must be process or ray"),
        ({"provider": "mistral", "base_url": ["http://a", "http://b"]}, "several --base-url need --engine ray"),
        ({"engine": "ray", "provider": "mistral", "mode": "batch"}, "--engine ray needs --mode online"),
    ],
)
def test_engine_options_that_cannot_work_are_refused_by_name(options, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        RunConfig(inputs=["x"], out="y", **options).validate()


def test_repeated_base_urls_are_the_endpoints_in_order():
    config = RunConfig(inputs=["x"], out="y", provider="mistral", engine="ray", base_url=["http://a", "http://b"])
    config.validate()
    assert config.base_urls == ["http://a", "http://b"]
    assert RunConfig(inputs=["x"], out="y").base_urls == [None]
    assert config.public_dict()["base_url"] == ["http://a", "http://b"]
