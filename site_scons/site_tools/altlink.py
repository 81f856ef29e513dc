"""SCons tool ``altlink`` for this repository: ``Environment(tools=['default', 'altlink'])``.

It loads the altlink package (installed, or this checkout's) and hands over to
``altlink.scons_tool``. SCons registers a tool module under the tool's own name, which is also
the package's, so the package is put back in ``sys.modules`` once loaded.
"""
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
_tool = sys.modules.get("altlink.scons_tool")
if _tool is None:
    sys.modules.pop("altlink", None)  # this file, registered by SCons as "altlink"
    # SCons puts the tool's directory on sys.path while loading it: this file would shadow
    # the package.
    _saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]
    try:
        import altlink.scons_tool as _tool
    except ImportError:
        sys.modules.pop("altlink", None)
        _root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        if os.path.isdir(os.path.join(_root, "altlink")):
            sys.path.insert(0, _root)
        try:
            import altlink.scons_tool as _tool
        except ImportError as e:
            raise ImportError(
                "the SCons tool 'altlink' needs the altlink package in the Python that runs "
                f"SCons ({sys.executable}): pip install it, or use this tool from the altlink "
                f"checkout ({e})") from None
    finally:
        sys.path[:] = _saved + [p for p in sys.path if p not in _saved]
sys.modules["altlink"] = _tool.PACKAGE

generate = _tool.generate
exists = _tool.exists
