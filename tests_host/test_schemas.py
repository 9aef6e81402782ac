"""The generated validation tables match the official OCPP 1.6 schemas, and validate()
agrees with jsonschema (the reference) on valid and mutated payloads."""
import copy
import datetime as dt
import decimal
import json
import os
import re

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware.ocpp import schemas, validate as validate_mod
from firmware.ocpp.validate import is_datetime, known, validate
from host_tools import gen_schemas

SCHEMA_DIR = gen_schemas.schema_dir()
NAMES = sorted(f[:-5] for f in os.listdir(SCHEMA_DIR) if f.endswith(".json"))


def _load(name, parse_float=float):
    with open(os.path.join(SCHEMA_DIR, name + ".json"), encoding="utf-8") as f:
        return json.load(f, parse_float=parse_float)


# ---- reference validator ----------------------------------------------------------

_DT = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
    r"([Zz]|[+-]([0-9]{2})(:?([0-9]{2}))?)?", re.ASCII)


def _ref_datetime(value):
    if not isinstance(value, str):
        return True
    m = _DT.fullmatch(value)
    if not m:
        return False
    mo, d, h, mi, s = (int(m.group(k)) for k in (2, 3, 4, 5, 6))
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h <= 23 and mi <= 59 and s <= 60):
        return False
    if m.group(9) is not None and int(m.group(9)) > 23:
        return False
    if m.group(11) is not None and int(m.group(11)) > 59:
        return False
    return True


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date-time")(_ref_datetime)

# Like the ocpp package: draft-04 semantics for every file, floats parsed as Decimal
# so multipleOf 0.1 is exact.
_REF = {n: jsonschema.Draft4Validator(_load(n, decimal.Decimal), format_checker=_FORMATS) for n in NAMES}

CATEGORY = {
    "required": "OccurenceConstraintViolation",
    "minItems": "OccurenceConstraintViolation",
    "type": "TypeConstraintViolation",
    "enum": "PropertyConstraintViolation",
    "maxLength": "PropertyConstraintViolation",
    "format": "PropertyConstraintViolation",
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "multipleOf": "PropertyConstraintViolation",
    "additionalProperties": "FormationViolation",
}


def reference_codes(name, payload):
    """The set of error codes jsonschema's errors map to (empty when valid)."""
    doc = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    return {CATEGORY[e.validator] for e in _REF[name].iter_errors(doc)}


# ---- payload strategies from the schemas ----------------------------------------

def _resolve(node, root):
    if "$ref" in node:
        return root["definitions"][node["$ref"].split("/")[-1]]
    return node


_DT_FORMATS = ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S%z",
               "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S")


def _format_datetime(t, fmt, colon):
    s = t.strftime(fmt)
    if colon and s[-5] in "+-":  # %z gives +0200; also produce +02:00
        s = s[:-2] + ":" + s[-2:]
    return s


def _datetimes():
    zones = [dt.timezone.utc, dt.timezone(dt.timedelta(hours=2)), dt.timezone(-dt.timedelta(hours=5, minutes=30))]
    return st.builds(
        _format_datetime,
        st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2100, 1, 1),
                     timezones=st.sampled_from(zones)),
        st.sampled_from(_DT_FORMATS), st.booleans())


def strategy(node, root):
    node = _resolve(node, root)
    t = node["type"]
    if t == "object":
        props = node.get("properties", {})
        req = set(node.get("required", ()))
        return st.fixed_dictionaries(
            {k: strategy(v, root) for k, v in props.items() if k in req},
            optional={k: strategy(v, root) for k, v in props.items() if k not in req})
    if t == "array":
        return st.lists(strategy(node["items"], root), min_size=node.get("minItems", 0), max_size=3)
    if t == "string":
        if "enum" in node:
            return st.sampled_from(node["enum"])
        if node.get("format") == "date-time":
            return _datetimes()
        n = node.get("maxLength")
        if n is None:
            return st.text(max_size=30)
        return st.one_of(st.text(max_size=min(n, 30)), st.just("x" * n), st.just("\u00e9" * n))
    if t == "integer":
        return st.integers(-2 ** 31, 2 ** 31)
    if t == "number":
        if "multipleOf" in node:
            return st.integers(-100000, 100000).map(lambda i: i / 10)
        return st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6))
    if t == "boolean":
        return st.booleans()
    raise AssertionError(t)


_STRATEGIES = {n: strategy(_load(n), _load(n)) for n in NAMES}


def _sites(node, root, value, parent, key):
    """Yield (parent, key, schema node) for every value in the payload."""
    node = _resolve(node, root)
    yield parent, key, node
    if node["type"] == "object" and isinstance(value, dict):
        for k, v in value.items():
            yield from _sites(node["properties"][k], root, v, value, k)
    elif node["type"] == "array" and isinstance(value, list):
        for i, v in enumerate(value):
            yield from _sites(node["items"], root, v, value, i)


_OTHER_TYPES = {
    "object": ["x", 1, [], None, True],
    "array": [{}, "x", 1, None],
    "string": [1, 1.5, True, None, [], {}],
    "integer": ["1", 1.5, 5.0, True, False, None, [], {}],
    "number": ["1", True, None, [], {}],
    "boolean": [1, 0, "true", None],
}


