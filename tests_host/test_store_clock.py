"""Atomic store and the wall clock, on both runtimes."""
import datetime

import pytest

from firmware.clock import Clock, format_iso, parse_iso
from firmware.store import Store
from tests_host.mpy import run_mp


def test_store_roundtrip_and_missing_file(tmp_path):
    st = Store(str(tmp_path / "flash"))
    assert st.read_json("x.json") == (None, None)
    st.write_json("x.json", {"a": [1, 2]})
    assert st.read_json("x.json") == ({"a": [1, 2]}, None)


def test_store_corrupt_file_is_quarantined_not_reread(tmp_path):
    st = Store(str(tmp_path))
    (tmp_path / "x.json").write_text("{garbage")
    obj, err = st.read_json("x.json")
    assert obj is None and "corrupt" in err
    assert (tmp_path / "x.json.corrupt").exists()
    assert st.read_json("x.json") == (None, None)


@pytest.mark.parametrize("content", [b'{"a": "\xff\xfe"}', b"[" * 100000, b"\x00\x01"])
def test_store_undecodable_file_reads_as_corrupt_and_is_quarantined(tmp_path, content):
    st = Store(str(tmp_path))
    (tmp_path / "x.json").write_bytes(content)
    assert st.read_json("x.json") == (None, "x.json corrupt, defaults used")
    assert (tmp_path / "x.json.corrupt").read_bytes() == content
    assert st.read_json("x.json") == (None, None)


def test_store_unreadable_file_reads_as_corrupt_not_raised(tmp_path):
    st = Store(str(tmp_path))
    (tmp_path / "x.json").mkdir()  # open() fails with an OSError other than "missing"
    assert st.read_json("x.json") == (None, "x.json corrupt, defaults used")
    assert st.read_json("x.json") == (None, None)


def test_store_ignores_stale_temp_file_of_a_cut_write(tmp_path):
    st = Store(str(tmp_path))
    st.write_json("x.json", {"v": 1})
    (tmp_path / "x.json.tmp").write_text('{"v": 2')
    assert st.read_json("x.json") == ({"v": 1}, None)
    assert not (tmp_path / "x.json.tmp").exists()


@pytest.mark.parametrize("text", ["2026-11-25T04:02:51Z", "2026-11-25T04:02:51.123Z", "2024-02-29T23:59:59+01:00",
                                  "1999-12-31T23:59:59-05:30", "2026-11-25T04:02:51.123456+00:00"])
def test_parse_iso_matches_datetime(text):
    ref = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parse_iso(text) == int(ref.timestamp())


@pytest.mark.parametrize("text", ["", "2026-11-25", "2026-13-01T00:00:00Z", "2026-11-25T04:02:51 UTC", 5, None])
def test_parse_iso_rejects_garbage(text):
    with pytest.raises((ValueError, TypeError)):
        parse_iso(text)


def test_format_iso_is_utc_seconds():
    assert format_iso(0) == "1970-01-01T00:00:00Z"
    assert format_iso(1795579371) == "2026-11-25T04:02:51Z"


def test_clock_is_unset_until_csms_time_and_follows_ticks():
    t = [1000]
    c = Clock(lambda: t[0])
    assert c.now() is None and c.iso() is None
    assert not c.set_iso("not a date")
    assert c.set_iso("2026-11-25T04:02:51Z")
    t[0] += 2500
    assert c.iso() == "2026-11-25T04:02:53Z"


def test_clock_reanchors_across_days_without_drift():
    t = [0]
    c = Clock(lambda: t[0])
    c.set(1000)
    for _ in range(10):
        t[0] = (t[0] + 86400000 + 999) & ((1 << 30) - 1)
        c.now()
    assert c.now() == 1000 + 10 * 86400 + 9  # 10 x 999 ms = 9.99 s, never rounded up


@pytest.mark.micropython
def test_clock_and_store_on_micropython(tmp_path):
    out = run_mp(
        "from firmware.clock import parse_iso, format_iso\n"
        "from firmware.store import Store\n"
        "print(parse_iso('2026-11-25T04:02:51.5+01:00'), format_iso(1795579371))\n"
        "s = Store(%r)\n"
        "s.write_json('a.json', {'k': 1})\n"
        "open(%r + '/b.json', 'w').write('{')\n"
        "open(%r + '/c.json', 'wb').write(b'{\"a\": \"\\xff\"}')\n"
        "print(s.read_json('a.json'), s.read_json('b.json'))\n"
        "print(s.read_json('c.json'), s.read_json('c.json'))\n" % ((str(tmp_path),) * 3))
    assert out.split("\n")[0] == "%d 2026-11-25T04:02:51Z" % (1795579371 - 3600)
    assert "({'k': 1}, None) (None, 'b.json corrupt, defaults used')" in out
    assert "(None, 'c.json corrupt, defaults used') (None, None)" in out
