"""Flags and environment variables, validated before anything is bound."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.formats import OutputFormat
from service.origins.config import HttpSpec, S3Spec
from service.server.app import output_settings, render_policy
from service.settings import _OPTIONS, Settings, SettingsError, available_cpus
from service.units import parse_byte_size

from .conftest import SAMPLES


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1GiB", 2**30),
        ("500MB", 500 * 10**6),
        ("2gib", 2 * 2**30),
        ("123", 123),
        ("1.5kB", 1500),
        ("10 KiB", 10240),
        ("0.5GiB", 2**29),
    ],
)
def test_byte_sizes(text: str, expected: int) -> None:
    assert parse_byte_size(text) == expected


@pytest.mark.parametrize("text", ["", "GiB", "-1", "1XB", "1e3", "1,000"])
def test_bad_byte_sizes(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_byte_size(text)


def test_flags_override_environment() -> None:
    environ = {"IMAGE_FACTORY_PORT": "9000", "IMAGE_FACTORY_CACHE_MAX_BYTES": "2GiB"}
    settings = Settings.from_sources(["--port", "9001"], environ)
    assert settings.port == 9001
    assert settings.cache_max_bytes == 2 * 2**30


def test_switches_have_an_off_form_that_beats_the_environment(tmp_path: Path) -> None:
    """A command line can turn off what the environment turned on."""
    presets = tmp_path / "presets.toml"  # --presets-only needs presets
    presets.write_text("[thumb]\nw = 100\n")
    switches = [spec for spec in _OPTIONS if spec.switch]
    assert switches
    for spec in switches:
        # --client-hints needs a ladder to snap to.
        base = {"IMAGE_FACTORY_PRESETS": str(presets), "IMAGE_FACTORY_WIDTHS": "320,640"}
        environ = {**base, spec.env: "true"}
        assert getattr(Settings.from_sources([], environ), spec.dest) is True
        off = Settings.from_sources(["--no-" + spec.flag.removeprefix("--")], environ)
        assert getattr(off, spec.dest) is False
        on = Settings.from_sources([spec.flag], {**base, spec.env: "false"})
        assert getattr(on, spec.dest) is True


def test_flags_are_never_abbreviated() -> None:
    """argparse would take the non-existent --no-presets for
    --no-presets-only, and --ca for whichever flag it prefixes."""
    for argv in (["--no-presets"], ["--cache-max", "1GB"], ["--enable"]):
        with pytest.raises(SettingsError, match="unrecognized"):
            Settings.from_sources(argv, {})


def test_decode_budget_is_a_byte_size() -> None:
    assert Settings.from_sources([], {}).decode_budget == 512 * 10**6
    assert Settings.from_sources([], {}).max_decode_bytes == 10**9
    from_env = Settings.from_sources([], {"IMAGE_FACTORY_DECODE_BUDGET": "2GiB"})
    assert from_env.decode_budget == 2 * 2**30
    with pytest.raises(SettingsError, match="--decode-budget"):
        Settings.from_sources(["--decode-budget", "0"], {})


def test_every_option_is_in_the_configuration_reference() -> None:
    """docs/configuration.md lists every flag with its variable (the README
    keeps the main ones and links there)."""
    table = (Path(__file__).parent.parent / "docs" / "configuration.md").read_text()
    for spec in _OPTIONS:
        assert f"| `{spec.flag}" in table, spec.flag
        assert f"`{spec.env}`" in table, spec.env


def test_defaults_serve_the_bundled_samples() -> None:
    settings = Settings.from_sources([], {})
    assert settings.originals == str(SAMPLES)
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.cache_max_bytes == 2**30
    assert settings.quality[OutputFormat.JPEG] == 80


def test_quality_list_merges_onto_defaults() -> None:
    settings = Settings.from_sources(["--quality", "webp=70, avif=40"], {})
    assert settings.quality[OutputFormat.WEBP] == 70
    assert settings.quality[OutputFormat.AVIF] == 40
    assert settings.quality[OutputFormat.JPEG] == 80


def test_every_problem_is_reported_at_once() -> None:
    environ = {"IMAGE_FACTORY_CONCURRENCY": "0", "IMAGE_FACTORY_QUALITY": "jpeg=200"}
    with pytest.raises(SettingsError) as caught:
        Settings.from_sources(["--port", "http", "--cache-max-bytes", "lots"], environ)
    message = str(caught.value)
    for name in (
        "--port",
        "--cache-max-bytes",
        "IMAGE_FACTORY_CONCURRENCY",
        "IMAGE_FACTORY_QUALITY",
    ):
        assert name in message


def test_unknown_flag_is_an_error() -> None:
    with pytest.raises(SettingsError, match="--colour"):
        Settings.from_sources(["--colour", "red"], {})


def test_missing_originals_directory_is_an_error(tmp_path: object) -> None:
    with pytest.raises(SettingsError, match="--originals"):
        Settings.from_sources(["--originals", "/nonexistent/originals"], {})


@pytest.mark.parametrize(
    ("cpu_max", "expected"),
    [
        ("max 100000", None),
        ("100000 100000", 1),
        ("150000 100000", 2),
        ("50000 100000", 1),
        ("garbage", None),
        ("", None),
    ],
)
def test_default_concurrency_follows_the_cgroup_cpu_quota(
    tmp_path: Path, cpu_max: str, expected: int | None
) -> None:
    """In a container limited to N CPUs, N render threads, not the host's count."""
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max + "\n")
    cpus = len(os.sched_getaffinity(0))
    assert available_cpus(str(path)) == (min(cpus, expected) if expected else cpus)
    assert available_cpus(str(tmp_path / "missing")) == cpus