def _mutations(site):
    parent, key, node = site
    t = node["type"]
    out = []
    if parent is not None:  # the root keeps its type: a non-object payload is a frame error
        out += [("retype", v) for v in _OTHER_TYPES[t]]
    if t == "object":
        out.append(("unknown", None))
        out += [("drop", r) for r in node.get("required", ())]
    if t == "string" and "enum" in node:
        out += [("set", "NotAnEnumValue"), ("set", node["enum"][0].lower()), ("set", node["enum"][0] + " ")]
    if t == "string" and "maxLength" in node:
        out += [("set", "x" * (node["maxLength"] + 1)), ("set", "\u00e9" * (node["maxLength"] + 1))]
    if t == "string" and node.get("format") == "date-time":
        out += [("set", v) for v in ("yesterday", "2026-13-25T04:02:51Z", "2026-11-25T24:02:51Z",
                                     "2026-11-25 04:02:51Z", "2026-11-25", "2026-11-25T04:02:51+2",
                                     "2026-11-25T04:02:51.Z", "2026-11-25T04:02:51ZZ", "")]
    if t == "array" and node.get("minItems"):
        out.append(("set", []))
    if t == "number" and "multipleOf" in node:
        out += [("set", 0.15), ("set", 21.45), ("set", 7.0001)]
    return out


@st.composite
def mutated_payloads(draw):
    name = draw(st.sampled_from(NAMES))
    payload = draw(_STRATEGIES[name])
    root = _load(name)
    sites = list(_sites(root, root, payload, None, None))
    choices = [(i, m) for i, s in enumerate(sites) for m in _mutations(s)]
    if not choices:
        return name, payload
    i, (kind, arg) = draw(st.sampled_from(choices))
    parent, key, node = sites[i]
    target = payload if parent is None else parent[key]
    if kind == "retype" or kind == "set":
        parent[key] = copy.deepcopy(arg)
    elif kind == "unknown":
        target["zzNotInSchema"] = 1
    elif kind == "drop":
        target.pop(arg, None)
    return name, payload


# ---- the checked-in file ------------------------------------------------------------

def test_checked_in_tables_equal_a_fresh_generation():
    with open(gen_schemas.DEFAULT_OUT, encoding="utf-8") as f:
        current = f.read()
    assert current == gen_schemas.render(), "run `python -m host_tools gen-schemas`"


def test_check_mode_passes_on_the_checked_in_file():
    assert gen_schemas.main(["--check"]) == 0


def test_check_mode_fails_when_the_file_is_out_of_date(tmp_path):
    stale = tmp_path / "schemas.py"
    stale.write_text(gen_schemas.render().replace("s20", "s21", 1))
    assert gen_schemas.main(["--check", "--out", str(stale)]) == 1


def test_generation_is_deterministic():
    assert gen_schemas.render() == gen_schemas.render()


def test_every_schema_file_has_a_table_and_every_action_a_response():
    for n in NAMES:
        assert known(n), n
    assert len(schemas.OFFSETS) == 2 * len(NAMES)
    actions = [n[:-8] for n in schemas.ACTIONS.strip("|").split("|")]
    assert set(actions) == {n for n in NAMES if not n.endswith("Response")}
    assert len(actions) * 2 == len(NAMES)


def test_generator_refuses_keywords_it_cannot_express(tmp_path):
    (tmp_path / "Foo.json").write_text(json.dumps(
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "^x$"}}}))
    (tmp_path / "FooResponse.json").write_text(json.dumps({"type": "object", "properties": {}}))
    with pytest.raises(gen_schemas.SchemaUnsupported):
        gen_schemas.build_tables(str(tmp_path))


def test_generator_encodes_ranges_and_open_objects(tmp_path):
    (tmp_path / "Foo.json").write_text(json.dumps({
        "type": "object", "additionalProperties": False, "required": ["a"],
        "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 10},
                       "b": {"type": "number", "minimum": -1.5, "multipleOf": 0.5},
                       "c": {"type": "object", "properties": {"d": {"type": "boolean"}}}}}))
    (tmp_path / "FooResponse.json").write_text(json.dumps({"type": "object", "properties": {}}))
    _, _, tables = gen_schemas.build_tables(str(tmp_path))
    table = tables["Foo"]
    assert table == "o{!a:i>0<10,b:n>-1.5%0.5,c:O{d:b}}"

    def check(payload):
        r = validate_mod._node(table, 0, payload)
        return r[0] if isinstance(r, tuple) else None

    assert check({"a": 0, "b": -1.5, "c": {"d": True, "other": 1}}) is None
    assert check({"a": 10, "b": 2.5}) is None
    assert check({"a": 11}) == "PropertyConstraintViolation"
    assert check({"a": -1}) == "PropertyConstraintViolation"
    assert check({"a": 1, "b": -2}) == "PropertyConstraintViolation"
    assert check({"a": 1, "b": 0.25}) == "PropertyConstraintViolation"
    assert check({"a": 1, "c": {"d": 1}}) == "TypeConstraintViolation"
    assert check({"a": 1, "e": 1}) == "FormationViolation"


