"""OCPP ConnectorPhaseRotation (with its MaxLength) and go-e `ocppr`: how the
charger's L1, L2, L3 are wired to the grid's phases, per connector."""
from firmware import log
from firmware.ocpp.configuration import NUMBER_OF_CONNECTORS
from firmware.settings import BOOL, CSL, INT, OCPP, PERSIST, R, RW

ROTATIONS = ("NotApplicable", "Unknown", "RST", "RTS", "SRT", "STR", "TRS", "TSR")
# go-e ocppr (phases rotated on the charger): L1 of the charger on grid L2, and so on.
_ROTATED = "STR"


def _parse_rotation(text):
    """'0.RST,1.STR' -> {0: 'RST', 1: 'STR'}, or an error text."""
    out = {}
    if not text:
        return out
    for item in text.split(","):
        parts = item.split(".", 1)
        try:
            n = int(parts[0])
            rot = parts[1]
        except (ValueError, IndexError):
            return "item %s: expected <connector>.<rotation>" % item
        if not 0 <= n <= NUMBER_OF_CONNECTORS:
            return "item %s: no connector %d" % (item, n)
        if rot not in ROTATIONS:
            return "item %s: rotation must be one of %s" % (item, ", ".join(ROTATIONS))
        if n in out:
            return "connector %d given twice" % n
        out[n] = rot
    return out


def _check_rotation(v):
    r = _parse_rotation(v)
    return r if isinstance(r, str) else None


def define_keys(settings):
    d = settings.define
    d("ConnectorPhaseRotationMaxLength", INT, NUMBER_OF_CONNECTORS + 1, R | OCPP)
    d("ConnectorPhaseRotation", CSL, "0.RST,1.RST", RW | PERSIST | OCPP, None, "ConnectorPhaseRotationMaxLength",
      check=_check_rotation)
    d("ocppr", BOOL, False, RW)


class PhaseRotation:
    def __init__(self, settings):
        self.settings = settings
        settings.watch("ConnectorPhaseRotation", self._on_rotation)
        settings.watch("ocppr", self._on_ocppr)
        self._on_rotation(None)

    def rotation(self, connector=1):
        """Phase rotation of a connector ('RST', ..., 'Unknown')."""
        r = _parse_rotation(self.settings.get("ConnectorPhaseRotation"))
        if isinstance(r, str):
            return "Unknown"
        return r.get(connector, "Unknown")

    def grid_phases(self, connector=1):
        """Grid phase names of the charger's L1, L2, L3 by the connector's rotation;
        (L1, L2, L3) when the rotation is unknown."""
        rot = self.rotation(connector)
        if len(rot) != 3:
            return ("L1", "L2", "L3")
        return tuple("L%d" % ("RST".index(ch) + 1) for ch in rot)

    def _on_rotation(self, s):
        # ocppr mirrors connector 1's rotation; set directly, not through set(), to avoid a loop.
        self.settings.find("ocppr").value = self.rotation(1) not in ("RST", "Unknown", "NotApplicable")

    def _on_ocppr(self, s):
        rot = _ROTATED if s.value else "RST"
        r = _parse_rotation(self.settings.get("ConnectorPhaseRotation"))
        if isinstance(r, str):
            r = {}
        if r.get(0) == rot and r.get(1) == rot:
            return
        r[0] = r[1] = rot
        text = ",".join("%d.%s" % (c, r[c]) for c in sorted(r))
        err = self.settings.set("ConnectorPhaseRotation", text)
        if err:
            log.error(err)
