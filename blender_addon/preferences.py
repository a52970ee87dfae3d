"""Add-on preferences: where the backend is, how to start it, and its status."""
from __future__ import annotations

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

from . import connection


class GIDPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    address: StringProperty(name="Address", default="tcp://127.0.0.1:5555",
                            description="ZeroMQ endpoint of `gid serve`. Addresses other than this machine "
                                        "need Preferences > System > Allow Online Access")
    token: StringProperty(name="Token", default="", subtype="PASSWORD",
                          description="Shared secret, when the backend was started with --token. A backend "
                                      "started here gets it in $GID_SERVE_TOKEN, never on its command line")
    python_path: StringProperty(name="Backend Python", default="", subtype="FILE_PATH",
                                description="Python of the environment with the backend installed "
                                            "(runs `python -m backend serve`); empty: use Command")
    command: StringProperty(name="Command", default="gid serve",
                            description="Command that starts the backend when no Python is set "
                                        "(--bind ADDRESS is appended)")
    serve_args: StringProperty(name="Options", default="",
                               description="More `gid serve` options, e.g. --device cuda --checkpoint DIR")
    working_dir: StringProperty(name="Working folder", default="", subtype="DIR_PATH",
                                description="Folder to start the backend in (e.g. the repository)")
    auto_start: BoolProperty(name="Start automatically", default=False,
                             description="Start a local backend on first use when none is listening")
    timeout: FloatProperty(name="Timeout (s)", default=120.0, min=1.0, soft_max=3600.0,
                           description="Fail a job when the backend says nothing for this long")

    def draw(self, context):
        layout = self.layout
        col = layout.column()
        col.prop(self, "address")
        col.prop(self, "token")
        col.prop(self, "python_path")
        col.prop(self, "command")
        col.prop(self, "serve_args")
        col.prop(self, "working_dir")
        row = col.row()
        row.prop(self, "auto_start")
        row.prop(self, "timeout")
        row = layout.row()
        row.operator("gid.start_backend", icon="PLAY")
        row.operator("gid.stop_backend", icon="PAUSE")
        row.operator("gid.connect", icon="LINKED")
        layout.label(text=context.window_manager.gid_job.status)
        proc = connection.process()
        if proc is not None:
            layout.label(text=f"Backend pid {proc.pid}, log: {proc.log_path}")
        if not connection.online_access():
            layout.label(text="Online access is off: only backends on this machine can be used", icon="INFO")


class GID_OT_start_backend(connection.TaskOperatorMixin, bpy.types.Operator):
    """Start a local `gid serve` with the configured Python or command, then connect"""

    bl_idname = "gid.start_backend"
    bl_label = "Start backend"

    def make_task(self, context):
        # Not waiting here: the ping below is queued by ZeroMQ until the server binds, and the process's
        # death (bad command, port taken) fails it at once with the log's path.
        connection.start_backend(context, wait=False)
        return connection.PingTask(wait_seconds=connection.prefs(context).timeout)


class GID_OT_stop_backend(bpy.types.Operator):
    """Stop the backend this Blender started"""

    bl_idname = "gid.stop_backend"
    bl_label = "Stop backend"

    def execute(self, context):
        connection.stop_backend()
        context.window_manager.gid_job.status = "not connected"
        return {"FINISHED"}


class GID_OT_connect(connection.TaskOperatorMixin, bpy.types.Operator):
    """Connect to the backend at the configured address and show its status"""

    bl_idname = "gid.connect"
    bl_label = "Connect"

    wait_seconds: FloatProperty(name="Wait", default=10.0, min=0.1, description="Seconds to wait for an answer")

    def make_task(self, context):
        connection.disconnect()
        return connection.PingTask(self.wait_seconds)


CLASSES = (GIDPreferences, GID_OT_start_backend, GID_OT_stop_backend, GID_OT_connect)
