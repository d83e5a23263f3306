"""results.json is defined once (ar_experiments/record/results.py): the writer writes its keys and no other, the
report's validation checks every one of them, and the report's columns name only them."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from ar_experiments.record.results import KEYS, KINDS, Fraction, RunRecord, record_from
from ar_experiments.report.build import analyse, runs_csv
from ar_experiments.report.formatting import RESULT_COLUMNS
from ar_experiments.report.results_validation import read_results, record_problem
from ar_experiments.report.sweep_results import Sweep
from ar_experiments.training.run_record import write_results

SAMPLES = {Fraction: 0.5, int: 3, float: 1.5, str: "text", bool: True, dict: {"torch": "2.14.1"}, list: ["split=2"]}


def full_record() -> RunRecord:
    """A record with a value of its own type in every key."""
    return RunRecord(**{key: SAMPLES[KINDS[key]] for key in KEYS})


def test_the_run_tables_columns_are_keys_of_the_record():
    unknown = [key for _, key, _ in RESULT_COLUMNS if key not in KEYS]
    assert not unknown, f"report/formatting.py's RESULT_COLUMNS name keys results.json never holds: {unknown}"


def test_the_report_checks_every_key_of_the_record():
    unchecked = [key for key in KEYS if record_problem({key: object()}) is None]
    assert not unchecked, f"record_problem accepts anything in {unchecked}"
    assert all(key in record_problem({key: object()}) for key in KEYS), "a problem names its key"
    assert record_problem(asdict(full_record())) is None
    for key in (key for key in KEYS if KINDS[key] is Fraction):
        assert "outside [0, 1]" in record_problem({key: 57.3}), key
    assert record_problem({"test_top1": 0.5, "a_key_of_another_version": [object]}) is None


def test_the_writer_writes_every_key_of_the_record_and_the_report_reads_and_tabulates_them(tmp_path):
    job = tmp_path / "sweep" / "0-x3d_m-8f-split1"
    job.mkdir(parents=True)
    record = full_record()
    path = write_results(job, record)
    assert list(json.loads(path.read_text())) == list(KEYS)
    read, problem = read_results(path)
    assert problem is None and record_from(read) == record
    columns = set(runs_csv(analyse(Sweep.read(tmp_path / "sweep"))).columns)
    missing = [key for key in KEYS if key not in columns and f"{key}.torch" not in columns]
    assert not missing, f"report.csv lacks {missing}"


def test_a_key_the_record_does_not_define_cannot_be_set():
    record = RunRecord()
    with pytest.raises(AttributeError):
        record.test_top1_mv = 0.5
    with pytest.raises(TypeError):
        RunRecord(test_top1_mv=0.5)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b" \n", " is empty"),
        (b"\xff\xfe", " cannot be read: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
        (b'{"status": ', " is not JSON (Expecting value: line 1 column 12 (char 11))"),
        (b"[1, 2]", ": holds a list, not a JSON object"),
        (b'{"test_top1": "0.6", "seed": 1.5}', ": test_top1 is '0.6', not a number"),
    ],
)
def test_a_results_file_that_cannot_be_believed_is_refused_naming_the_file_and_the_first_reason(
    tmp_path, content, reason
):
    path = tmp_path / "results.json"
    path.write_bytes(content)
    assert read_results(path) == (None, f"{path}{reason}")


def test_a_sound_results_file_is_read_as_it_is_and_a_folder_in_its_place_cannot_be_read(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"status": "completed", "test_top1": 0.5, "note": "caf\u00e9"}', encoding="utf-8")
    assert read_results(path) == ({"status": "completed", "test_top1": 0.5, "note": "caf\u00e9"}, None)
    folder = tmp_path / "0" / "results.json"
    folder.mkdir(parents=True)
    record, problem = read_results(folder)
    assert record is None and problem.startswith(f"{folder} cannot be read: [Errno 21] Is a directory")
