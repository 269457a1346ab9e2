"""Targets files as ``history collect`` reads them (the shared parser, history's naming): names, comments, ${VAR}
from the environment, one-line errors. The format itself is tested in tests/test_targets_file.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from pgpulse.db.targets import TargetsError, read_targets
from pgpulse.history.targets import default_name


def test_names_comments_and_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_PW", "s3cret-1")
    path = tmp_path / "targets"
    path.write_text(
        "# production\n"
        "app = postgresql://app:${APP_PW}@db.internal:6432/app   # primary\n"
        "\n"
        "postgresql://ro@replica.internal/app\n"
    )
    targets = read_targets(path, default_name=default_name)
    assert [(t.name, t.url) for t in targets] == [
        ("app", "postgresql://app:s3cret-1@db.internal:6432/app"),
        ("replica.internal:5432/app", "postgresql://ro@replica.internal/app"),
    ]
    assert "s3cret" not in repr(targets)


def test_the_default_name_never_carries_the_user_or_password() -> None:
    assert default_name("postgresql://u:pw@h.example:5433/shop?sslmode=require") == "h.example:5433/shop"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "no targets in the file"),
        ("a = postgresql://h/x\na = postgresql://h/y\n", ":2: the name 'a' is already used on line 1"),
        ("a = mysql://h/x\n", ":1: 'mysql' is not PostgreSQL"),
    ],
)
def test_bad_files_are_one_line_errors(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "targets"
    path.write_text(body)
    with pytest.raises(TargetsError) as info:
        read_targets(path, default_name=default_name)
    assert message in str(info.value) and "\n" not in str(info.value)
