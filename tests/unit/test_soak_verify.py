"""The soak's checker finds what it is there to find (no processes needed)."""

from tests.apps.soak_app import checksum
from tests.e2e.soak import Ledger, valid_data, verify


def answer(generation, version, *, data_version=None, version_end=None, gen_end=None):
    data = valid_data(version if data_version is None else data_version)
    end = version if version_end is None else version_end
    return (
        1234,
        generation,
        checksum(data),
        version,
        end,
        f"v{end}",
        generation if gen_end is None else gen_end,
    )


def summary(*answers):
    return {
        "answers": [(a, 3) for a in answers],
        "errors": {},
        "regressions": 0,
        "requests": 3 * len(answers),
        "seconds": 1.0,
    }


def ledger(tmp_path):
    book = Ledger(tmp_path / "config.yaml")
    for index in range(4):  # versions 1 and 3 valid, 2 and 4 invalid
        book.write(index)
    return book


def test_clean_answers_pass(tmp_path):
    verdict = verify(summary(answer(2, 1), answer(3, 3)), ledger(tmp_path))
    assert verdict.failures("p") == []
    assert (verdict.requests, verdict.generations) == (6, 2)


def test_each_violation_is_counted(tmp_path):
    book = ledger(tmp_path)
    cases = {
        "mixed": answer(3, 1, version_end=3),
        "generation_end": answer(3, 3, gen_end=4),
        "invalid_served": answer(4, 2),
        "content": answer(3, 3, data_version=1),
    }
    for name, bad in cases.items():
        verdict = verify(summary(answer(2, 1), bad), book)
        assert verdict.failures("p"), name
    assert verify(summary(answer(4, 2)), book).invalid_served == 3
    assert verify(summary(answer(3, 1, version_end=3)), book).mixed == 3
    conflict = verify(summary(answer(3, 1), answer(3, 3)), book)
    assert conflict.conflicts == 1
