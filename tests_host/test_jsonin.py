"""Strict JSON input (firmware/jsonin.py) and its users, the same on both runtimes:
RFC 8259 grammar where MicroPython's json is lax, no NaN/Infinity where CPython's
is lax, escaped surrogate pairs decoded into one character, lone surrogates and
invalid UTF-8 refused, nesting bounded; OCPP frames, the settings and the
vendor DataTransfer all go through it."""
import asyncio
import binascii
import json
import subprocess
import sys

import pytest

from firmware import jsonin
from firmware.ocpp.rpc import Rpc
from tests_host.mpy import MICROPYTHON, ROOT, mp_env, run_mp

# Texts on which the runtimes' parsers disagree with each other or with RFC 8259,
# and texts every parser must take.
CASES = [
    "[1,]", '{"a":1,}', "[,1]", "[1,,2]", "{,}", "[1 2]", '{"a" 1}', '{"a":1 "b":2}', "[true false]",
    '{"a"}', "{1:2}", "[true1]", "[1true]", "[01]", "[-01]", "[00]", "[1.]", "[.5]", "[1e]", "[+1]", "[0x10]",
    "[-]", "[NaN]", "[Infinity]", "[-Infinity]", '["a\x01b"]', '["a\tb"]', '["a\nb"]', '["\\x41"]', '["\\a"]',
    '["\\u12"]', '["\\ud800x"]', '["\\udc00"]', '["\\ud83d\\u0041"]', '["\\ud83d"]', "[1]x", "[1]\x00", "[] []",
    "", " ", "[1,2", '"abc', "'a'", "{a:1}", "[tru]", "[nulls]",
    "[1] ", " {\"a\" : [1, 2.5e3, -0, 0.0, true, false, null]} ", '["\\/\\"\\\\\\b\\f\\n\\r\\t"]',
    '["\\u00e9"]', '["\\ud83d\\ude97"]', '{"a\\ud83d\\ude97":"\\\\ud83d"}', '["\u00e9\U0001F697"]',
    '{"a":1,"a":2}', "[1E+5, 1e-5, 123456789012]", "[" * 20 + "]" * 20, "[" * 21 + "]" * 21,
    '{"k":' * 21 + "1" + "}" * 21,
    # Edges of the scan that jumps over strings and stops at backslashes.
    '["a\\"]', '["a\\\\"]', '["a\\\\\\"]', '["\\"', '["ab\\u00e9"]', '["\\u00e9x\\n"]', '["x\\ud83d\\ude97"]',
    '["\\"x"]', '["a","b\\n","c"]', '{"a\\"b":1}', '["a\x1fb"]', '["\x7f"]', '["a\x00"]', '{"k\x01":1}', '{"\u00e9":"\u00e9"}',
    '{"\u00e9\U0001F697":[1]}', "[\u00e91]", '["\\u00e9\u00e9"]', "[1\n,\t2\r]", '{"a"\t:\r1}', "[\x0b1]", "[\x0c1]", '["a\tb", 1]',
    "1", "-", "-0", "12", "1.5e3", "1.", "1e", "true", "tru", "nul", "false ", ' "a"', '"a\\"', '"\\\\"', "[1e5", "[-", "[1.5",
    "[1", "[", "{", '{"a"', '{"a":', "[[]]", "[{}]", "{}", "[]]", "[}", '{"a":1]', "[1}", "[0]", "[-0.0e-0]", "[1E+1,2e-1]",
    "[" * 19 + "{}" + "]" * 19, "[" * 19 + "{" + '"a":1' + "}" + "]" * 19, "[" * 19 + '{"a":[]}' + "]" * 19,
]

SCRIPT = r'''
import json, sys
from firmware import jsonin
out = []
for c in json.loads(sys.stdin.read()):
    try:
        out.append(["ok", jsonin.loads(c)])
    except ValueError:
        out.append(["error"])
print(json.dumps(out))
'''


def reference(text):
    """RFC 8259 by CPython's json: no NaN/Infinity, no lone surrogates, at most 20 levels."""
    def no_constant(name):
        raise ValueError(name)

    def check(v, depth):
        if isinstance(v, (list, dict)):
            if depth >= jsonin.MAX_DEPTH:
                raise ValueError("too deep")
            for x in (v.values() if isinstance(v, dict) else v):
                check(x, depth + 1)
            for x in (v if isinstance(v, dict) else ()):
                check(x, depth + 1)
        elif isinstance(v, str) and any(0xD800 <= ord(ch) <= 0xDFFF for ch in v):
            raise ValueError("lone surrogate")
    try:
        v = json.loads(text, parse_constant=no_constant)
        check(v, 0)
        return ["ok", v]
    except ValueError:
        return ["error"]


