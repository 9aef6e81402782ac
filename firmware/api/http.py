"""The local HTTP API, go-eCharger v2 compatible, on microdot.

`/api/status` and `/api/set` read and write the same settings registry that
OCPP uses. A board that simulates hardware adds `/sim/status` and `/sim/set`.
"""
import json

from microdot import Microdot, Request, Response

from firmware import log
from firmware.compat import mem_alloc, mem_free, mem_peak

# Bounded requests: a LAN client cannot make the charger allocate much.
Request.max_content_length = 4096
Request.max_body_length = 4096
Request.max_readline = 2048

_JSON = {"Content-Type": "application/json"}


def _dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def json_response(obj, status=200):
    return Response(_dumps(obj), status, _JSON)


def parse_value(text):
    """A go-e value: JSON text. Returns (value, None) or (None, error)."""
    try:
        return json.loads(text), None
    except ValueError:
        return None, "invalid JSON value " + _dumps(text[:40])


class HttpApi:
    def __init__(self, settings, board=None, page=None):
        self.settings = settings
        self.board = board
        self.app = app = Microdot()
        self.page = page
        self.heap_baseline = None  # heap in use once everything is imported and built
        app.route("/api/status")(self.status)
        app.route("/api/set")(self.set)
        app.route("/")(self.index)
        if board is not None and hasattr(board, "sim_status"):
            app.route("/sim/status")(self.sim_status)
            app.route("/sim/set")(self.sim_set)

    async def status(self, req):
        s = self.settings
        flt = req.args.get("filter")
        keys = flt.split(",") if flt else s.api_keys()
        out = {}
        for k in keys:
            try:
                out[k] = s.api_get(k)
            except KeyError:
                pass  # unknown keys are left out, HTTP 200 (go-e clients rely on it)
            except Exception as e:
                log.exception("status " + k, e)
                out[k] = None
        return json_response(out)

    async def set(self, req):
        out = {}
        ok = True
        for k in req.args:
            v, err = parse_value(req.args.get(k))
            if err is None:
                err = self.settings.set(k, v)
            if err is None:
                out[k] = True
            else:
                out[k] = err if err.startswith(k + ":") else k + ": " + err
                ok = False
        return json_response(out, 200 if ok else 500)

    async def index(self, req):
        if self.page is None:
            return Response("openwallbox", 200, {"Content-Type": "text/plain"})
        return Response(self.page(), 200, {"Content-Type": "text/html; charset=utf-8"})

    async def sim_status(self, req):
        d = self.board.sim_status()
        d["heap_baseline"] = self.heap_baseline
        d["heap_used"] = mem_alloc()
        d["heap_free"] = mem_free()
        d["heap_peak"] = mem_peak()
        return json_response(d)

    async def sim_set(self, req):
        out = {}
        ok = True
        for k in req.args:
            v, err = parse_value(req.args.get(k))
            if err is None:
                err = self.board.sim_set(k, v)
            out[k] = True if err is None else err
            ok = ok and err is None
        return json_response(out, 200 if ok else 400)

    async def serve(self, host, port):
        await self.app.start_server(host=host, port=port)

    def listening(self):
        return getattr(self.app, "server", None) is not None

    def shutdown(self):
        self.app.shutdown()
