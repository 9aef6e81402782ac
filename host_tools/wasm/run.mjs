// node run.mjs BUNDLE_DIR HEAPSIZE_BYTES SCRIPT.py [SAMPLE_MS]
// Runs SCRIPT (top-level await allowed) in MicroPython's WebAssembly port with
// BUNDLE_DIR's files copied to /bundle (first on sys.path). Prints the script's
// output, then "HEAP <first heap area> <heap total at the end>": the heap grows
// by itself when an allocation does not fit, so a run that stayed within
// HEAPSIZE ends with both equal. With SAMPLE_MS, the script's _sample() is called
// that often from the JS event loop, between two steps of its tasks: the
// interpreter's stack is then nearly empty, so a gc there finds only live data.
import { loadMicroPython } from "@micropython/micropython-webassembly-pyscript";
import fs from "node:fs";
import path from "node:path";

const [bundle, heapsize, script, sampleMs] = process.argv.slice(2);
const lines = [];
const mp = await loadMicroPython({
  heapsize: parseInt(heapsize),
  stdout: (l) => { lines.push(l); console.log(l); },
  stderr: (l) => console.error(l),
});

function copy(src, dst) {
  mp.FS.mkdir(dst);
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    const s = path.join(src, e.name), d = dst + "/" + e.name;
    if (e.isDirectory()) copy(s, d);
    else mp.FS.writeFile(d, fs.readFileSync(s));
  }
}
copy(bundle, "/bundle");

function heapTotal() {
  lines.length = 0;
  mp.runPython("import micropython\nmicropython.mem_info()");
  const m = lines.map((l) => /GC: total: (\d+)/.exec(l)).find((x) => x);
  return m ? parseInt(m[1]) : -1;
}
const first = heapTotal();
let rc = 0;
const timer = sampleMs ? setInterval(() => mp.runPython("_sample()"), parseInt(sampleMs)) : null;
try {
  await mp.runPythonAsync("import sys\nsys.path.insert(0, '/bundle')\n" + fs.readFileSync(script, "utf8"));
} catch (e) {
  console.error(e.message || String(e));
  rc = 1;
}
if (timer) clearInterval(timer);
console.log("HEAP " + first + " " + heapTotal());
process.exit(rc);