def _run(cmd):
    # ensure_ascii=False: the cases must reach MicroPython's own json.loads unescaped.
    proc = subprocess.run(cmd, input=json.dumps(CASES, ensure_ascii=False), encoding="utf-8", capture_output=True, text=True, cwd=str(ROOT),
                          timeout=60, env=mp_env())
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_strict_json_follows_rfc_8259_on_cpython():
    got = [["ok", jsonin.loads(c)] if reference(c)[0] == "ok" else _refused(c) for c in CASES]
    assert got == [reference(c) for c in CASES]


def _refused(text):
    with pytest.raises(ValueError):
        jsonin.loads(text)
    return ["error"]


@pytest.mark.micropython
def test_strict_json_accepts_and_refuses_the_same_on_micropython():
    mp = _run([MICROPYTHON, "-X", "heapsize=512K", "-c", SCRIPT])
    assert mp == [reference(c) for c in CASES]


def test_escaped_surrogate_pair_is_one_character_and_lone_ones_are_refused():
    assert jsonin.loads('"Garage \\ud83d\\ude97"') == "Garage \U0001F697"
    for bad in ('"\\ud800x"', '"\\ude97"', '"\\ud83d\\ud83d"'):
        with pytest.raises(ValueError, match="lone surrogate"):
            jsonin.loads(bad)


def test_bytes_must_be_strict_utf8():
    for bad in (b'"\xc0\xaf"', b'"\xed\xa0\xbd"', b'"\xf4\x90\x80\x80"', b'"\xe0\x80\x80"', b'"\xff"'):
        with pytest.raises(ValueError, match="not valid UTF-8"):
            jsonin.loads(bad)
    assert jsonin.loads(b'"\xf0\x9f\x9a\x97"') == "\U0001F697"


# Bytes on both runtimes: MicroPython's own decoder lets overlong forms, encoded
# surrogates and code points above U+10FFFF through.
UTF8_SCRIPT = r'''
import json
from firmware import jsonin
out = []
for t in (b'"\xc0\xaf"', b'"\xc1\xbf"', b'"\xe0\x80\x80"', b'"\xe0\x9f\xbf"', b'"\xed\xa0\xbd"', b'"a\xed\xbf\xbf"',
          b'"\xf0\x80\x80\x80"', b'"\xf0\x8f\xbf\xbf"', b'"\xf4\x90\x80\x80"', b'"\xf5\x80\x80\x80"', b'"\xf7\xbf\xbf\xbf"',
          b'"\xff"', b'"\x80"', b'"\xc3"', b'{"\xc3\xa9":"\xed\xa0\x80"}',
          b'"\xc2\x80"', b'"\xe0\xa0\x80"', b'"\xed\x9f\xbf"', b'"\xee\x80\x80"', b'"\xf0\x90\x80\x80"',
          b'"\xf4\x8f\xbf\xbf"', b'["\xc3\xa9", "\xe2\x82\xac", {"\xf0\x9f\x9a\x97": 1}]'):
    row = []
    for f in (jsonin.loads, jsonin.decode, jsonin.utf8_error):
        try:
            r = f(t)
            row.append("ok" if f is not jsonin.utf8_error or r is None else "error")
        except ValueError:
            row.append("error")
    out.append(row)
print(json.dumps(out))
'''
UTF8_EXPECTED = [["error"] * 3] * 15 + [["ok"] * 3] * 7


@pytest.mark.parametrize("rt", ["cpython", pytest.param("micropython", marks=pytest.mark.micropython)])
def test_strict_utf8_of_bytes_on_both_runtimes(rt):
    cmd = [sys.executable] if rt == "cpython" else [MICROPYTHON]
    proc = subprocess.run(cmd + ["-c", UTF8_SCRIPT], capture_output=True, text=True, cwd=str(ROOT), timeout=60,
                          env=mp_env())
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == UTF8_EXPECTED


def test_error_messages_never_quote_the_input():
    with pytest.raises(ValueError) as e:
        jsonin.loads('["secret-value",]')
    assert "secret" not in str(e.value) and "byte 16" in str(e.value)


def test_quote_is_plain_ascii_json_whatever_the_text():
    assert jsonin.quote("a\"b\U0001F697") == '"a\\"b\\ud83d\\ude97"'
    assert jsonin.quote("x" * 50) == json.dumps("x" * 40) + "..."
    assert jsonin.quote("\ud800") == '"\\ufffd"'


