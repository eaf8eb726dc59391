"""stmtflow: durable long-running workflows written as plain Python (interim exports)."""

from stmtflow.errors import *  # noqa: F403
from stmtflow.handlers import BaseHandler, FunctionHandler, Handler, Timer
from stmtflow.state import *  # noqa: F403
from stmtflow.statements import *  # noqa: F403
from stmtflow.walk import find_handler, find_step, find_waiting_step, walk
from stmtflow.workflow import WorkflowState
