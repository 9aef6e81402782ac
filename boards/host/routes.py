"""The simulator's HTTP routes, on the charger's own server: `/sim/status` shows
the simulated world and the heap and flash figures the tests and benchmarks
read, `/sim/set` changes the world. The host entry adds them; a device bundle
does not carry them."""
import gc

from firmware.api.http import parse_value
from firmware.api.server import json_response
from firmware.compat import mem_alloc, mem_free, mem_peak


class SimRoutes:
    def __init__(self, board, store, server):
        self.board = board
        self.store = store  # its flash writes since boot (store_writes)
        self.server = server  # its open connections (http_clients)
        self.heap_baseline = None  # heap in use once everything is imported and built

    def add_to(self, api):
        api.add_route("/sim/status", self.status)
        api.add_route("/sim/set", self.set)

    async def status(self, req):
        if req.args.get("gc"):
            gc.collect()  # ?gc=1: heap_used is then the live heap (benchmarks)
        d = self.board.sim_status()
        d["heap_baseline"] = self.heap_baseline
        d["heap_used"] = mem_alloc()
        d["store_writes"] = self.store.writes
        d["heap_free"] = mem_free()
        d["heap_peak"] = mem_peak()
        d["http_clients"] = self.server.clients
        return json_response(d)

    async def set(self, req):
        out = {}
        ok = True
        for k in req.args:
            v, err = parse_value(req.args.get(k))
            if err is None:
                err = self.board.sim_set(k, v)
            out[k] = True if err is None else err
            ok = ok and err is None
        return json_response(out, 200 if ok else 400)
