// A recorded stand-in for the parts of Flamenco 3.x's job compiler environment that farm/flamenco/gid_bake.js
// uses (the author API is the Manager's, not ours): author.Task / author.Command / task.addCommand /
// job.addTask, print, and frameChunker with the behaviour of the Manager's own (internal/manager/
// job_compilers: "1..10,20-25,40" exploded, de-duplicated, sorted, cut into chunks of at most chunkSize frames,
// each chunk written back as contiguous runs "A-B" or "A", joined by ","). Runs the job type's compileJob under
// node and prints {label, settings, tasks: [{name, type, commands: [{name, parameters}]}]} as JSON.
//
//   node tests/flamenco_author_stand_in.js JOB_TYPE_FILE '{"frames": "1-100", "chunk_size": 30, ...}'
"use strict";
const fs = require("fs");
const vm = require("vm");

function explode(range) {
    const frames = new Set();
    for (const raw of range.split(",")) {
        const part = raw.trim();
        if (!part) continue;
        const m = part.match(/^(-?\d+)\s*(?:(?:-|\.\.)\s*(-?\d+))?$/);
        if (!m) throw new Error(`invalid range "${range}": bad part "${part}"`);
        const a = Number(m[1]);
        const b = m[2] === undefined ? a : Number(m[2]);
        if (b < a) throw new Error(`invalid range "${range}": end before start in "${part}"`);
        for (let f = a; f <= b; f++) frames.add(f);
    }
    return [...frames].sort((x, y) => x - y);
}

function merge(frames) {
    const runs = [];
    let start = frames[0], prev = frames[0];
    for (const f of frames.slice(1).concat([null])) {
        if (f !== null && f === prev + 1) { prev = f; continue; }
        runs.push(start === prev ? `${start}` : `${start}-${prev}`);
        start = prev = f;
    }
    return runs.join(",");
}

function frameChunker(range, chunkSize) {
    if (!String(range).trim()) throw new Error(`invalid range "${range}": empty range`);
    if (chunkSize < 1) throw new Error(`invalid chunk size, must be positive number: ${chunkSize}`);
    const frames = explode(String(range));
    if (!frames.length) throw new Error(`invalid range "${range}": empty range`);
    const chunks = [];
    for (let i = 0; i < frames.length; i += chunkSize) chunks.push(merge(frames.slice(i, i + chunkSize)));
    return chunks;
}

const author = {
    Task(name, type) {
        const task = { name, type, commands: [], dependencies: [] };
        task.addCommand = (cmd) => { task.commands.push(cmd); };
        task.addDependency = (other) => { task.dependencies.push(other.name); };
        return task;
    },
    Command(name, parameters) { return { name, parameters }; },
};

const [file, settingsJson] = process.argv.slice(2);
const source = fs.readFileSync(file, "utf8");
const context = { author, frameChunker, print: (...a) => console.error(...a) };
vm.createContext(context);
vm.runInContext(source + "\n;this.JOB_TYPE = JOB_TYPE;", context, { filename: file });

// Job settings as the Manager passes them: the defaults of JOB_TYPE, overridden by what was submitted.
const settings = {};
for (const s of context.JOB_TYPE.settings) if (s.default !== undefined) settings[s.key] = s.default;
Object.assign(settings, JSON.parse(settingsJson || "{}"));
const tasks = [];
const job = { settings, addTask: (t) => tasks.push(t) };
try {
    context.compileJob(job);
} catch (err) {
    console.log(JSON.stringify({ error: String(err && err.message ? err.message : err) }));
    process.exit(1);
}
console.log(JSON.stringify({
    label: context.JOB_TYPE.label,
    settings: context.JOB_TYPE.settings.map((s) => s.key),
    tasks: tasks.map((t) => ({ name: t.name, type: t.type, dependencies: t.dependencies,
                               commands: t.commands })),
}));
