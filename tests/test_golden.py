"""Numbers measured before a change stay the same bits after it: the
records of a few MLP, GPT, ResNet and user-family cells, written by
tests/golden/make_golden.py at the commit that added the golden file, are
measured again and every column the golden file holds compared exactly
(floats by their repr).  Columns added since are left out of the
comparison; a golden file made on another torch or CPU architecture is
skipped (the same machine gives the same bytes, another need not)."""

import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
sys.path.insert(0, str(GOLDEN))

import make_golden  # noqa: E402

DATA = json.loads((GOLDEN / "records.json").read_text())


@pytest.mark.skipif(DATA["machine"] != make_golden.machine(),
                    reason=f"golden numbers of {DATA['machine']}")
@pytest.mark.parametrize("entry", DATA["cells"],
                         ids=lambda e: f"{e['kind']}-{e['cell']['depth']}-{e['cell']['shortcut']}")
def test_measured_numbers_equal_the_golden_ones_bit_for_bit(entry):
    records = make_golden.measure(entry["kind"], entry["cell"], entry["options"])
    assert len(records) == len(entry["records"])
    for got, golden in zip(records, entry["records"]):
        assert {k: repr(got[k]) if isinstance(got[k], float) else got[k]
                for k in golden} == golden
