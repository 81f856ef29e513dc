"""The SCons tool (docs/reference.md, section 6): ``AltProgram``, ``AltCaps`` and the ``ALTLINK_*`` variables.

A thin adapter: the action runs ``altlink link`` in-process (``altlink.cli.main``) with the
arguments it prints, so that the printed command, run in a shell, does the same. Loaded from this repository's ``site_scons/site_tools/altlink.py`` or,
for an installed package, with ``toolpath=[altlink.scons_tool.TOOLPATH]``.
"""
from __future__ import annotations

import os
import shlex
import sys

import SCons.Action
import SCons.Builder
import SCons.Node.FS
import SCons.Scanner
import SCons.Scanner.Prog
import SCons.Util

import altlink
from altlink.errors import AltlinkError, one_line

PACKAGE = altlink
PACKAGE_DIR = os.path.dirname(os.path.abspath(altlink.__file__))
INCLUDE_DIR = os.path.join(PACKAGE_DIR, "include")
LDSCRIPT_DIR = os.path.join(PACKAGE_DIR, "ldscripts")
TOOLPATH = os.path.join(PACKAGE_DIR, "site_tools")

# Every construction variable the link action reads: a change to any of them relinks.
LINK_VARLIST = ["ALTLINKCOM", "ALTLINK_ABI", "ALTLINK_NCAPS", "ALTLINK_CAP_TABLE",
                "ALTLINK_SYMBOLS_FROM", "ALTLINK_LDSCRIPT", "ALTLINK_SORT", "ALTLINK_WERROR",
                "ALTLINK_WFLAGS", "ALTLINK_SOURCE_LINES", "ALTLINK_VERSION"]

def package_signature() -> str:
    """The altlink version plus a hash of the package's code: editing altlink relinks."""
    return f"{altlink.__version__}+{altlink.code_digest()[:16]}"


def _files(env, var: str) -> list:
    val = env.get(var)
    if not val:
        return []
    out = []
    for v in SCons.Util.flatten([val]):
        if isinstance(v, SCons.Node.FS.Base):
            out.append(v)
        else:
            out.append(env.File(env.subst(str(v))))
    return out


def _path(node) -> str:
    """A file node's path on disk: its source when a variant directory does not duplicate."""
    p = node.get_abspath()
    if not os.path.exists(p):
        src = node.srcnode().get_abspath()
        if os.path.exists(src):
            return src
    return p


def _ldflags(env, target, source) -> list[str]:
    flags = [f"-L{LDSCRIPT_DIR}"]
    for script in _files(env, "ALTLINK_LDSCRIPT"):
        flags += ["-T", str(script)]
    return flags


def _abi_define(abi, prefix) -> str:
    return f"{prefix}ALTLINK_ABI_LINUX_V61" if str(abi) == "linux-v6.1" else ""


# -- AltProgram ------------------------------------------------------------------------------

def _emitter(target, source, env):
    image = target[0]
    base, _ = SCons.Util.splitext(str(image))
    manifest = env.File(base + env.subst("$ALTLINK_MANIFESTSUFFIX"))
    binary = env.File(base + env.subst("$ALTLINK_BINSUFFIX"))
    return [image, manifest, binary], source


def _scan_link(node, env, libpath):
    """Implicit dependencies of the link: libraries (as Program has), the linker script and
    what it INCLUDEs, the capability table and the ``--symbols-from`` images."""
    deps = list(SCons.Scanner.Prog.scan(node, env, libpath))
    scripts = _files(env, "ALTLINK_LDSCRIPT")
    deps += scripts
    for s in scripts:
        deps += _ldscript_includes(env, s)
    deps += _files(env, "ALTLINK_CAP_TABLE")
    deps += _files(env, "ALTLINK_SYMBOLS_FROM")
    return deps


def _ldscript_includes(env, script) -> list:
    """The scripts a linker script INCLUDEs and the files its INPUT and GROUP commands name
    (altlink.ldscript): a change to any of them relinks."""
    from altlink import ldscript, linkcmd

    dirs = [LDSCRIPT_DIR] + [env.Dir(d).srcnode().get_abspath() for d in SCons.Util.flatten(
        [env.get("LIBPATH", [])]) if d]
    found = ldscript.scan(_path(script), dirs, lambda n: linkcmd.find_lib(n, dirs, False))
    return [env.File(p) for p in found.scripts[1:] + found.inputs]


def _shown(path: str) -> str:
    """A path as the printed command gives it: relative to the directory SCons runs in."""
    rel = os.path.relpath(path)
    return path if rel.startswith(os.pardir) else rel


