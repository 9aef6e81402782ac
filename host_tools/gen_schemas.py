"""Generate firmware/ocpp/schemas.py from the OCPP 1.6 JSON schemas in the `ocpp` package.

The firmware validates payloads against compact string tables instead of the JSON
schemas themselves, walked in place by firmware/ocpp/validate.py, so nothing is
expanded into dicts on the heap. Every table lives in ONE string (TABLES) and
every enumeration in another (ENUMS): on the device each string object costs a
header and rounding on top of its characters, and from a ROMFS partition the two
strings are read from flash without any heap at all.

schemas.py holds:
    ACTIONS       the response names of the actions, sorted by action, each between "|"
                  ("|AuthorizeResponse|BootNotificationResponse|...|"): one string object where a
                  tuple would be one per name on the device heap; a request name is found in it
                  followed by "Response|", a response name followed by "|"
    TABLES        the tables, concatenated: request of ACTIONS[k], then its response
    OFFSETS       bytes, big-endian uint16: where table 2k (request) and 2k+1 start
    ENUMS         the enumerations, concatenated, values separated by "|"
    ENUM_OFFSETS  bytes, big-endian uint16: where enumeration K starts, plus the end

Table format (one node, written in prefix form):

    o{ENTRY,ENTRY,...}  object, unknown properties rejected (additionalProperties false)
    O{ENTRY,...}        object, unknown properties allowed
    ENTRY = [!]name:NODE   "!" marks a required property; entries sorted by name
    s[N]                string, optional maxLength N
    d                   string, format date-time
    eK                  string, one of enumeration K
    i[MODS]             integer (JSON booleans and 5.0 are not integers)
    n[MODS]             number
    MODS = any of >X (minimum) <X (maximum) %X (multipleOf), X a number literal
    b                   boolean
    a[N]NODE            array, optional minItems N, every item matches NODE

A node ends at the next "," or "}" of its enclosing object, so a validator can
skip an absent property by counting braces; a table ends with its root's "}".

Usage: python -m host_tools gen-schemas [--check] [--schemas DIR] [--out FILE]
"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "firmware", "ocpp", "schemas.py")
COMMAND = "python -m host_tools gen-schemas"

# Keywords that carry no constraint the firmware checks. "uri" format is left to
# the code that uses the URL; additionalItems only matters when "items" is a list,
# and the OCPP schemas always give a single item schema.
_IGNORED = {"$schema", "$id", "id", "title", "description", "javaType", "additionalItems"}
_IGNORED_FORMATS = {"uri"}


class SchemaUnsupported(Exception):
    """A schema uses a keyword the table format cannot express: extend the format, never drop it."""


def schema_dir():
    import ocpp

    return os.path.join(os.path.dirname(ocpp.__file__), "v16", "schemas")


def ocpp_version():
    try:
        from importlib.metadata import version

        return version("ocpp")
    except Exception:  # noqa: BLE001 - only decorates the header
        return "unknown"


def _num(x):
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise SchemaUnsupported("not a number: %r" % (x,))
    return repr(x)


class _Encoder:
    def __init__(self):
        self.enums = {}  # "|"-joined values -> index, assigned after all schemas are read

    def encode(self, node, root, where):
        if "$ref" in node:
            extra = set(node) - {"$ref"}
            if extra:
                raise SchemaUnsupported("%s: $ref with siblings %s" % (where, sorted(extra)))
            ref = node["$ref"]
            if not ref.startswith("#/definitions/"):
                raise SchemaUnsupported("%s: $ref %s" % (where, ref))
            return self.encode(root["definitions"][ref[len("#/definitions/"):]], root, where)
        t = node.get("type")
        keys = set(node) - _IGNORED - {"type"}
        if t == "object":
            return self._object(node, root, where, keys)
        if t == "array":
            keys -= {"items", "minItems"}
            self._no_more(keys, where)
            if "items" not in node or not isinstance(node["items"], dict):
                raise SchemaUnsupported("%s: array without a single item schema" % where)
            n = node.get("minItems")
            return "a" + ("" if not n else str(int(n))) + self.encode(node["items"], root, where + "[]")
        if t == "string":
            # "additionalProperties" on a string is meaningless in JSON schema (the
            # OCPP schemas carry it on enums); it constrains nothing.
            keys -= {"additionalProperties", "enum", "maxLength", "format"}
            self._no_more(keys, where)
            fmt = node.get("format")
            if fmt is not None and fmt not in _IGNORED_FORMATS and fmt != "date-time":
                raise SchemaUnsupported("%s: format %s" % (where, fmt))
            if "enum" in node:
                values = node["enum"]
                for v in values:
                    if not isinstance(v, str) or not v or "|" in v:
                        raise SchemaUnsupported("%s: enum value %r" % (where, v))
                if "maxLength" in node or fmt == "date-time":
                    raise SchemaUnsupported("%s: enum with maxLength/format" % where)
                key = "|".join(values)
                self.enums.setdefault(key, None)
                return "\0E" + key + "\0"  # placeholder, replaced by the index later
            if fmt == "date-time":
                if "maxLength" in node:
                    raise SchemaUnsupported("%s: date-time with maxLength" % where)
                return "d"
            if "maxLength" in node:
                return "s" + str(int(node["maxLength"]))
            return "s"
        if t in ("integer", "number"):
            keys -= {"minimum", "maximum", "multipleOf"}
            self._no_more(keys, where)
            out = "i" if t == "integer" else "n"
            if "minimum" in node:
                out += ">" + _num(node["minimum"])
            if "maximum" in node:
                out += "<" + _num(node["maximum"])
            if "multipleOf" in node:
                out += "%" + _num(node["multipleOf"])
            return out
        if t == "boolean":
            self._no_more(keys, where)
            return "b"
        raise SchemaUnsupported("%s: type %r" % (where, t))

    def _object(self, node, root, where, keys):
        keys -= {"properties", "required", "additionalProperties", "definitions"}
        self._no_more(keys, where)
        props = node.get("properties", {})
        required = node.get("required", [])
        for name in required:
            if name not in props:
                raise SchemaUnsupported("%s: required %s has no schema" % (where, name))
        extra = node.get("additionalProperties", True)
        if extra not in (True, False):
            raise SchemaUnsupported("%s: additionalProperties schema" % where)
        entries = []
        for name in sorted(props):
            if not name or not all(c.isalnum() or c == "_" for c in name):
                raise SchemaUnsupported("%s: property name %r" % (where, name))
            entries.append(("!" if name in required else "") + name + ":"
                           + self.encode(props[name], root, where + "." + name))
        return ("o" if extra is False else "O") + "{" + ",".join(entries) + "}"

    @staticmethod
    def _no_more(keys, where):
        if keys:
            raise SchemaUnsupported("%s: unsupported keywords %s" % (where, sorted(keys)))


def build_tables(directory=None):
    """Return (actions, enums, {name: table}) for every schema file in directory."""
    directory = directory or schema_dir()
    enc = _Encoder()
    raw = {}
    for fname in sorted(os.listdir(directory)):
        if not fname.endswith(".json"):
            continue
        name = fname[:-5]
        with open(os.path.join(directory, fname), encoding="utf-8") as f:
            schema = json.load(f)
        raw[name] = enc.encode(schema, schema, name)
    enums = sorted(enc.enums)
    index = {e: i for i, e in enumerate(enums)}
    tables = {}
    for name, text in raw.items():
        parts = text.split("\0")
        # Placeholders alternate with plain text: "\0E<values>\0".
        out = []
        for k, part in enumerate(parts):
            out.append("e%d" % index[part[1:]] if k % 2 else part)
        tables[name] = "".join(out)
    actions = sorted(n for n in tables if not n.endswith("Response"))
    for a in actions:
        if a + "Response" not in tables:
            raise SchemaUnsupported("%s has no response schema" % a)
    if len(tables) != 2 * len(actions):
        raise SchemaUnsupported("response schema without a request schema")
    return actions, enums, tables


def _u16(n):
    if not 0 <= n < 0x10000:
        raise SchemaUnsupported("offset %d does not fit 16 bits" % n)
    return "\\x%02x\\x%02x" % (n >> 8, n & 0xFF)


def render(directory=None):
    actions, enums, tables = build_tables(directory)
    lines = [
        "# Generated by `%s` from the OCPP 1.6 JSON schemas in ocpp==%s." % (COMMAND, ocpp_version()),
        "# Do not edit: regenerate. Format: see host_tools/gen_schemas.py.",
        '"""Compact OCPP 1.6 validation tables, read in place by validate.py."""',
        "",
        "# Every OCPP 1.6 action as its response name, each between \"|\"; each has a request and a",
        "# response table.",
        "ACTIONS = (",
        '    "|"',
    ]
    lines += ["    %s" % json.dumps(a + "Response|") for a in actions]
    lines += [")", "", "TABLES = ("]
    offsets = []
    pos = 0
    for a in actions:
        for name in (a, a + "Response"):
            offsets.append(pos)
            lines.append("    %s  # %s" % (json.dumps(tables[name]), name))
            pos += len(tables[name])
    lines += [")", "", "# Start of the request and response table of each action in TABLES.", "OFFSETS = ("]
    for k, a in enumerate(actions):
        lines.append('    b"%s%s"  # %s' % (_u16(offsets[2 * k]), _u16(offsets[2 * k + 1]), a))
    lines += [")", "", "ENUMS = ("]
    starts = []
    pos = 0
    for i, e in enumerate(enums):
        starts.append(pos)
        lines.append("    %s  # e%d" % (json.dumps(e), i))
        pos += len(e)
    starts.append(pos)
    lines += [")", "", "# Start of each enumeration in ENUMS, then the end of the last.", "ENUM_OFFSETS = ("]
    for i in range(0, len(starts), 8):
        lines.append('    b"%s"' % "".join(_u16(n) for n in starts[i:i + 8]))
    lines += [")", ""]
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
    p.add_argument("--check", action="store_true",
                   help="exit 1 if the checked-in file differs from a fresh generation")
    p.add_argument("--schemas", default=None, help="schema directory (default: the installed ocpp package)")
    p.add_argument("--out", default=DEFAULT_OUT, help="output file (default: %(default)s)")
    args = p.parse_args(argv)
    try:
        text = render(args.schemas)
    except SchemaUnsupported as e:
        print("gen-schemas: %s" % e, file=sys.stderr)
        return 2
    if args.check:
        try:
            with open(args.out, encoding="utf-8") as f:
                current = f.read()
        except OSError:
            current = None
        if current != text:
            print("gen-schemas: %s is out of date; run `%s`" % (args.out, COMMAND), file=sys.stderr)
            return 1
        print("gen-schemas: %s is up to date" % args.out)
        return 0
    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, args.out)
    print("gen-schemas: wrote %s (%d bytes)" % (args.out, len(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