def test_drain_seconds_may_be_zero_but_a_render_timeout_may_not() -> None:
    assert Settings.from_sources([], {}).drain_seconds == 3.0
    assert Settings.from_sources(["--drain-seconds", "0"], {}).drain_seconds == 0.0
    from_env = Settings.from_sources([], {"IMAGE_FACTORY_DRAIN_SECONDS": "7.5"})
    assert from_env.drain_seconds == 7.5
    for bad in ("-1", "abc", "1e3"):
        with pytest.raises(SettingsError, match="--drain-seconds"):
            Settings.from_sources(["--drain-seconds", bad], {})
    with pytest.raises(SettingsError, match="positive number of seconds"):
        Settings.from_sources(["--render-timeout", "0"], {})


def test_originals_take_a_url_prefix_or_a_bucket() -> None:
    """--originals accepts an HTTP(S) prefix and s3://BUCKET[/PREFIX] besides a directory."""
    web = Settings.from_sources(["--originals", "https://cms.example/media"], {})
    assert isinstance(web.originals_spec, HttpSpec)
    assert str(web.originals_spec.prefix) == "https://cms.example/media/"
    bucket = Settings.from_sources(["--originals", "s3://photos/site"], {})
    assert isinstance(bucket.originals_spec, S3Spec)


@pytest.mark.parametrize(
    "argv",
    [
        ["--originals", "ftp://host/x"],
        ["--originals", "https://user:pw@cms.example/"],
        ["--originals", "https://cms.example/?q=1"],
        ["--originals", "s3://Bad_Bucket"],
        ["--origin", "cms"],
        ["--origin", "CMS=https://cms.example/"],
        ["--origin", "default=https://cms.example/"],
        ["--origin", "url=https://cms.example/"],
        ["--origin", "a=https://x.example/", "--origin", "a=https://y.example/"],
        ["--origin-header", "default=X-Key: v"],  # --originals is the samples directory
        ["--originals", "https://cms.example/", "--origin-header", "default=Host: evil"],
        ["--originals", "https://cms.example/", "--origin-header", "default=X-Key: @/no/such"],
        ["--url-sources", "*.", "--originals", "https://cms.example/"],
        ["--url-sources-allow-networks", "10.0.0.0/8"],
        ["--url-sources", "*", "--url-sources-allow-networks", "10.0.0.1/8"],
        ["--s3-addressing", "sideways"],
        ["--s3-endpoint-url", "minio:9000"],
    ],
)
def test_bad_origin_settings_are_one_line_errors(argv: list[str]) -> None:
    """Every malformed origin flag is a SettingsError (exit 2) with one line, never a traceback."""
    with pytest.raises(SettingsError) as error:
        Settings.from_sources(argv, {})
    assert "\n" not in str(error.value)


def test_one_variable_holds_several_origins() -> None:
    """IMAGE_FACTORY_ORIGINS holds several NAME=SPEC, space-separated; no samples then."""
    settings = Settings.from_sources(
        [], {"IMAGE_FACTORY_ORIGINS": "cms=https://cms.example/ uploads=s3://uploads"}
    )
    assert [name for name, _ in settings.origins] == ["cms", "uploads"]
    assert settings.originals_spec is None


def test_header_values_are_never_echoed_in_errors() -> None:
    """A malformed --origin-header is reported without its value, which may be a secret."""
    with pytest.raises(SettingsError) as error:
        Settings.from_sources(["--origin-header", "Bad Name=Authorization: Bearer s3cr3t"], {})
    assert "s3cr3t" not in str(error.value)


def test_keep_copyright_is_on_by_default_and_part_of_every_key() -> None:
    """--no-keep-copyright changes outputs, so it changes output_settings
    (in every cache key): turning it over never serves an old render."""
    kept = Settings.from_sources([], {})
    stripped = Settings.from_sources(["--no-keep-copyright"], {})
    assert kept.keep_copyright is True
    assert stripped.keep_copyright is False
    assert output_settings(kept) != output_settings(stripped)
    assert render_policy(stripped).keep_copyright is False


def test_a_width_ladder_is_checked_at_start() -> None:
    assert Settings.from_sources(["--widths", "640,320"], {}).widths == (320, 640)
    with pytest.raises(SettingsError, match="--widths: 5000 is over --max-output-size"):
        Settings.from_sources(["--widths", "320,5000"], {})
    with pytest.raises(SettingsError, match="--widths"):
        Settings.from_sources(["--widths", "320,wide"], {})
    with pytest.raises(SettingsError, match="--client-hints: needs --widths"):
        Settings.from_sources(["--client-hints"], {})