# ---- validate() against the reference --------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_minimal_and_full_examples_are_valid(name):
    root = _load(name)

    def example(node, full):
        node = _resolve(node, root)
        t = node["type"]
        if t == "object":
            req = node.get("required", ())
            return {k: example(v, full) for k, v in node.get("properties", {}).items() if full or k in req}
        if t == "array":
            return [example(node["items"], full)] * max(node.get("minItems", 0), 1 if full else 0)
        if t == "string":
            if "enum" in node:
                return node["enum"][-1]
            if node.get("format") == "date-time":
                return "2026-11-25T04:02:51.250+01:00" if full else "2026-11-25T04:02:51Z"
            return "v" * node.get("maxLength", 8)
        return {"integer": 7, "number": 21.4, "boolean": False}[t]

    for full in (False, True):
        payload = example(root, full)
        assert reference_codes(name, payload) == set()
        assert validate(name, payload) is None, (name, payload)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(NAMES).flatmap(lambda n: st.tuples(st.just(n), _STRATEGIES[n])))
def test_generated_valid_payloads_pass(case):
    name, payload = case
    assert reference_codes(name, payload) == set(), "strategy produced an invalid payload"
    assert validate(name, payload) is None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_payloads())
def test_mutated_payloads_agree_with_jsonschema(case):
    name, payload = case
    expected = reference_codes(name, payload)
    got = validate(name, payload)
    if not expected:
        assert got is None, (name, payload, got)
    else:
        assert got is not None, (name, payload, expected)
        # A value of the wrong type also fails its enum/maxLength in jsonschema;
        # OCPP-J calls that a type error ("somestring": 12), so type wins.
        if "TypeConstraintViolation" in expected:
            expected = {"TypeConstraintViolation"}
        assert len(expected) == 1, expected
        assert got[0] in expected, (name, payload, got, expected)


def test_payload_that_is_not_an_object_is_a_formation_violation():
    assert validate("Heartbeat", [])[0] == "FormationViolation"


def test_boolean_is_not_an_integer():
    assert validate("Reset", {"type": "Hard"}) is None
    err = validate("ChangeAvailability", {"connectorId": True, "type": "Operative"})
    assert err[0] == "TypeConstraintViolation"


def test_integral_float_is_not_an_integer():
    err = validate("ChangeAvailability", {"connectorId": 1.0, "type": "Operative"})
    assert err[0] == "TypeConstraintViolation"


@pytest.mark.parametrize("limit", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_number_is_a_property_violation_not_an_exception(limit):
    payload = {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {
            "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}}
    assert validate("SetChargingProfile", payload)[0] == "PropertyConstraintViolation"


def test_error_description_names_the_nested_path():
    err = validate("MeterValues", {"connectorId": 1, "meterValue": [
        {"timestamp": "2026-11-25T04:02:51Z", "sampledValue": [{"value": "1"}, {"value": "2", "unit": "Celcius?"}]}]})
    assert err[0] == "PropertyConstraintViolation"
    assert err[1].startswith("meterValue[0].sampledValue[1].unit: ")


def test_unknown_schema_name_is_not_known():
    assert not known("NoSuchAction")
    assert not known("NoSuchActionResponse")
    assert not known("ACTIONS")
    assert not known("ENUMS")
    assert validate("NoSuchAction", {})[0] == "NotImplemented"


@pytest.mark.parametrize("text", [
    "2026-11-25T04:02:51Z", "2026-11-25T04:02:51.123Z", "2026-11-25T04:02:51+02:00",
    "2026-11-25T04:02:51-0530", "2026-11-25T04:02:51", "2026-11-25t04:02:51z", "2026-12-31T23:59:60Z"])
def test_datetime_accepts(text):
    assert is_datetime(text)
    assert _ref_datetime(text)


@pytest.mark.parametrize("text", [
    "", "2026-11-25", "2026-11-25T04:02Z", "2026-00-25T04:02:51Z", "2026-11-32T04:02:51Z",
    "2026-11-25T04:60:51Z", "2026-11-25T04:02:51.Z", "2026-11-25T04:02:51+2",
    "2026-11-25T04:02:51+24:00", "2026-11-25 04:02:51Z", "2026-11-25T04:02:51Zjunk", "\u0662026-11-25T04:02:51Z"])
def test_datetime_rejects(text):
    assert not is_datetime(text)
    assert not _ref_datetime(text)


def test_action_names_are_found_whole_in_the_actions_string():
    from firmware.ocpp.validate import is_action
    assert is_action("Authorize") and is_action("UpdateFirmware") and is_action("Reset")
    for name in ("AuthorizeResponse", "Response", "", "Notification", "BootNotificationRes", "uthorize",
                 "Authorize|BootNotification", "AuthorizeResponse|", "|Authorize", 5, None):
        assert not is_action(name), name
    assert known("BootNotificationResponse") and not known("Notification") and not known("NotificationResponse")
    assert not known("Authorize|") and not known("ResponseResponse")
