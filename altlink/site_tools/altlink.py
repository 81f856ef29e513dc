"""SCons tool ``altlink`` of the installed package: ``Environment(tools=['default', 'altlink'],
toolpath=[altlink.scons_tool.TOOLPATH])``. SCons registers a tool module under the tool's own
name, which is also the package's: the package is put back in ``sys.modules``."""
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_tool = sys.modules.get("altlink.scons_tool")
if _tool is None:
    sys.modules.pop("altlink", None)
    _saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    try:
        import altlink.scons_tool as _tool
    except ImportError as e:
        raise ImportError(
            "the SCons tool 'altlink' needs the altlink package in the Python that runs SCons "
            f"({sys.executable}): install it there with pip ({e})") from None
    finally:
        sys.path[:] = _saved
sys.modules["altlink"] = _tool.PACKAGE

generate = _tool.generate
exists = _tool.exists
