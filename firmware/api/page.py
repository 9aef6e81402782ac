"""The status page at `/`: one compact HTML string with inline script and
style, no external assets (it works without internet). It polls
/api/status every 2 s and writes amp/frc through /api/set, so it needs no
server-side rendering. Kept as one constant so it lives in the bytecode (flash
on the device), not in the heap.
"""

PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Charger</title><style>body{font:15px sans-serif;margin:1em;max-width:34em}td{padding:2px 8px}
h1{font-size:1.3em}button{margin:2px}.e{color:#b00}</style></head><body><h1 id="fna">Charger</h1><table>
<tr><td>State</td><td id="car">-</td></tr><tr><td>Reason</td><td id="ms">-</td></tr>
<tr><td>Offered</td><td><span id="acu">-</span> A (limit <span id="amp">-</span> A)</td></tr>
<tr><td>Current</td><td id="cur">-</td></tr><tr><td>Power</td><td id="pw">-</td></tr>
<tr><td>Session</td><td><span id="wh">-</span> Wh</td></tr><tr><td>Total</td><td><span id="eto">-</span> Wh</td></tr>
<tr><td>OCPP</td><td id="ocpp">-</td></tr><tr><td>Last error</td><td id="le" class="e">-</td></tr>
<tr><td>Force</td><td id="frc">-</td></tr></table>
<p><input id="ampin" type="number" min="6" max="32" size="3"> A <button id="ampset">Set current</button></p>
<p><button id="f0">Neutral</button><button id="f1">Stop</button><button id="f2">Charge</button></p>
<p id="msg"></p><script>
var C=["unknown","idle","charging","waiting for car","complete","error"],F=["neutral","off","on"];
function $(i){return document.getElementById(i)}
function t(i,v){$(i).textContent=v==null?"-":v}
function poll(){fetch("/api/status?filter=fna,car,modelStatus,err,acu,amp,ama,nrg,wh,eto,ocppe,ocppc,ocppa,ocpple,frc")
.then(function(r){return r.json()}).then(function(s){var n=s.nrg||[];t("fna",s.fna);
t("car",C[s.car]||s.car);t("ms",s.modelStatus+(s.err?" (error "+s.err+")":""));t("acu",s.acu);t("amp",s.amp);
$("ampin").max=s.ama;t("cur",[n[4],n[5],n[6]].join(" / ")+" A");
t("pw",[n[7],n[8],n[9]].join(" / ")+" W, total "+n[11]+" W");t("wh",s.wh);t("eto",s.eto);
t("ocpp",!s.ocppe?"off":s.ocppa?"connected, accepted":s.ocppc?"connected":"not connected");
t("le",s.ocpple);t("frc",F[s.frc]);if(/^no answer/.test($("msg").textContent))t("msg","")})
.catch(function(e){t("msg","no answer: "+e)})}
function set(q){t("msg","");fetch("/api/set?"+q).then(function(r){return r.json()}).then(function(j){
for(var k in j)if(j[k]!==true)t("msg",j[k]);poll()})}
$("ampset").onclick=function(){set("amp="+encodeURIComponent($("ampin").value))};
[0,1,2].forEach(function(i){$("f"+i).onclick=function(){set("frc="+i)}});poll();setInterval(poll,2000)
</script></body></html>"""

HEADERS = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-cache"}


def page():
    return PAGE, HEADERS
