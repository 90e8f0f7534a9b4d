"""SessionAdapter: per-session state on a worker (``self.session_state``) and
the ``on_session_end`` hook, for the session tests. The hook prints
``session_adapter: ended <session id> <state>`` so a test can wait for it."""

import json
import os

from snakepit_bridge import BaseAdapter, tool


class SessionAdapter(BaseAdapter):
    @tool(description="Adds `by` to the session's counter; returns it and this worker's pid")
    def bump(self, by=1):
        state = self.session_state
        if state is None:
            return {"count": None, "pid": os.getpid(), "session_id": None}
        state["count"] = state.get("count", 0) + by
        return {"count": state["count"], "pid": os.getpid(), "session_id": self.session_id}

    @tool(description="Stores `value` under `key` in the session's state")
    def put(self, key, value):
        self.session_state[key] = value
        return {"pid": os.getpid()}

    @tool(description="The session's state as it is on this worker, and the worker's pid")
    def state(self):
        state = self.session_state
        return {"state": None if state is None else dict(state), "pid": os.getpid()}

    @tool(description="This worker's pid")
    def whoami(self):
        return {"pid": os.getpid()}

    def on_session_end(self, session_id, state):
        state_text = json.dumps(state, sort_keys=True)
        print(f"session_adapter: ended {session_id} {state_text}", flush=True)
