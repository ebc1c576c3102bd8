"""The divlab command: help, version, generate/info, and one-line errors with exit code 2."""

import contextlib
import io
import json
import re
import subprocess
import sys
import typing
from pathlib import Path
from unittest import mock

import pytest
from typer.testing import CliRunner

import divlab
from divlab.cli import app, main
from divlab.errors import DataError

runner = CliRunner()
SMALL = [
    "--vocab-size", "12", "--n-values", "3", "--n-slots", "4", "--n-eval", "3",
    "--train-docs", "20", "--doc-length", "32", "--eval-docs", "5", "--eval-doc-length", "16",
    "--no-prompts", "--no-progress",
]  # fmt: skip


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The real entry point ``divlab.cli.main`` (its exit codes, its one-line errors on
    stderr) run in this process with ``sys.argv`` set: a subprocess would import torch
    again, ~5 s a call. ``run_cli_process`` is the real process, for the test that needs
    one."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = 0
    with (
        mock.patch.object(sys, "argv", ["divlab", *args]),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
    ):
        try:
            main()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
    return subprocess.CompletedProcess(args, code, stdout.getvalue(), stderr.getvalue())


def run_cli_process(*args: str) -> subprocess.CompletedProcess:
    """``divlab`` in a new process, as a user runs it."""
    code = "from divlab.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and divlab.__version__ in result.output
    for command in ([], ["ginc"], ["ginc", "generate"], ["ginc", "info"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


def _commands(command, path=()):
    """(path, click command) of every command and group under ``command``."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def _all_commands() -> dict:
    import typer

    return {" ".join(path) or "divlab": c for path, c in _commands(typer.main.get_command(app))}


ALL_COMMANDS = _all_commands()


def test_every_command_is_walked():
    assert len(ALL_COMMANDS) > 20 and "divlab" in ALL_COMMANDS and "data prepare" in ALL_COMMANDS


@pytest.mark.parametrize("name", sorted(ALL_COMMANDS))
def test_help_renders_with_flags_as_flags_and_required_marked(name):
    """`--help` of every command and group: exit 0, no `<bool>` placeholder on a flag (as
    if it took a value; a module's typer app must be a divlab.cli.common.App), every
    required parameter marked [required]."""
    path = [] if name == "divlab" else name.split()
    result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output, result.output
    required = [p for p in ALL_COMMANDS[name].params if p.required]
    assert result.output.count("[required]") == len(required), result.output


def _spec_default(spec, dotted: str):
    """The default of a spec field at a dotted path, through nested specs' defaults."""
    head, *rest = dotted.split(".")
    value = spec.model_fields[head].get_default(call_default_factory=True)
    for key in rest:
        value = value[key] if isinstance(value, dict) else getattr(value, key)
    return value


@pytest.mark.parametrize("command", ["ginc_generate", "train_command"])
def test_the_defaults_said_in_help_are_the_specs(command):
    """A flag that overrides a spec field and says "(default X)" in its help says the
    spec's own default, so the help cannot drift from the code."""
    from divlab.cli import ginc, train
    from divlab.cli.common import spec_fields
    from divlab.data.ginc.dataset import GincSpec
    from divlab.train import TrainSpec

    function = {"ginc_generate": ginc.ginc_generate, "train_command": train.train_command}[command]
    spec = GincSpec if command == "ginc_generate" else TrainSpec
    hints = typing.get_type_hints(function, include_extras=True)
    checked = 0
    for name, path in spec_fields(function).items():
        info = next(m for m in hints[name].__metadata__ if hasattr(m, "help"))
        said = re.search(r"default ([\w.]+)", info.help or "")
        if not said:
            continue
        default = _spec_default(spec, path)
        try:
            assert float(said.group(1)) == float(default), (name, said.group(1), default)
        except ValueError:
            assert said.group(1) == str(default), (name, said.group(1), default)
        checked += 1
    assert checked >= 8


def test_old_spellings_still_work_with_one_deprecation_line(tmp_path):
    """--quiet/-q, data prepare --limit, train --model and results --out keep working for
    one release; each prints one line on stderr naming the new spelling."""
    line = "warning: {} is deprecated; use {} (it will be removed in the next release)"
    small = [a for a in SMALL if a != "--no-progress"]
    result = runner.invoke(app, ["ginc", "generate", "--out", str(tmp_path / "g"), *small, "-q"])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == line.format("--quiet", "--no-progress")
    assert (tmp_path / "g" / "train.parquet").exists()

    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(f'{{"text": "document {i} of ten"}}\n' for i in range(10)))
    args = ["data", "prepare", str(corpus), "--out", str(tmp_path / "t"), "--vocab-size", "300"]
    result = runner.invoke(app, [*args, "--limit", "6", "--eval-fraction", "0.5"])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == line.format("--limit", "--max-docs")
    assert "train: 3 docs" in result.stdout and "eval: 3 docs" in result.stdout

    result = runner.invoke(app, ["train", "--model", "gigantic", "--out", str(tmp_path / "r"),
                                 "--data", str(tmp_path / "g"), "--tokens", "1000"])  # fmt: skip
    assert line.format("--model", "--preset") in result.stderr
    assert "unknown model preset" in str(result.exception)  # the old flag still reaches it
    both = runner.invoke(app, ["train", "--model", "tiny", "--preset", "mini", "--out", "x"])
    assert "give --preset only (--model is its deprecated spelling)" in str(both.exception)


def test_generate_then_info(tmp_path):
    out = tmp_path / "data"
    result = runner.invoke(
        app, ["ginc", "generate", "--out", str(out), *SMALL, "--noise-fraction", "0.5"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["ginc", "info", str(out), "--json"])
    info = json.loads(result.output)
    assert info["splits"]["train"]["n_docs"] == 20
    assert info["splits"]["train"]["noise"]["fraction"] == 0.5
    assert info["family"]["vocab_size"] == 12
    result = runner.invoke(app, ["ginc", "info", str(out)])
    assert result.exit_code == 0 and "ground-truth diversity" in result.output


def test_flags_override_the_config(tmp_path):
    config = tmp_path / "spec.yaml"
    config.write_text("family: {vocab_size: 30}\nsplits:\n  train: {n_tokens: 640}\n")
    out = tmp_path / "data"
    result = runner.invoke(
        app, ["ginc", "generate", "-c", str(config), "--out", str(out), "--train-docs", "7",
              "--no-prompts", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    info = json.loads(runner.invoke(app, ["ginc", "info", str(out), "--json"]).output)
    assert info["family"]["vocab_size"] == 30
    assert info["splits"]["train"]["n_docs"] == 7
    assert "eval" not in info["splits"]  # the config's splits are kept as written


@pytest.mark.parametrize(
    ("args", "config_text", "needle"),
    [
        (["--train-docs", "-3"], None, "n_docs"),
        (["--vocab-size", "1"], None, "vocab_size"),
        (["--plan", "nested", "--n-eval", "4", "--k", "9"], None, "k=9"),
        ([], "family: [unclosed", "not valid YAML"),
        ([], "familly: {}", "unknown field"),
        ([], None, "cannot read config"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, args, config_text, needle):
    out = tmp_path / "out"
    config_args = []
    if config_text is not None or needle == "cannot read config":
        config = tmp_path / "spec.yaml"
        if config_text is not None:
            config.write_text(config_text)
        config_args = ["--config", str(config)]
    result = run_cli("ginc", "generate", "--out", str(out), *config_args, *SMALL[:-2], *args)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] in ([], ["spec.yaml"])


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\xff\xfe\x00name: x", "not UTF-8 text"),
        (b"name: x\n\x00\x01\x02", "binary, not YAML text"),
        (b"- a\n- b\n", "must be a YAML mapping"),
    ],
)
@pytest.mark.parametrize("command", ["ginc generate", "experiment run", "experiment validate"])
def test_a_bad_config_file_is_one_line_exit_2(tmp_path, command, content, needle):
    config = tmp_path / "spec.yaml"
    config.write_bytes(content)
    args = ["--config", str(config), "--out", str(tmp_path / "out")]
    if command != "ginc generate":
        args = [str(config)] + (["--out", str(tmp_path / "out")] if command.endswith("run") else [])
    result = run_cli(*command.split(), *args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


def test_existing_output_and_unfinished_input_are_refused(tmp_path):
    out = tmp_path / "data"
    assert run_cli("ginc", "generate", "--out", str(out), *SMALL).returncode == 0
    again = run_cli("ginc", "generate", "--out", str(out), *SMALL)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert run_cli("ginc", "generate", "--out", str(out), *SMALL, "--overwrite").returncode == 0
    missing = run_cli_process("ginc", "info", str(tmp_path / "nope"))  # a real process, once
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--tokens", "100"], "below one batch"),
        (["--preset", "gigantic"], "unknown model preset"),
        (["--data", "{tmp}"], "not a finished divlab data set"),
        ([], "--tokens is required"),
    ],
)
def test_train_bad_input_is_one_line_exit_2(one_concept, tmp_path, args, needle):
    out = tmp_path / "run"
    base = ["train", "--data", str(one_concept), "--out", str(out), "--seq-len", "64",
            "--batch-tokens", "512", "--no-progress"]  # fmt: skip
    if "--tokens" not in args and needle != "--tokens is required":
        base += ["--tokens", "1024"]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = run_cli(*base, *args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert not out.exists()


def test_train_then_evaluate_from_the_command_line(one_concept, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["train", "--data", str(one_concept), "--out", str(out), "--tokens", "2048",
              "--seq-len", "64", "--batch-tokens", "512", "--no-progress"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "gap to oracle" in result.output
    result = runner.invoke(app, ["evaluate", str(out / "model"), "--data", str(one_concept),
                                 "--limit", "4", "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["loss"]["n_docs"] == 4


def test_files_and_folders_that_are_not_experiments_say_what_they_are(one_concept):
    """The example GINC config and train spec, and a data set folder, are named for what
    they are (exit 2, one line, before torch loads), not dumped as unknown fields."""
    examples = Path(__file__).parents[1] / "examples"
    for name, what in (
        ("ginc-quickstart.yaml", "is a GINC data set config (use it with: divlab ginc generate"),
        ("train-quickstart.yaml", "is a training spec (use it with: divlab train --config"),
    ):
        result = run_cli("experiment", "validate", str(examples / name))
        assert result.returncode == 2 and what in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    from divlab.experiments.registry import kind_of_folder, spec_of_folder

    for read in (kind_of_folder, spec_of_folder):
        with pytest.raises(DataError, match="is a data set folder, not an experiment folder"):
            read(one_concept)


def test_raw_corpus_messages_name_the_flags(tmp_path):
    """A JSONL whose text is under another key names --field; a random probe on a raw
    corpus says why it cannot read it and what to do instead (in process: the messages
    are the DivlabErrors the entry point prints as one line with exit 2)."""
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(f'{{"body": "document number {i} of five"}}\n' for i in range(5)))
    wrong_field = runner.invoke(
        app, ["measure", "diversity", str(corpus), "--metric", "distinct-n"]
    )
    assert isinstance(wrong_field.exception, DataError)
    assert "--field NAME" in str(wrong_field.exception)
    random = runner.invoke(app, ["measure", "diversity", str(corpus), "--probe", "random:tiny"])
    assert "has no tokenizer to read the raw corpus" in str(random.exception)
    ok = runner.invoke(app, ["measure", "diversity", str(corpus), "--metric", "distinct-n",
                             "--field", "body"])  # fmt: skip
    assert ok.exit_code == 0, ok.output


def test_measure_reads_the_split_asked_for(tmp_path):
    """--split chooses a data set's split (train by default); a split it lacks is one
    error naming those it has."""
    data = tmp_path / "data"
    assert run_cli("ginc", "generate", "--out", str(data), *SMALL).returncode == 0
    args = ["measure", "diversity", str(data), "--metric", "distinct-n", "--json"]
    by_default = json.loads(run_cli(*args).stdout)
    on_eval = json.loads(run_cli(*args, "--split", "eval").stdout)
    assert by_default["data"].endswith(":train") and by_default["documents"] == 20
    assert on_eval["data"].endswith(":eval") and on_eval["documents"] == 5
    missing = run_cli(*args, "--split", "test")
    assert missing.returncode == 2 and "has no split 'test'; it has train, eval" in missing.stderr


def test_an_old_and_a_new_spelling_together_are_one_error(tmp_path):
    args = ["ginc", "generate", "--out", str(tmp_path / "d"), *SMALL[:-1]]
    both = run_cli(*args, "--quiet", "--progress")
    assert both.returncode == 2 and "give --no-progress only" in both.stderr
    assert not (tmp_path / "d").exists()
