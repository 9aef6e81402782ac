"""Registration end to end (OCPP 1.6 section 4.2, ocpp16-notes.md decisions 5 and 15):
what the charger answers and sends while the central system keeps it Rejected
or Pending, on both runtimes against the ocpp-based CSMS."""
import json
import time

import pytest

pytestmark = pytest.mark.e2e


def start(sims, runtime, tmp_path, csms, *sets):
    return sims(runtime, tmp_path / "flash", url=csms.url(), sets=sets).start()


def log(csms, cp_id="CP1"):
    """(receipt time, direction, message) of every frame of the charger's connections
    (read in the CSMS's loop, or inside a wait_for predicate, which runs there)."""
    return [(t, d, json.loads(text)) for c in list(csms.csms.connections) if c.id == cp_id
            for (d, text), t in zip(list(c.frames), list(c.frame_times))]


def boot_answers(csms):
    """(time the CSMS answered, status) of each BootNotification."""
    frames = log(csms)
    boots = {m[1] for _, d, m in frames if d == "<" and m[0] == 2 and m[2] == "BootNotification"}
    return [(t, m[2]["status"]) for t, d, m in frames if d == ">" and m[0] == 3 and m[1] in boots]


def test_rejected_registration_answers_no_call_and_sends_nothing_until_the_retry(sims, runtime, tmp_path, csms):
    csms.do(lambda: setattr(csms.csms, "boot_status", "Rejected"))
    csms.do(lambda: setattr(csms.csms, "boot_interval", 3))
    sim = start(sims, runtime, tmp_path, csms)
    csms.wait_for(lambda: boot_answers(csms))
    # The central system calls while the charger is Rejected: valid, malformed and unknown calls.
    for frame in ('[2,"rej-1","GetConfiguration",{"key":["HeartbeatInterval"]}]',
                  '[2,"rej-2","RemoteStartTransaction",{}]', '[2,"rej-3","NoSuchAction",{}]'):
        csms.send_raw(frame)
    csms.do(lambda: setattr(csms.csms, "boot_status", "Accepted"))
    csms.wait_for(lambda: [s for _, s in boot_answers(csms)] == ["Rejected", "Accepted"], timeout=30)
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",))
    frames = csms.do(lambda: log(csms))
    (first, _), (t_retry, retry) = [(t, m[2]) for t, d, m in frames if d == "<" and m[0] == 2][:2]
    # Nothing at all from the charger between its first BootNotification and the retry,
    # which comes no sooner than the interval.
    assert [m for t, d, m in frames if d == "<" and first < t < t_retry] == []
    assert retry == "BootNotification" and t_retry - first >= 3 - 0.02
    answered = {m[1] for _, d, m in frames if d == "<" and m[0] in (3, 4)}
    assert answered.isdisjoint({"rej-1", "rej-2", "rej-3"})
    # Accepted: normal service again.
    res = csms.call("CP1", "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert [k["key"] for k in res["configurationKey"]] == ["HeartbeatInterval"]


def test_pending_rejects_remote_start_and_stop_and_starts_nothing_once_accepted(sims, runtime, tmp_path, csms):
    csms.do(lambda: setattr(csms.csms, "boot_status", "Pending"))
    csms.do(lambda: setattr(csms.csms, "boot_interval", 1))
    sim = start(sims, runtime, tmp_path, csms, "acs=1")
    sim.sim_set(ev="C")
    csms.wait_for(lambda: boot_answers(csms))
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "REMOTE1"}) == {"status": "Rejected"}
    assert csms.call("CP1", "RemoteStopTransaction", {"transactionId": 1}) == {"status": "Rejected"}
    # Other calls are answered while Pending.
    assert csms.call("CP1", "GetConfiguration", {"key": ["AuthorizeRemoteTxRequests"]})["configurationKey"]
    csms.do(lambda: setattr(csms.csms, "boot_status", "Accepted"))
    sim.wait_status(lambda s: s["ocppa"] is True, keys=("ocppa",), timeout=20)
    csms.wait_received("StatusNotification", 2)
    time.sleep(1)  # asserting an absence: the refused start is not carried out later
    assert csms.received("Authorize") == [] and csms.received("StartTransaction") == []
    assert sim.status("trx")["trx"] is None
    # Accepted: the same command is accepted and kept.
    assert csms.call("CP1", "RemoteStartTransaction", {"idTag": "REMOTE1"}) == {"status": "Accepted"}
    assert csms.wait_received("StartTransaction", 1)[0]["idTag"] == "REMOTE1"
