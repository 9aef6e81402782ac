"""The regression fuzzer (host_tools/fuzz.py), a short seeded run per runtime: broken
frames, schema-valid and schema-invalid calls of every central-system action, garbage,
oversized and slow HTTP requests and every API key with wrong values; no finding allowed.
Long runs: make fuzz SECONDS=600."""
import pytest

from host_tools import fuzz
from tests_host.conftest import RUNTIMES

pytestmark = pytest.mark.e2e

SEEDS = {"micropython": 8101, "cpython": 8102}


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_seeded_fuzz_run_finds_nothing(runtime, tmp_path):
    found = fuzz.run(runtime, cases=200, http_cases=40, seed=SEEDS[runtime], state_dir=tmp_path / "flash",
                     out=print)
    assert not found, "\n".join(found.items)


def test_reference_reading_of_frames_matches_the_firmware_rules():
    assert fuzz.expected_answer('[2,"a","GetConfiguration",{},]') == ("a", {fuzz.FV})
    assert fuzz.expected_answer('[2,"a","Reset",{"type":NaN}]') == ("a", {fuzz.FV})
    assert fuzz.expected_answer('[2,"' + "i" * 37 + '",') == (None, None)
    assert fuzz.expected_answer('[2,7,"Reset",{}]') == ("7", {fuzz.FV})
    assert fuzz.expected_answer('[2,"a","Reset"]') == ("a", {fuzz.FV})
    assert fuzz.expected_answer('[3,"a",{}]') == (None, None)
