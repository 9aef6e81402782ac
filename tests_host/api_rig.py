"""The charger's HTTP API in one interpreter, without sockets: the whole App over
the simulated board, its routes (go-e API, status page, /sim/*) reached through
microdot's test client. Runs on CPython (in the test process) and on MicroPython
(serve(): one request per line of stdin, for tests_host/conftest.py's `api`).

What it leaves out is the server's handling of connections (limits, slow
clients, the connection cap): the end-to-end tests cover those over real sockets.
"""
import asyncio
import json
from binascii import hexlify, unhexlify

from microdot.test_client import TestClient

from boards.host.board import HostBoard
from boards.host.routes import SimRoutes
from firmware.app import App

HOST = "127.0.0.1:8080"
BASE = "http://" + HOST


class Rig:
    def __init__(self, state_dir, sets=()):
        self.board = HostBoard(state_dir)
        self.app = App(self.board, state_dir, sets)
        SimRoutes(self.board, self.app.store, self.app.api.app).add_to(self.app.api)
        self.client = TestClient(self.app.api.app, host=HOST)
        self.now = 0  # a clock of its own: the charger's loop does not run here

    def run(self, ms):
        """Step the simulated hardware and the charge controller through ms of fake time."""
        end = self.now + ms
        while self.now < end:
            self.now += 20
            self.board.step(self.now)
            self.app.controller.tick(self.now)

    def authorize(self):
        """What the transaction module does for a session in the running charger."""
        self.app.controller.authorize(True)

    def request(self, method, path, headers=None, body=None):
        """(status, headers, body bytes) of one request."""
        res = asyncio.run(self.client.request(method, path, dict(headers or {}), body))
        return res.status_code, res.headers, res.body


def serve(state_dir):
    """Answer requests given as JSON lines [method, path, headers, hex body or null]
    with lines `RIG [status, headers, hex body]` (the charger's log goes to stdout
    too); ["run", ms] and ["authorize"] answer `RIG null`."""
    import sys
    rig = Rig(state_dir)
    print("RIG READY")
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        op = json.loads(line)
        if op[0] == "run":
            rig.run(op[1])
            print("RIG null")
        elif op[0] == "authorize":
            rig.authorize()
            print("RIG null")
        else:
            method, path, headers, body = op
            status, headers, body = rig.request(method, path, headers, unhexlify(body) if body else None)
            print("RIG " + json.dumps([status, headers, hexlify(body or b"").decode()]))
