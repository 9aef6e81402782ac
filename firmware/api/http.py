"""The local HTTP API, go-eCharger v2 compatible, on the charger's hardened
server (`server.py`).

`/api/status` and `/api/set` read and write the same settings registry that
OCPP uses; `/` serves the status page. Other routes (the simulator's `/sim/*`)
are added by their owner through `add_route()`.

Optional protection (key `apw`, off by default like go-e): when set, /api/set
needs the password (HTTP Basic, any user name, or `Authorization: Bearer`),
cross-site requests (Origin or Referer naming another host, Sec-Fetch-Site
cross-site or same-site) are refused, a browser's Basic credentials count only
with evidence that the request comes from this charger's own pages or the
address bar (browsers send cached credentials with other sites' requests too),
and no Access-Control-Allow-Origin is sent on /api/set. With `apr` true
/api/status needs the password too.

The password in `ocppu` (`user:password@`) reads as `***`; writing the URL
back as read keeps the stored password.
"""
from microdot import Response

from firmware import jsonin, log
from firmware.api.server import Server, json_response

_FORM = "application/x-www-form-urlencoded"


def parse_value(text):
    """A go-e value: JSON text. Returns (value, None) or (None, error)."""
    if not isinstance(text, str):
        # A form field without "=": microdot gives b"", no value, like "key=".
        try:
            text = jsonin.decode(text)
        except ValueError:
            return None, "value is not valid text"
    try:
        return jsonin.loads(text), None
    except ValueError as e:
        # quote(): the value may not even be valid text; the answer must stay valid UTF-8.
        return None, "invalid JSON value %s (%s; strings need quotes: \"text\")" % (jsonin.quote(text), e)


def _b64decode(s):
    try:
        import binascii
        return binascii.a2b_base64(s)
    except (ImportError, ValueError):
        return None


def _host_of(url):
    # "http://host:port/path" -> "host:port"
    i = url.find("://")
    if i < 0:
        return None
    rest = url[i + 3:]
    j = rest.find("/")
    return rest if j < 0 else rest[:j]


class HttpApi:
    def __init__(self, settings, page=None):
        self.settings = settings
        self.app = app = Server()
        self.page = page  # callable() -> (body bytes/str, headers) of the status page
        app.route("/api/status")(self.status)
        app.route("/api/set", methods=["GET", "POST"])(self.set)
        app.route("/")(self.index)

    def add_route(self, path, handler, methods=None):
        """Serve path with handler(req) -> Response, on the same server and limits."""
        self.app.route(path, methods=methods)(handler)

    # -- protection ---------------------------------------------------------
    def _password(self):
        s = self.settings.find("apw")
        return s.value if s is not None else ""

    def _authorized(self, req, pw):
        """"Bearer" or "Basic" when the request carries the password that way, else None."""
        h = req.headers.get("Authorization") or ""
        if h.startswith("Bearer "):
            return "Bearer" if h[7:].strip() == pw else None
        if h.startswith("Basic "):
            raw = _b64decode(h[6:].strip())
            if raw is None:
                return None
            try:
                text = raw.decode()
            except UnicodeError:
                return None
            return "Basic" if text.partition(":")[2] == pw else None
        return None

    def _basic_trusted(self, req):
        """A browser sends cached Basic credentials with any site's request to the
        charger, so they count only with evidence of this charger's own pages or the
        address bar. Clients that are no browser send none of these headers."""
        h = req.headers
        site = h.get("Sec-Fetch-Site")
        if site == "same-origin" or site == "none":
            return True
        if h.get("Origin") or h.get("Referer"):
            return True  # naming this host: _cross_site() refused any other
        if site:
            return False
        return not (h.get("User-Agent") or "").startswith("Mozilla/")  # every browser says Mozilla/

    def _cross_site(self, req):
        site = req.headers.get("Sec-Fetch-Site")
        if site == "cross-site" or site == "same-site":
            return True  # another site (or another host of the same site) made this request
        host = req.headers.get("Host")
        for name in ("Origin", "Referer"):
            v = req.headers.get(name)
            if v and v != "null" and _host_of(v) != host:
                return True
            if v == "null":
                return True  # sandboxed or file: pages
        return False

    def _guard(self, req, reads):
        """None when the request may proceed, else the error response."""
        pw = self._password()
        if not pw or (reads and not self.settings.get("apr")):
            return None
        if self._cross_site(req):
            return json_response({"error": "cross-site request refused"}, 403)
        how = self._authorized(req, pw)
        if how is None:
            return json_response({"error": "password required"}, 401,
                                 {"WWW-Authenticate": 'Basic realm="charger"'})
        if how == "Basic" and not self._basic_trusted(req):
            return json_response({"error": "browser request without same-origin evidence refused"}, 403)
        return None

    def _cors(self, reads):
        # go-e sends ACAO * everywhere; a protected charger does not let other sites read or write.
        if self._password() and (not reads or self.settings.get("apr")):
            return None
        return {"Access-Control-Allow-Origin": "*"}

    # -- routes ---------------------------------------------------------------
    async def status(self, req):
        err = self._guard(req, True)
        if err is not None:
            return err
        s = self.settings
        flt = req.args.get("filter")
        keys = flt.split(",") if flt else s.api_keys()
        out = {}
        for k in keys:
            try:
                out[k] = s.api_get(k)
            except KeyError:
                pass  # unknown keys are left out, HTTP 200 (go-e clients rely on it)
            except Exception as e:  # noqa: BLE001 - one broken getter must not hide the rest
                log.exception("status " + k, e)
                out[k] = None
        return json_response(out, 200, self._cors(True))

    async def set(self, req):
        err = self._guard(req, False)
        if err is not None:
            return err
        out = {}
        ok = True
        pairs = [req.args]
        if req.method == "POST" and (req.body or req.content_length):
            ctype = (req.content_type or _FORM).split(";")[0].strip().lower()
            if ctype != _FORM:
                return json_response({"error": "POST body must be " + _FORM}, 415, self._cors(False))
            try:
                req.content_type = _FORM
                pairs.append(req.form)
            except (ValueError, UnicodeError, IndexError):
                return json_response({"error": "malformed form body"}, 400, self._cors(False))
        for args in pairs:
            for k in args:
                if jsonin.text_error(k) is not None:
                    out[jsonin.quote(k)] = "key is not valid text"
                    ok = False
                    continue
                v, err = parse_value(args.get(k))
                if err is None:
                    err = self.settings.set(k, v)
                if err is None:
                    out[k] = True
                else:
                    out[k] = err if err.startswith(k + ":") else k + ": " + err
                    ok = False
        return json_response(out, 200 if ok else 500, self._cors(False))

    async def index(self, req):
        if self.page is None:
            return Response("openwallbox", 200, {"Content-Type": "text/plain"})
        body, headers = self.page()
        return Response(body, 200, headers)

    async def serve(self, host, port):
        await self.app.start_server(host=host, port=port)

    def listening(self):
        return self.app.server is not None  # microdot sets it once listening

    def shutdown(self):
        self.app.shutdown()
