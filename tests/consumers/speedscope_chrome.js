// Import a Chrome trace-event JSON file with speedscope's own importer and print what it
// built, for tests/test_export.py.
//
// usage: node speedscope_chrome.js SPEEDSCOPE_BUNDLE TRACE.json > out.json
//
// speedscope (npm package `speedscope`) ships only its browser bundle, dist/release/speedscope-*.js.
// We run that bundle under node: its importers live in lazily-initialised modules, so we hook
// the same code path the app takes for a dropped file ("Importing as Trace Event Format
// profile"), let the UI part fail (no `window` here), initialise the trace-event module and
// call the importer. Output: one entry per imported profile (speedscope makes one per
// pid/tid), with the thread name and every open/close of a frame in order, values in µs.
"use strict";
const fs = require("fs");

const [bundlePath, tracePath] = process.argv.slice(2);
let src = fs.readFileSync(bundlePath, "utf8");
const m = /if\((\w+)\((\w+)\)\)return console\.log\("Importing as Trace Event Format profile"\),(\w+)\(\2\)/.exec(src);
if (!m) {
  console.error("speedscope bundle layout not recognised (trace-event importer not found)");
  process.exit(3);
}
const [check, imp] = [m[1], m[3]];
const init = new RegExp("function " + imp + "\\(t\\)\\{[^}]*\\}var [\\w,]*?(\\w+)=\\w+\\(\\(\\)=>").exec(src);
if (!init) {
  console.error("speedscope bundle layout not recognised (module initialiser not found)");
  process.exit(3);
}
const hook = `globalThis.__ftk={check:${check},imp:${imp},get init(){return ${init[1]}}};`;
src = src.replace(/^("use strict";)?\(\(\)=>\{/, (s) => s + hook);
if (!src.includes(hook)) {
  console.error("speedscope bundle layout not recognised (no IIFE)");
  process.exit(3);
}
const origLog = console.log;
console.log = () => {};
try {
  (0, eval)(src);
} catch (e) {
  // The UI needs a browser; the importer modules do not.
}
globalThis.__ftk.init();
const data = JSON.parse(fs.readFileSync(tracePath, "utf8"));
if (!globalThis.__ftk.check(data)) {
  origLog(JSON.stringify({ error: "speedscope does not recognise the file as trace events" }));
  process.exit(4);
}
const group = globalThis.__ftk.imp(data);
const profiles = [];
for (const p of group.profiles) {
  const calls = [];
  p.forEachCall(
    (node, v) => calls.push(["O", node.frame.name, v]),
    (node, v) => calls.push(["C", node.frame.name, v]),
  );
  profiles.push({ name: p.getName(), unit: p.getWeightUnit(), total: p.getTotalWeight(), calls });
}
console.log = origLog;
console.log(JSON.stringify({ profiles }));
