"""The divlab command: help, version, generate/info, and one-line errors with exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import divlab
from divlab.cli import app
from divlab.errors import DataError

runner = CliRunner()
SMALL = [
    "--vocab-size", "12", "--n-values", "3", "--n-slots", "4", "--n-eval", "3",
    "--train-docs", "20", "--doc-length", "32", "--eval-docs", "5", "--eval-doc-length", "16",
    "--no-prompts", "--quiet",
]  # fmt: skip


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run the real entry point (as a user would) so exit codes and stderr are real."""
    code = "from divlab.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)


def test_version_and_help():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and divlab.__version__ in result.output
    for command in ([], ["ginc"], ["ginc", "generate"], ["ginc", "info"]):
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0, result.output
        assert "Usage" in result.output


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
              "--no-prompts", "-q"],
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
    missing = run_cli("ginc", "info", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--tokens", "100"], "below one batch"),
        (["--model", "gigantic"], "unknown model preset"),
        (["--data", "{tmp}"], "not a finished divlab data set"),
        ([], "--tokens is required"),
    ],
)
def test_train_bad_input_is_one_line_exit_2(one_concept, tmp_path, args, needle):
    out = tmp_path / "run"
    base = ["train", "--data", str(one_concept), "--out", str(out), "--seq-len", "64",
            "--batch-tokens", "512", "-q"]  # fmt: skip
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
              "--seq-len", "64", "--batch-tokens", "512", "-q"],
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