# ---- users: the same answers on both runtimes ---------------------------------------

DEEP = "[" * 1000 + "]" * 1000
FRAMES = [
    ("trailing_comma", '[2,"t1","GetConfiguration",{},]'),
    ("trailing_comma_in_payload", '[2,"t2","Reset",{"type":"Hard",}]'),
    ("missing_comma", '[2,"t3","Reset" {"type":"Hard"}]'),
    ("nan", '[2,"t4","Reset",{"type":NaN}]'),
    ("leading_zero", '[2,"t5","ChangeAvailability",{"connectorId":01,"type":"Operative"}]'),
    ("control_character", '[2,"t6","Reset",{"type":"Ha\x01rd"}]'),
    ("deep_nesting", '[2,"t7","GetConfiguration",{"key":' + DEEP + "}]"),
    ("lone_surrogate", '[2,"t8","DataTransfer",{"vendorId":"v","messageId":"\\ud800x"}]'),
    ("extra_data", '[2,"t9","Reset",{"type":"Hard"}]x'),
    ("unknown_escape", '[2,"t10","Reset",{"type":"\\Hard"}]'),
    # 30 characters by the schema's count (maxLength 50), 60 UTF-16 units.
    ("emoji_message_id", '[2,"t11","DataTransfer",{"vendorId":"v","messageId":"' + "\\ud83d\\ude97" * 30 + '"}]'),
    ("valid", '[2,"t12","Reset",{"type":"Hard"}]'),
]

RPC_SCRIPT = r'''
import asyncio, binascii, json, sys
from firmware.ocpp.rpc import Rpc

def echo(p):
    return {"status": "Accepted", "data": p.get("messageId", "")}

async def main():
    sent = []
    async def send(text):
        sent.append(text)
    rpc = Rpc(send, handlers={"Reset": lambda p: {"status": "Accepted"}, "DataTransfer": echo,
                              "GetConfiguration": lambda p: {"configurationKey": []},
                              "ChangeAvailability": lambda p: {"status": "Accepted"}}, id_prefix="x")
    for name, frame in json.loads(sys.stdin.read()):
        await rpc.feed(frame)
    # Bytes: the raw frame of a WebSocket text message, here overlong UTF-8.
    await rpc.feed(b'[2,"t13","DataTransfer",{"vendorId":"\xc0\xaf"}]')
    print(json.dumps([binascii.hexlify(t.encode()).decode() for t in sent]))

asyncio.run(main())
'''


def _rpc_answers(cmd):
    proc = subprocess.run(cmd, input=json.dumps(FRAMES), capture_output=True, text=True, cwd=str(ROOT),
                          timeout=60, env=mp_env())
    assert proc.returncode == 0, proc.stderr
    raw = [binascii.unhexlify(h) for h in json.loads(proc.stdout.strip().splitlines()[-1])]
    # Strict decoding: every frame the charger sends must be valid UTF-8.
    return [json.loads(b.decode("utf-8")) for b in raw]


def _check_rpc_answers(frames):
    by_id = {f[1]: f for f in frames}
    assert len(by_id) == len(frames) == len(FRAMES), frames  # one answer per CALL, t13 dropped
    for i, (name, _) in enumerate(FRAMES[:-2]):
        assert by_id["t%d" % (i + 1)][:3] == [4, "t%d" % (i + 1), "FormationViolation"], name
    assert by_id["t11"] == [3, "t11", {"status": "Accepted", "data": "\U0001F697" * 30}]
    assert by_id["t12"] == [3, "t12", {"status": "Accepted"}]


def test_invalid_json_calls_get_formation_violation_on_cpython():
    _check_rpc_answers(_rpc_answers([sys.executable, "-c", RPC_SCRIPT]))


@pytest.mark.micropython
def test_invalid_json_calls_get_formation_violation_on_micropython():
    _check_rpc_answers(_rpc_answers([MICROPYTHON, "-X", "heapsize=512K", "-c", RPC_SCRIPT]))


def test_answer_to_a_closed_connection_is_one_log_line(capsys):
    async def gone(text):
        raise OSError(104, "connection reset")

    async def go():
        rpc = Rpc(gone, handlers={"Reset": lambda p: {"status": "Accepted"}})
        await rpc.feed('[2,"a","Reset",{"type":"Hard"}]')
        await rpc.feed('[2,"b","Reset",{}]')
    asyncio.run(go())
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert [line for line in out.out.splitlines() if "not sent" in line] != []
    assert len(out.out.strip().splitlines()) == 2, out.out


