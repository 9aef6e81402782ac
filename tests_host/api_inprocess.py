"""Test clients of the HTTP API without sockets (tests_host/api_rig.py), with the
helpers of the simulator's client (get, api_set, status...): on CPython the rig
runs in the test process, on MicroPython in one interpreter fed over a pipe."""
import json
import subprocess
import urllib.parse
from binascii import hexlify, unhexlify

from host_tools.runtime import device_lib
from tests_host.api_rig import BASE, Rig
from tests_host.mpy import MICROPYTHON, ROOT, mp_env

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


class Api:
    base = BASE

    def request(self, method, path, headers=None, body=None):
        raise NotImplementedError

    def raw_get(self, path, headers=None):
        return self.request("GET", path, headers)

    def get(self, path, headers=None):
        status, _, body = self.request("GET", path, headers)
        return status, json.loads(body or b"null")

    def post(self, path, body, headers=None):
        status, _, body = self.request("POST", path, headers, body)
        return status, json.loads(body or b"null")

    def post_set(self, headers=None, **kv):
        body = urllib.parse.urlencode({k: json.dumps(v) for k, v in kv.items()}).encode()
        return self.post("/api/set", body, dict(FORM, **(headers or {})))

    def api_set(self, **kv):
        return self.get("/api/set?" + urllib.parse.urlencode({k: json.dumps(v) for k, v in kv.items()}))

    def status(self, *keys):
        if keys:
            return self.get("/api/status?filter=" + ",".join(keys))[1]
        return self.get("/api/status")[1]

    def sim_set(self, **kv):
        return self.get("/sim/set?" + urllib.parse.urlencode({k: json.dumps(v) for k, v in kv.items()}))

    def sim_status(self):
        return self.get("/sim/status")[1]

    def run(self, ms):
        """Fake time for the hardware and the charge controller (see api_rig.Rig.run)."""
        raise NotImplementedError

    def authorize(self):
        raise NotImplementedError

    def close(self):
        pass


class InProcess(Api):
    runtime = "cpython"

    def __init__(self, state_dir):
        self.rig = Rig(str(state_dir))

    def request(self, method, path, headers=None, body=None):
        return self.rig.request(method, path, headers, body)

    def run(self, ms):
        self.rig.run(ms)

    def authorize(self):
        self.rig.authorize()


class OnMicroPython(Api):
    runtime = "micropython"

    def __init__(self, state_dir):
        code = "from tests_host.api_rig import serve\nserve(%r)" % str(state_dir)
        self.output = []
        self.proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=2M", "-c", code], cwd=str(ROOT),
                                     env=mp_env([device_lib()]), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1, errors="replace")
        self._answer("RIG READY")

    def _answer(self, prefix):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line.startswith(prefix):
                return line[len(prefix):]
            self.output.append(line)
        raise AssertionError("the MicroPython rig ended:\n" + "\n".join(self.output[-40:]))

    def _call(self, op):
        self.proc.stdin.write(json.dumps(op) + "\n")
        self.proc.stdin.flush()
        return json.loads(self._answer("RIG "))

    def request(self, method, path, headers=None, body=None):
        if isinstance(body, str):
            body = body.encode()
        status, headers, body = self._call([method, path, dict(headers or {}), hexlify(body).decode() if body else None])
        return status, headers, unhexlify(body)

    def run(self, ms):
        self._call(["run", ms])

    def authorize(self):
        self._call(["authorize"])

    def close(self):
        self.proc.kill()
        self.proc.wait(10)


def start(runtime, state_dir):
    return InProcess(state_dir) if runtime == "cpython" else OnMicroPython(state_dir)