def _link_argv(target, source, env) -> list[str]:
    """The arguments of ``altlink link`` for this link: what the action runs and prints."""
    image, manifest, binary = (t.get_path() for t in target[:3])
    argv = ["link", "-o", image, "--manifest", manifest, "--bin", binary,
            "--abi", env.subst("$ALTLINK_ABI") or "linux-v4.17"]
    for table in _files(env, "ALTLINK_CAP_TABLE")[:1]:
        argv += ["--cap-table", _shown(_path(table))]
    ncaps = env.get("ALTLINK_NCAPS")
    if ncaps is not None and ncaps != "":
        try:
            argv += ["--ncaps", str(int(ncaps, 0) if isinstance(ncaps, str) else int(ncaps))]
        except (TypeError, ValueError):
            raise AltlinkError(f"ALTLINK_NCAPS={ncaps!r} is not a number") from None
    for image_ in _files(env, "ALTLINK_SYMBOLS_FROM"):
        argv += ["--symbols-from", _shown(_path(image_))]
    argv += [flag for var, flag in (("ALTLINK_SORT", "--sort-table"),
                                    ("ALTLINK_SOURCE_LINES", "--source-lines"),
                                    ("ALTLINK_WERROR", "--werror")) if env.get(var)]
    for w in SCons.Util.flatten([env.get("ALTLINK_WFLAGS", [])]):
        argv += ["-W", str(w)]
    cache = env.get("ALTLINK_CACHE_DIR")
    if cache is not None:  # None: altlink's default; "" or False: no cache
        # A path as SCons reads one: relative to the SConscript, "#" for the top.
        argv += (["--cache-dir", _shown(env.Dir(env.subst(str(cache))).get_abspath())]
                 if cache else ["--no-cache"])
    cmd = env.subst_list("$ALTLINKCOM", target=target[:1], source=source)[0]
    return argv + ["--", *(str(a) for a in cmd)]


def _link_action(target, source, env):
    from altlink import cli

    try:
        argv = _link_argv(target, source, env)
    except AltlinkError as e:
        sys.stderr.write(f"{one_line(str(e))}\n")
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - altlink's own failure, as cli.main reports one
        return cli.internal_error(e)
    return cli.main(argv)


def _link_str(target, source, env):
    if env.get("ALTLINKCOMSTR"):
        return env.subst("$ALTLINKCOMSTR", target=target, source=source)
    try:
        return "altlink " + shlex.join(_link_argv(target, source, env))
    except Exception:  # noqa: BLE001 - the action says what went wrong
        return f"altlink link -o {target[0]}"


# -- AltCaps ---------------------------------------------------------------------------------

def _caps_action(target, source, env):
    from altlink import caps as capsmod
    from altlink import cli, outputs

    try:
        table = capsmod.load(_path(source[0]))
        outputs.write_bytes(target[0].get_abspath(), capsmod.header(table).encode())
    except AltlinkError as e:
        sys.stderr.write(f"{one_line(str(e))}\n")
        return e.exit_code
    except Exception as e:  # noqa: BLE001 - altlink's own failure, as cli.main reports one
        return cli.internal_error(e)
    return 0


def _caps_str(target, source, env):
    if env.get("ALTCAPSCOMSTR"):
        return env.subst("$ALTCAPSCOMSTR", target=target, source=source)
    return f"altlink caps {source[0]} -o {target[0]}"


# -- tool entry points -----------------------------------------------------------------------

def generate(env) -> None:
    env.SetDefault(
        ALTLINK_ABI="linux-v4.17",
        ALTLINK_CAP_TABLE=None,
        ALTLINK_NCAPS=None,
        ALTLINK_SYMBOLS_FROM=[],
        ALTLINK_LDSCRIPT=None,
        ALTLINK_SORT=False,
        ALTLINK_WERROR=False,
        ALTLINK_WFLAGS=[],
        ALTLINK_SOURCE_LINES=False,
        ALTLINK_MANIFESTSUFFIX=".alt.json",
        ALTLINK_BINSUFFIX=".bin",
        ALTLINKCOM="$LINK -o $TARGET $LINKFLAGS $_ALTLINK_LDFLAGS $SOURCES $_LIBDIRFLAGS "
                   "$_LIBFLAGS",
        ALTLINKCOMSTR=None,
    )
    env["ALTLINK_VERSION"] = package_signature()
    env["_altlink_ldflags"] = _ldflags
    env["_ALTLINK_LDFLAGS"] = "${_altlink_ldflags(__env__, TARGET, SOURCES)}"
    env["_altlink_abi_define"] = _abi_define
    env["_ALTLINK_ABI_DEFINE"] = "${_altlink_abi_define(ALTLINK_ABI, CPPDEFPREFIX)}"
    if "$_ALTLINK_ABI_DEFINE" not in env.get("_CPPDEFFLAGS", ""):
        env["_CPPDEFFLAGS"] = env.get("_CPPDEFFLAGS", "") + " $_ALTLINK_ABI_DEFINE"
    env.AppendUnique(CPPPATH=[INCLUDE_DIR])

    action = SCons.Action.Action(_link_action, strfunction=_link_str, varlist=LINK_VARLIST)
    scanner = SCons.Scanner.Scanner(function=_scan_link, name="AltLinkScanner",
                                    path_function=SCons.Scanner.FindPathDirs("LIBPATH"))
    env["BUILDERS"]["AltProgram"] = SCons.Builder.Builder(
        action=action, emitter=_emitter, prefix="$PROGPREFIX", suffix="$PROGSUFFIX",
        src_suffix="$OBJSUFFIX", src_builder="Object", target_scanner=scanner,
        multi=False)
    caps_action = SCons.Action.Action(_caps_action, strfunction=_caps_str,
                                      varlist=["ALTLINK_VERSION"])
    env["BUILDERS"]["AltCaps"] = SCons.Builder.Builder(action=caps_action, suffix=".h",
                                                       src_suffix=".txt", single_source=True)


def exists(env) -> bool:
    return True