VENDOR_SCRIPT = r'''
from firmware.ocpp.data_transfer import api_values as _api_values
class S:
    def api_get(self, k):
        return 1
print(_api_values(S(), "GetApiKeys", "[" * 1000 + "]" * 1000), _api_values(S(), "GetApiKeys", '["amp",]'))
'''


def test_vendor_data_transfer_with_deep_or_lax_data_is_rejected_on_cpython():
    proc = subprocess.run([sys.executable, "-c", VENDOR_SCRIPT], capture_output=True, text=True, cwd=str(ROOT),
                          timeout=60)
    assert proc.stdout.split() == ["('Rejected',", "None)", "('Rejected',", "None)"], proc.stderr


@pytest.mark.micropython
def test_vendor_data_transfer_with_deep_or_lax_data_is_rejected_on_micropython():
    assert run_mp(VENDOR_SCRIPT).split() == ["('Rejected',", "None)", "('Rejected',", "None)"]


SETTINGS_SCRIPT = r'''
import json
from firmware.settings import Settings, STR
from firmware.store import Store
import sys
d = sys.argv[-1] if len(sys.argv) > 1 else "."
open(d + "/settings.json", "w").write('{"fna": "Garage \\ud83d\\ude97", "x": 1}')
s = Settings(Store(d), report=print)
s.load()
s.define("fna", STR, "charger", hi=32)
s.define("ftx", STR, "", hi=32)
print(json.dumps([len(s.get("fna")), s.set("ftx", "bad \ud800"), s.get("ftx")]))
'''


def _check_settings(out):
    length, err, value = json.loads(out.strip().splitlines()[-1])
    assert length == 8
    assert err == "ftx: not valid text (lone surrogate)" or err.startswith("ftx: not valid text ("), err
    assert value == ""


def test_settings_decode_pairs_and_refuse_lone_surrogates_on_cpython(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SETTINGS_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=60)
    assert proc.returncode == 0, proc.stderr
    _check_settings(proc.stdout)


@pytest.mark.micropython
def test_settings_decode_pairs_and_refuse_lone_surrogates_on_micropython(tmp_path):
    proc = subprocess.run([MICROPYTHON, "-c", SETTINGS_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=60, env=mp_env())
    assert proc.returncode == 0, proc.stderr
    _check_settings(proc.stdout)


def test_after_work_that_finds_the_connection_gone_is_one_log_line(capsys):
    from firmware.ocpp.rpc import NotConnected

    async def after():
        raise NotConnected("not connected")

    async def go():
        sent = []

        async def send(text):
            sent.append(text)
        rpc = Rpc(send, handlers={"Reset": lambda p: ({"status": "Accepted"}, after)})
        await rpc.feed('[2,"a","Reset",{"type":"Hard"}]')
        for _ in range(5):
            await asyncio.sleep(0)  # the after-task runs
        return sent
    assert len(asyncio.run(go())) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err and "not connected" in out.out


# Earlier firmware on MicroPython wrote "Garage \ud83d\ude97" as two encoded surrogates.
OLD_FILE_SCRIPT = r'''
import json, sys
from firmware.settings import Settings, STR, INT
from firmware.store import Store
d = sys.argv[-1]
open(d + "/settings.json", "wb").write(b'{"fna": "Garage \xed\xa0\xbd\xed\xba\x97", "ocpph": 77}')
s = Settings(Store(d), report=print)
s.load()
s.define("fna", STR, "charger", hi=32)
s.define("ocpph", INT, 300, lo=0, hi=86400)
open(d + "/other.json", "wb").write(b'["\xed\xa0\xbd alone"]')
print(json.dumps([s.get("fna"), s.get("ocpph"), Store(d).read_json("other.json")[1]]))
'''


@pytest.mark.parametrize("rt", ["cpython", pytest.param("micropython", marks=pytest.mark.micropython)])
def test_settings_file_of_earlier_firmware_with_encoded_surrogate_pairs_keeps_every_setting(tmp_path, rt):
    cmd = [sys.executable] if rt == "cpython" else [MICROPYTHON]
    proc = subprocess.run(cmd + ["-c", OLD_FILE_SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          cwd=str(ROOT), timeout=60, env=mp_env() if rt == "micropython" else None)
    assert proc.returncode == 0, proc.stderr
    fna, hb, other = json.loads(proc.stdout.strip().splitlines()[-1])
    assert fna == "Garage \U0001F697" and hb == 77
    assert other == "other.json corrupt, defaults used"  # a lone encoded surrogate is still refused
