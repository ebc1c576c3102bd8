"""The README is a tested document: every ```bash and ```python block runs, in order, in a
temporary folder holding a copy of ``examples/``, as a newcomer would type it.

Speed: ``divlab`` lines run in this process through typer's CliRunner (a subprocess
would import torch again, ~5 s a line), Python blocks with ``exec``; ``DIVLAB_TINY=1``
caps every size and budget (``divlab.specs.tiny_scale``, its one hook), and experiments
run on the test suite's in-process executor instead of a spawned pool. Install and
set-up lines are counted, not run; every other line that is not run is listed in
EXCLUDED with its reason. The counts are printed in pytest's summary (``-rA``) and
asserted."""

from __future__ import annotations

import contextlib
import glob
import io
import re
import shlex
import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from divlab.cli import app

ROOT = Path(__file__).parents[1]
NOT_RUN = ("make", "pip", "apt-get")  # install / set-up: a newcomer's machine, not divlab
EXCLUDED = {
    "divlab experiment run examples/plan2.yaml --executor ray --workers 2": (
        "starts a Ray cluster (tens of seconds); the Ray executor has its own tests"
    ),
    "divlab measure diversity corpus.jsonl --field body --probe smollm2 --construction "
    "documents --seq-len 64": (
        "loads the 135M GGUF probe (~25 s, de-quantised on load); tests/measure test it"
    ),
}
NEEDS = {  # a line that reads a file only some machines have, and what installs it
    "/usr/share/games/fortunes/fortunes": "Debian's fortunes (apt-get install fortunes-min)",
}


def readme_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every ```bash and ```python block, in order."""
    return re.findall(r"^```(bash|python)\n(.*?)^```", text, flags=re.S | re.M)


def shell_lines(code: str) -> list[str]:
    """The commands of a shell block: continuation lines joined, comments and blanks out."""
    joined = re.sub(r"\s*\\\n\s*", " ", code)
    lines = []
    for line in joined.splitlines():
        words = shlex.split(line, comments=True)
        if words:
            lines.append(line.split(" #")[0].strip() if " #" in line else line.strip())
    return lines


def _python(code: str, name: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, name, "exec"), {"__name__": "__readme__"})
    return out.getvalue()


def _expand(word: str, variables: dict[str, str]) -> list[str]:
    word = re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], word)
    return sorted(glob.glob(word)) or [word] if any(c in word for c in "*?[") else [word]


def test_every_readme_command_runs(tmp_path, monkeypatch):
    from divlab.experiments import executors
    from tests.experiments.tiny import InProcess

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIVLAB_TINY", "1")
    monkeypatch.setattr(executors, "executor_for", lambda *args, **kwargs: InProcess())
    runner = CliRunner()
    counts = {"python blocks": 0, "divlab commands": 0, "other commands": 0}
    not_run: dict[str, str] = {}
    variables: dict[str, str] = {}
    seconds: dict[str, float] = {}
    text = (ROOT / "README.md").read_text()
    languages = set(re.findall(r"^```(\S*)", text, flags=re.M))
    assert languages <= {"bash", "python", ""}, f"a README block this test cannot run: {languages}"
    blocks = readme_blocks(text)
    for number, (language, code) in enumerate(blocks, start=1):
        where = f"README block {number}"
        if language == "python":
            _python(code, where)
            counts["python blocks"] += 1
            continue
        for line in shell_lines(code):
            words = shlex.split(line, comments=True)
            if words[0] in NOT_RUN:
                not_run[line] = "install / set-up"
                continue
            if line in EXCLUDED:
                not_run[line] = EXCLUDED[line]
                continue
            missing = [NEEDS[w] for w in words if w in NEEDS and not Path(w).exists()]
            if missing:
                not_run[line] = f"needs {missing[0]}"
                continue
            assignment = re.fullmatch(r"(\w+)=\$\(python -c (.*)\)", line)
            if assignment:  # VAR=$(python -c "..."): the code's output, as a shell would
                code = shlex.split(assignment.group(2))[0]
                variables[assignment.group(1)] = _python(code, where).strip()
                counts["other commands"] += 1
                continue
            assert words[0] == "divlab", f"{where}: no way to run {line!r}; add it to EXCLUDED"
            args = [a for w in words[1:] for a in _expand(w, variables)]
            started = time.perf_counter()
            result = runner.invoke(app, args)
            seconds[line] = time.perf_counter() - started
            assert result.exit_code == 0, f"{where}: {line}\n{result.output}\n{result.exception!r}"
            counts["divlab commands"] += 1
    summary = ", ".join(f"{n} {what}" for what, n in counts.items())
    reasons = "; ".join(f"{line!r}: {why}" for line, why in not_run.items())
    slowest = sorted(seconds, key=seconds.get, reverse=True)[:3]
    print(f"\nREADME: {len(blocks)} blocks; ran {summary}; not run {len(not_run)}: {reasons}")
    print("slowest: " + "; ".join(f"{line!r} {seconds[line]:.1f} s" for line in slowest))
    assert counts["divlab commands"] >= 20 and counts["python blocks"] >= 3
    assert set(EXCLUDED) <= set(not_run), "an EXCLUDED line is no longer in the README"


@pytest.mark.parametrize(
    ("code", "lines"),
    [
        ("divlab a b   # note\n\n# only a comment\n", ["divlab a b"]),
        ("divlab a \\\n    --b c\n", ["divlab a --b c"]),
    ],
)
def test_shell_lines(code, lines):
    assert shell_lines(code) == lines


def test_tiny_scale_caps_sizes_only_when_asked(monkeypatch):
    from divlab.specs import tiny_scale

    tree = {"token_budget": 400000, "splits": {"train": {"n_docs": 500, "doc_length": 64}},
            "sets": [{"n_tokens": 10**6}], "seed": 123456, "compile": True}  # fmt: skip
    assert tiny_scale(tree) is tree
    monkeypatch.setenv("DIVLAB_TINY", "1")
    assert tiny_scale(tree) == {
        "token_budget": 8192, "splits": {"train": {"n_docs": 32, "doc_length": 64}},
        "sets": [{"n_tokens": 8192}], "seed": 123456, "compile": True,
    }  # fmt: skip
