// SPDX-License-Identifier: GPL-3.0-or-later
//
// Flamenco 3.x custom job type: bake a GID image plane's frames on the farm, one `gid bake` per chunk.
//
// Install: copy this file into the `scripts/` folder next to the flamenco-manager executable and restart the
// Manager (it reads job compiler scripts at start-up); the job type "GID Bake" then appears in the Blender
// add-on's Flamenco panel and the Manager's API. Written against the job compiler API documented for
// Flamenco 3.x (flamenco.blender.org, "Job Types" and "List of Commands"): JOB_TYPE + compileJob(job),
// author.Task(name, type), author.Command("exec", {exe, args}), task.addCommand, job.addTask, and the
// Manager's frameChunker(frames, chunkSize).
//
// Every task runs `gid bake BLEND --object NAME --frames A-B [--mode M] [--backend ADDR --token-env VAR]` on a
// worker. Chunks are independent (each frame is rendered from its own time; each chunk moves its finished
// frames into the object's bake folder one atomic rename each), so they may run in any order, in parallel,
// and a failed chunk can simply be re-queued.

const JOB_TYPE = {
    label: "GID Bake",
    description: "Bake a GID image plane's frames (gid bake) in chunks",
    settings: [
        // The `gid` command on the workers: a path, or a two-way Flamenco variable such as {gid} defined in
        // flamenco-manager.yaml per platform (e.g. /opt/gid/.venv/bin/gid, C:\gid\.venv\Scripts\gid.exe).
        { key: "gid_exe", type: "string", default: "gid", label: "gid command",
          description: "The gid executable on the workers (a path or a Flamenco variable like {gid})" },
        { key: "blendfile", type: "string", subtype: "file_path", required: true, label: "Blend file",
          eval: "bpy.data.filepath", description: "The shot's .blend (saved, on shared storage)" },
        { key: "object", type: "string", required: true, label: "Object",
          eval: "C.active_object.name", description: "The image plane with motion" },
        { key: "frames", type: "string", required: true, label: "Frames",
          eval: "f'{C.active_object.gid.start_frame}-{C.active_object.gid.start_frame + C.active_object.gid.loop_frames - 1}' if C.active_object.gid.loop_frames else f'{C.scene.frame_start}-{C.scene.frame_end}'",
          description: "Scene frames to bake, e.g. 1-48 (the object's loop, or the scene range)" },
        { key: "chunk_size", type: "int32", default: 24, label: "Chunk size",
          description: "Frames per task" },
        { key: "mode", type: "string", default: "object", choices: ["object", "ibr", "splat"],
          label: "Renderer", description: "object = the object's own Renderer setting" },
        { key: "backend", type: "string", default: "", label: "Backend",
          description: "Address of a shared gid serve (e.g. tcp://gpu-box:5555); empty = each task starts its own" },
        { key: "link", type: "bool", default: true, label: "Show in the .blend",
          description: "A last task shows the baked sequence on the plane and saves the .blend" },
        { key: "token_env", type: "string", default: "GID_SERVE_TOKEN", label: "Token variable",
          description: "Environment variable on the workers that holds the shared backend's token" },
    ],
};

function compileJob(job) {
    const settings = job.settings;
    const chunkSize = Number(settings.chunk_size);
    if (!Number.isInteger(chunkSize) || chunkSize < 1) {
        throw new Error(`chunk_size must be a positive whole number, not ${settings.chunk_size}`);
    }
    if (!settings.blendfile || !settings.object || !settings.frames) {
        throw new Error("blendfile, object and frames are required");
    }
    const exe = settings.gid_exe || "gid";
    const bakeTasks = [];
    for (const chunk of frameChunker(String(settings.frames), chunkSize)) {
        // A chunk of a range with gaps comes as runs ("1-3,7"); `gid bake --frames` takes them as they are.
        const task = author.Task(`gid-bake-${chunk}`, "blender");
        task.addCommand(author.Command("exec", { exe: exe, args: bakeArgs(settings, chunk) }));
        job.addTask(task);
        bakeTasks.push(task);
    }
    if (settings.link) {
        // After every chunk: show the sequence on the plane and save the .blend (one writer, no race).
        const link = author.Task("gid-bake-link", "blender");
        link.addCommand(author.Command("exec", {
            exe: exe, args: ["bake", settings.blendfile, "--object", settings.object, "--link"] }));
        for (const task of bakeTasks) {
            link.addDependency(task);
        }
        job.addTask(link);
    }
}

function bakeArgs(settings, frames) {
    const args = ["bake", settings.blendfile, "--object", settings.object, "--frames", frames];
    if (settings.mode && settings.mode !== "object") {
        args.push("--mode", settings.mode);
    }
    if (settings.backend) {
        args.push("--backend", settings.backend);
        if (settings.token_env) {
            args.push("--token-env", settings.token_env);
        }
    }
    return args;
}
