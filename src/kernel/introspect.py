# Helpers the server installs in each kernel as the module `_jupyter_mcp` (never in the user's
# namespace). Each prints one JSON document on stdout for the server to parse.
import inspect as _inspect
import json
import reprlib
import types

MAX_VARIABLES = 500
_short = reprlib.Repr()
_short.maxstring = 120
_short.maxother = 120
_short.maxlist = _short.maxtuple = _short.maxdict = _short.maxset = 10
_long = reprlib.Repr()
_long.maxstring = 2000
_long.maxother = 2000
_long.maxlist = _long.maxtuple = _long.maxdict = _long.maxset = 50

_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}


def _type_name(obj):
    t = type(obj)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def _repr(r, obj):
    try:
        return r.repr(obj)
    except Exception as e:  # a user object whose __repr__ fails must not break the listing
        return f"<repr failed: {type(e).__name__}>"


def _shape(obj, out):
    try:
        shape = getattr(obj, "shape", None)
        if isinstance(shape, tuple) and all(isinstance(d, int) for d in shape):
            out["shape"] = list(shape)
        dtype = getattr(obj, "dtype", None)
        if dtype is not None and not callable(dtype):
            out["dtype"] = str(dtype)
        if not isinstance(obj, type) and hasattr(obj, "__len__"):
            out["len"] = len(obj)
    except Exception:
        pass


def _user_ns():
    from IPython import get_ipython

    ip = get_ipython()
    return ip.user_ns, ip.user_ns_hidden


def variables():
    ns, hidden = _user_ns()
    names = sorted(
        n
        for n, v in list(ns.items())
        if not n.startswith("_")
        and n not in hidden
        and n not in _IPYTHON_NAMES
        and not isinstance(v, types.ModuleType)
    )
    out = []
    for name in names[:MAX_VARIABLES]:
        obj = ns[name]
        entry = {"name": name, "type": _type_name(obj), "repr": _repr(_short, obj)}
        _shape(obj, entry)
        out.append(entry)
    print(json.dumps({"variables": out, "total": len(names), "truncated": len(names) > MAX_VARIABLES}))


def inspect(path):
    ns, _ = _user_ns()
    parts = path.split(".")
    if parts[0] not in ns:
        print(json.dumps({"error": f"name '{parts[0]}' is not defined in the kernel"}))
        return
    obj = ns[parts[0]]
    for i, attr in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, attr)
        except Exception as e:
            where = ".".join(parts[:i])
            print(json.dumps({"error": f"'{where}' has no attribute '{attr}' ({type(e).__name__})"}))
            return
    t = type(obj)
    info = {"name": path, "type": _type_name(obj), "module": t.__module__, "repr": _repr(_long, obj)}
    _shape(obj, info)
    mod = t.__module__ or ""
    try:
        if mod.startswith("pandas") and hasattr(obj, "columns") and hasattr(obj, "head"):
            info["columns"] = [str(c) for c in list(obj.columns)[:100]]
            info["dtypes"] = {str(c): str(d) for c, d in list(obj.dtypes.items())[:100]}
            info["head"] = obj.head(5).to_string(max_cols=20)
        elif mod.startswith("pandas") and hasattr(obj, "head"):
            info["head"] = obj.head(5).to_string()
        elif mod.startswith("numpy") and getattr(obj, "ndim", 0) >= 1:
            info["head"] = repr(obj[:5])
    except Exception as e:
        info["head_error"] = f"{type(e).__name__}: {e}"
    try:
        doc = _inspect.getdoc(obj) if isinstance(obj, (type, types.FunctionType, types.ModuleType, types.BuiltinFunctionType, types.MethodType)) or callable(obj) else _inspect.getdoc(t)
        if doc:
            info["doc"] = doc.strip().splitlines()[0][:300]
    except Exception:
        pass
    print(json.dumps(info, default=str))


def versions():
    import platform

    import ipykernel

    print(json.dumps({"python": platform.python_version(), "ipykernel": ipykernel.__version__}))


def cap_stream_messages(limit):
    """Send stdout/stderr in messages of at most `limit` characters. ipykernel otherwise sends
    everything printed within 0.2 s (or one huge write) as a single message of unbounded size,
    which the server would have to hold whole. The text is unchanged, only split.

    The class's buffer rotation is patched, not `write`: IPython swaps the instance's `write`
    around every cell and restores whatever it found."""
    import sys

    cls = type(sys.stdout)
    if getattr(cls, "_jupyter_mcp_capped", False) or not hasattr(cls, "_flush_buffers"):
        return
    original = cls._flush_buffers

    def _flush_buffers(self):
        for parent, data in original(self):
            if len(data) <= limit:
                yield parent, data
                continue
            for i in range(0, len(data), limit):
                yield parent, data[i : i + limit]

    cls._flush_buffers = _flush_buffers
    cls._jupyter_mcp_capped = True

