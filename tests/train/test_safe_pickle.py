"""The restricted unpickler refuses every global outside builtins' containers and numpy's array
reconstruction, however the pickle names it (GLOBAL, STACK_GLOBAL, inside object arrays)."""

import collections
import functools
import operator
import os
import pickle
import subprocess

import numpy as np
import pytest

from anymodal.runtime.errors import DataError
from anymodal.train.data.safe_pickle import safe_load_pickle


def reduce_to(fn, *args):
    class Evil:
        def __reduce__(self):
            return (fn, args)
    return Evil()


class DictSubclass(dict):
    pass


def raw_global(module, name, protocol0=True):
    """A hand-written pickle calling module.name('id') — GLOBAL (protocol 0) or STACK_GLOBAL (4)."""
    if protocol0:
        return f"c{module}\n{name}\n(S'id'\ntR.".encode()
    m, n = module.encode(), name.encode()
    return (b"\x80\x04\x8c" + bytes([len(m)]) + m + b"\x8c" + bytes([len(n)]) + n
            + b"\x93\x8c\x02id\x85R.")


CRAFTED = {
    "os.system": pickle.dumps(reduce_to(os.system, "echo pwned")),
    "subprocess.Popen": pickle.dumps(reduce_to(subprocess.Popen, ["true"])),
    "builtins.eval": pickle.dumps(reduce_to(eval, "1+1")),
    "builtins.exec": pickle.dumps(reduce_to(exec, "x=1")),
    "builtins.getattr": pickle.dumps(reduce_to(getattr, 1, "real")),
    "builtins.__import__": pickle.dumps(reduce_to(__import__, "os")),
    "builtins.open": pickle.dumps(reduce_to(open, "/etc/hostname")),
    "builtins.type": pickle.dumps(reduce_to(type, "X", (), {})),
    "builtins.object": raw_global("builtins", "object"),
    "functools.partial": pickle.dumps(reduce_to(functools.partial, print)),
    "operator.attrgetter": pickle.dumps(reduce_to(operator.attrgetter, "system")),
    "copyreg._reconstructor (object subclass)": pickle.dumps(DictSubclass(a=1), protocol=0),
    "collections.OrderedDict": pickle.dumps(collections.OrderedDict(a=1)),
    "copyreg.__newobj__ subclass": pickle.dumps(DictSubclass(a=1), protocol=2),
    "numpy.load": pickle.dumps(reduce_to(np.load, "x.npy")),
    "numpy.fromfile": pickle.dumps(reduce_to(np.fromfile, "/etc/hostname")),
    "numpy object array holding a reduce": pickle.dumps(np.array([reduce_to(os.system, "id")], dtype=object)),
    "posix.system via GLOBAL": raw_global("posix", "system"),
    "os.system via STACK_GLOBAL": raw_global("os", "system", protocol0=False),
    "nt.system via GLOBAL": raw_global("nt", "system"),
    "builtins.eval via STACK_GLOBAL": raw_global("builtins", "eval", protocol0=False),
    "__builtin__.eval (python 2 name)": raw_global("__builtin__", "eval"),
    "numpy.core.multiarray.fromfile": raw_global("numpy.core.multiarray", "fromfile"),
    "_codecs.decode": raw_global("_codecs", "decode"),
    "copyreg._reconstructor": raw_global("copyreg", "_reconstructor"),
    "sys.exit inside a dict": pickle.dumps({"train": [1, reduce_to(SystemExit, 3)]}),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_pickle_is_refused_naming_file_and_global(tmp_path, case):
    path = tmp_path / "labels.pkl"
    path.write_bytes(CRAFTED[case])
    with pytest.raises(DataError, match=r"refusing to unpickle [\w.]+\.\w+ — dataset pickles") as err:
        safe_load_pickle(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("raw", [b"", b"\x80\x04", b"not a pickle at all", pickle.dumps([1, 2, 3])[:-3]],
                         ids=["empty", "header only", "text", "truncated"])
def test_broken_pickles_are_data_errors_naming_the_file(tmp_path, raw):
    path = tmp_path / "labels.pkl"
    path.write_bytes(raw)
    with pytest.raises(DataError, match="not a readable pickle") as err:
        safe_load_pickle(path)
    assert str(path) in str(err.value)


def test_allowed_content_still_loads(tmp_path):
    data = [{"v": ["u1"]}, {"v": [np.float64(1.5)]}, {1, 2}, np.arange(6, dtype=np.float32).reshape(2, 3),
            (b"bytes", 3 + 0j, frozenset({1}))]
    for protocol in (0, 2, 4, 5):
        path = tmp_path / f"ok{protocol}.pkl"
        path.write_bytes(pickle.dumps(data, protocol=protocol))
        loaded = safe_load_pickle(path)
        np.testing.assert_array_equal(loaded[3], data[3])
        assert loaded[0] == data[0] and loaded[2] == data[2]
