"""A Redis URL is checked when the config is read (bot.jobs.queue), in
words that never repeat it: what redis-py opens passes, what it would
refuse at the first enqueue (an internal error until 2026-12-05) or read
otherwise than written is refused at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.jobs.queue import check_queue, redis_url_problem
from tests.cli_support import invoke, one_line_error


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://queue.example",
        "redis://:s3cret@queue.example:6380/2",
        "redis://bot:s3cret@queue.example/15",
        "rediss://queue.example:6380/1",
        "unix:///run/redis/redis.sock?db=1",
    ],
)
def test_what_redis_py_opens_passes(url: str) -> None:
    assert redis_url_problem(url) is None
    check_queue("redis", url)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://queue.example:6379", "does not start with redis://"),
        ("queue.example:6379", "does not start with redis://"),
        ("notaurl", "does not start with redis://"),
        ("redis://:s3cret@queue.example:port/0", "cannot be parsed"),
        # redis-py would quietly use database 0.
        ("redis://queue.example:6379/abc", "names a database that is no number"),
    ],
)
def test_what_it_would_refuse_or_misread_is_said_without_the_url(url: str, problem: str) -> None:
    said = redis_url_problem(url)
    assert said is not None and said.startswith(problem)
    assert "s3cret" not in said and "queue.example" not in said


@given(st.text(max_size=60))
def test_any_text_is_fine_or_one_problem(url: str) -> None:
    said = redis_url_problem(url)
    assert said is None or ("\n" not in said and said.strip() == said)


def test_the_cli_says_it_in_one_line_before_doing_anything(tmp_path: Path) -> None:
    config = tmp_path / "bot.yaml"
    config.write_text(
        "inventory: inv.yaml\njobs:\n  queue: redis\nhyperv: {backend: simulator}\n",
        encoding="utf-8",
    )
    ready = invoke(
        tmp_path, "--config", str(config), "db", "upgrade", env={"REDIS_URL": "redis://h"}
    )
    assert ready.returncode == 0, ready.stderr
    env = {"REDIS_URL": "http://:s3cret@queue.example:6379"}
    result = invoke(tmp_path, "--config", str(config), "checkpoint", "list", env=env)
    assert result.returncode == 2
    assert one_line_error(result) == (
        "checkpoint-bot: error: jobs.queue: the redis URL (jobs.redis_url or REDIS_URL) does not "
        "start with redis://, rediss:// (TLS) or unix://; expected e.g. redis://HOST:6379/0"
    )
    assert "s3cret" not in result.stderr + result.stdout
