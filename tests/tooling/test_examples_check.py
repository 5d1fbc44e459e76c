"""The examples check: outputs from the module, the emulator only in examples/local (planted mistakes fail it)."""

import shutil

from scripts.docs import examples_check


def _examples(tmp_path):
    copy = tmp_path / "examples"
    shutil.copytree(examples_check.EXAMPLES, copy, ignore=shutil.ignore_patterns(".terraform*"))
    return copy


def test_the_examples_as_committed_pass():
    assert examples_check.problems() == []


def test_an_output_that_rebuilds_the_emulators_url_fails(tmp_path, monkeypatch):
    examples = _examples(tmp_path)
    monkeypatch.setattr(examples_check, "ROOT", tmp_path)
    outputs = examples / "local" / "outputs.tf"
    outputs.write_text(
        outputs.read_text()
        + '\noutput "socket" {\n  description = "x"\n'
        + '  value       = "${var.endpoint}/_aws/execute-api/${module.realtime.websocket_api_id}/live"\n}\n'
    )

    assert examples_check.problems(examples) == [
        "local: output 'socket' builds its value "
        '("${var.endpoint}/_aws/execute-api/${module.realtime.websocket_api_id}/live"); '
        "take it from the module's outputs (module.realtime.<name>) or a resource of the example"
    ]


def test_a_literal_output_fails_even_in_the_emulators_example(tmp_path, monkeypatch):
    examples = _examples(tmp_path)
    monkeypatch.setattr(examples_check, "ROOT", tmp_path)
    outputs = examples / "local" / "outputs.tf"
    outputs.write_text(outputs.read_text() + '\noutput "region_again" {\n  value = "us-east-1"\n}\n')

    assert [p.split(" builds")[0] for p in examples_check.problems(examples)] == ["local: output 'region_again'"]


def test_the_emulator_or_a_region_in_an_example_for_aws_fails(tmp_path, monkeypatch):
    examples = _examples(tmp_path)
    monkeypatch.setattr(examples_check, "ROOT", tmp_path)
    main = examples / "minimal" / "main.tf"
    main.write_text(
        main.read_text()
        + '\nlocals {\n  api = "http://127.0.0.1:4566/_aws/execute-api/x/live"\n  where = "eu-west-1"\n}\n'
    )

    found = examples_check.problems(examples)

    assert len(found) == 2
    assert "the emulator's host or path outside examples/local" in found[0]
    assert "a hard-coded region" in found[1]
    assert found[0].startswith("examples/minimal/main.tf:")
