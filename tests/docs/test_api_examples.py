"""Every curl example in docs/api.md runs against a real local API and answers as documented."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.schema import FEATURE_NAMES, example_diamond
from local_emulation.gateway import Gateway
from local_emulation.processes import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
EXAMPLE = re.compile(r"```bash\n# → (\d{3})\n(.*?)```", re.S)


def examples() -> list[tuple[int, str]]:
    text = (REPO / "docs" / "api.md").read_text()
    return [(int(status), command.strip()) for status, command in EXAMPLE.findall(text)]


def test_docs_have_examples() -> None:
    assert len(examples()) >= 7
    assert shutil.which("curl")


@pytest.fixture(scope="module")
def api(
    served_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    workdir = tmp_path_factory.mktemp("api-docs")
    (workdir / "stones.csv").write_text(
        ",".join([*FEATURE_NAMES, "price"])
        + "\n"
        + ",".join(str(v) for v in example_diamond().values())
        + ",2400\n"
    )
    with Gateway.for_local_model(served_model_dir, free_port(), workers=1) as gateway:
        yield gateway.url, workdir


@pytest.mark.parametrize(
    ("status", "command"),
    examples(),
    ids=[c.split('"$FACET_API')[1].split('"')[0] + f" {s}" for s, c in examples()],
)
def test_api_example_answers_as_documented(
    api: tuple[str, Path], status: int, command: str
) -> None:
    url, workdir = api
    script = command.replace("\\\n", " ") + " -o response.json -w '%{http_code}'"
    completed = subprocess.run(
        ["bash", "-c", script],
        cwd=workdir,
        env={**os.environ, "FACET_API": url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == str(status), (workdir / "response.json").read_text()
    body = json.loads((workdir / "response.json").read_text())
    if status == 422:
        assert body["details"][0]["field"] == "cut"
