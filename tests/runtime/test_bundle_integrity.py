"""Bundle files and manifest as a hostile user would edit them (docs/ARCHITECTURE.md §6-§7):
every corruption, manifest edit and path escape is a BundleError naming the file; a file changed
after it was verified is refused before it is used again; unchanged bundles are not re-hashed."""

import json
import os
import re
import shutil
import time

import numpy as np
import pytest

from anymodal.runtime import file_integrity
from anymodal.runtime.bundle import MANIFEST, Bundle
from anymodal.runtime.errors import BundleError
from anymodal.runtime.manifest_schema import READABLE_VERSIONS
from anymodal.runtime.runtime import Runtime
from anymodal_testing.helpers import DIMS


@pytest.fixture
def bundle(small_bundle, tmp_path):
    """A private copy of the session's small MoMKE bundle (fp32), safe to damage."""
    return shutil.copytree(small_bundle, tmp_path / "bundle")


def manifest_of(b):
    return json.loads((b / MANIFEST).read_text())


def write_manifest(b, m):
    (b / MANIFEST).write_text(json.dumps(m))


def verify_all(b):
    """Open the bundle and verify every graph's files (what serving every pattern does)."""
    bundle = Bundle(b)
    for g in bundle.graphs:
        bundle.graph_path(g)
        if g in bundle.variant.get("ort_graphs", {}).get("graphs", {}):  # what ort-cpu serves
            bundle.ort_graph_path(g)


def audio(L=4):
    return np.random.default_rng(0).standard_normal((L, DIMS[0])).astype(np.float32)


# -- file corruption: truncated, bit-flipped, deleted, swapped --------------------------------

def _truncate(p, other):
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip(p, other):
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 3] ^= 0x10
    p.write_bytes(bytes(raw))


def _delete(p, other):
    p.unlink()


def _swap(p, other):
    a, b = p.read_bytes(), other.read_bytes()
    p.write_bytes(b)
    other.write_bytes(a)


def _empty(p, other):
    p.write_bytes(b"")


def test_every_file_corruption_is_caught_naming_the_file(bundle, tmp_path):
    files = sorted(manifest_of(bundle)["files"])
    cases = caught = 0
    for i, rel in enumerate(files):
        other = files[(i + 1) % len(files)]
        for damage in (_truncate, _flip, _delete, _swap, _empty):
            b = shutil.copytree(bundle, tmp_path / f"c{cases}")
            damage(b / rel, b / other)
            cases += 1
            with pytest.raises(BundleError) as err:
                verify_all(b)
            assert rel in str(err.value) or other in str(err.value), (damage.__name__, rel, err.value)
            caught += 1
            shutil.rmtree(b)
    assert caught == cases == 5 * len(files)


# -- manifest edits ---------------------------------------------------------------------------

def _node(m, keys):
    for key in keys:
        m = m[key]
    return m


def _set(*keys, value):
    def edit(m):
        _node(m, keys[:-1])[keys[-1]] = value
    return edit


def _delete_key(*keys):
    def edit(m):
        del _node(m, keys[:-1])[keys[-1]]
    return edit


def _rename_file(new):
    """Point graph `a` at `new` and list `new` in the file table with a's real hash."""
    def edit(m):
        g = m["variants"]["fp32"]["graphs"]["a"]
        m["files"][new] = m["files"].pop(g["file"])
        g["file"] = new
    return edit


G = ("variants", "fp32", "graphs")
A = ("files", "graphs/a.onnx")
MANIFEST_EDITS = {
    "schema version from the future": (_set("schema_version", value=99), r"schema_version 99 .*reads 1"),
    "schema version as a string": (_set("schema_version", value="1"), "schema_version '1'"),
    "schema version missing": (_delete_key("schema_version"), "schema_version None"),
    "model missing": (_delete_key("model"), "'model' is a required property"),
    "files missing": (_delete_key("files"), "'files' is a required property"),
    "variants empty": (_set("variants", value={}), "variants"),
    "task unknown": (_set("model", "task", value="weather"), "model/task"),
    "kind not a name": (_set("model", "kind", value="../evil"), "model/kind"),
    "labels not strings": (_set("model", "labels", value=[1, 2, 3, 4]), "model/labels/0"),
    "labels fewer than classes": (_set("model", "labels", value=["happy", "sad"]), "labels has 2 names but"),
    "labels removed (emotion)": (_delete_key("model", "labels"), "needs its class names"),
    "dim huge": (_set("inputs", "a", "dim", value=10 ** 12), "inputs/a/dim"),
    "dim zero": (_set("inputs", "a", "dim", value=0), "inputs/a/dim"),
    "dim a string": (_set("inputs", "a", "dim", value="6"), "inputs/a/dim"),
    "dim disagrees with the graph": (_set("inputs", "a", "dim", value=DIMS[0] + 1), "inputs/a/dim is 7 but"),
    "modality missing": (_delete_key("inputs", "v"), "'v' is a required property"),
    "unknown modality": (_set("inputs", "x", value={"name": "x", "dim": 3}), "inputs"),
    "absent lengths huge": (_set("model", "config", "absent_lengths", value=[10 ** 9, 5, 5]), "absent_lengths"),
    "tensor shape rank 100": (_set(*G, "a", "inputs", 0, "shape", value=[1] * 100), "shape"),
    "tensor dtype unknown": (_set(*G, "a", "inputs", 0, "dtype", value="object"), "dtype"),
    "graph without file": (_delete_key(*G, "a", "file"), "'file' is a required property"),
    "graph file not hashed": (_set(*G, "a", "file", value="graphs/other.onnx"), "not in the hashed file table"),
    "data file not hashed": (_set(*G, "a", "data_files", value=["graphs/w2.bin"]), "not in the hashed file table"),
    "sha256 missing": (_delete_key(*A, "sha256"), "'sha256' is a required property"),
    "sha256 upper case": (_set(*A, "sha256", value="A" * 64), "sha256"),
    "sha256 short": (_set(*A, "sha256", value="ab" * 8), "sha256"),
    "bytes negative": (_set(*A, "bytes", value=-1), "bytes"),
    "file entry extra key": (_set(*A, "url", value="http://x"), "url"),
    "task switched to sentiment": (_set("model", "task", value="sentiment"), "outputs 4 values"),
    "bytes disagree with the file": (_set(*A, "bytes", value=3), None),
    "default precision unknown": (_set("default_precision", value="int4"), "default_precision 'int4'"),
    "path with ..": (_rename_file("graphs/../../outside.onnx"), "does not match"),
    "path absolute": (_rename_file("/etc/passwd"), "does not match"),
    "path with . segment": (_rename_file("./graphs/a.onnx"), "does not match"),
    "path with empty segment": (_rename_file("graphs//a.onnx"), "does not match"),
    "path with backslash": (_rename_file("graphs\\a.onnx"), "does not match"),
    "path with drive letter": (_rename_file("C:/a.onnx"), "does not match"),
    "path trailing slash": (_rename_file("graphs/"), "does not match"),
    "path only ..": (_rename_file(".."), "does not match"),
}


@pytest.mark.parametrize("case", list(MANIFEST_EDITS))
def test_manifest_edit_is_a_bundle_error_naming_the_manifest(bundle, case):
    edit, expected = MANIFEST_EDITS[case]
    m = manifest_of(bundle)
    edit(m)
    write_manifest(bundle, m)
    with pytest.raises(BundleError, match=expected or r"a\.onnx: \d+ bytes, the manifest says 3") as err:
        verify_all(bundle)
    assert str(bundle / (MANIFEST if expected else "graphs/a.onnx")) in str(err.value)


@pytest.mark.parametrize("served", ["portable", "ort"])  # the standard graph, or its ORT-optimised copy
def test_a_pattern_pointed_at_another_hashed_graph_is_refused_on_load(bundle, served):
    m = manifest_of(bundle)
    table = m["variants"]["fp32"]["graphs"] if served == "portable" else m["variants"]["fp32"]["ort_graphs"]["graphs"]
    target = "graphs/t.onnx" if served == "portable" else "graphs/t.ort.onnx"
    table["a"]["file"] = target  # listed, hash right, wrong graph
    write_manifest(bundle, m)
    rt = Runtime(bundle)
    rt.backend.graphs = served
    with pytest.raises(BundleError, match=re.escape(target) + r": graph 'a' has inputs \['text', 'mask'\]"):
        rt.predict(audio=audio())


def test_unknown_version_lists_the_versions_this_build_reads(bundle):
    write_manifest(bundle, {**manifest_of(bundle), "schema_version": 2})
    with pytest.raises(BundleError, match="reads " + ", ".join(map(str, READABLE_VERSIONS))):
        Bundle(bundle)


def test_future_fields_are_allowed_where_the_schema_is_open(bundle):
    m = manifest_of(bundle)
    m["int8_accuracy_delta"] = {"wa": -0.3}
    m["variants"]["fp32"]["graphs"]["a"]["ort_optimized"] = {"level": "all"}
    m["model"]["config"]["new_knob"] = 3
    write_manifest(bundle, m)
    verify_all(bundle)


@pytest.mark.parametrize("raw, expected", [
    (b"\xff\xfe{}", "not UTF-8"),
    (b'{"schema_version": 1,', "not valid JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"schema_version": NaN}', "NaN is not JSON"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply|not valid JSON"),
    (b"", "not valid JSON"),
])
def test_unreadable_manifest_is_a_bundle_error_naming_it(bundle, raw, expected):
    (bundle / MANIFEST).write_bytes(raw)
    with pytest.raises(BundleError, match=expected) as err:
        Bundle(bundle)
    assert str(bundle / MANIFEST) in str(err.value)


def test_manifest_that_is_a_folder_or_missing(bundle):
    (bundle / MANIFEST).unlink()
    with pytest.raises(BundleError, match=f"{MANIFEST}: missing"):
        Bundle(bundle)
    (bundle / MANIFEST).mkdir()
    with pytest.raises(BundleError, match=f"{MANIFEST}: cannot read"):
        Bundle(bundle)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files without permission")
def test_unreadable_files_are_bundle_errors_naming_them(bundle):
    weights = bundle / "graphs" / "weights.bin"
    weights.chmod(0)
    with pytest.raises(BundleError, match=r"weights\.bin: cannot read"):
        verify_all(bundle)
    (bundle / MANIFEST).chmod(0)
    with pytest.raises(BundleError, match=f"{MANIFEST}: cannot read"):
        Bundle(bundle)


def test_a_folder_or_fifo_in_place_of_a_file_is_refused_without_hanging(bundle):
    weights = bundle / "graphs" / "weights.bin"
    weights.unlink()
    os.mkfifo(weights)  # opening it for reading would block forever
    with pytest.raises(BundleError, match=r"weights\.bin: not a regular file"):
        verify_all(bundle)
    weights.unlink()
    weights.mkdir()
    with pytest.raises(BundleError, match=r"weights\.bin: not a regular file"):
        verify_all(bundle)


# -- symlinks ---------------------------------------------------------------------------------

def test_symlink_out_of_the_bundle_is_refused_even_with_the_right_hash(bundle, tmp_path):
    weights = bundle / "graphs" / "weights.bin"
    outside = tmp_path / "outside.bin"
    shutil.copy(weights, outside)  # identical bytes: only the location is wrong
    weights.unlink()
    weights.symlink_to(outside)
    with pytest.raises(BundleError, match=r"weights\.bin: resolves to .*outside the bundle"):
        verify_all(bundle)


def test_symlink_inside_the_bundle_is_followed(bundle):
    weights = bundle / "graphs" / "weights.bin"
    shutil.move(weights, bundle / "weights-store.bin")
    weights.symlink_to("../weights-store.bin")
    verify_all(bundle)


def test_bundle_folder_itself_may_be_a_symlink(bundle, tmp_path):
    link = tmp_path / "current"
    link.symlink_to(bundle)
    verify_all(link)


# -- files changed after first use ------------------------------------------------------------

def _rewrite_in_place_keeping_size_and_mtime(path):
    st = path.stat()
    with path.open("r+b") as fh:
        fh.seek(st.st_size // 2)
        byte = fh.read(1)
        fh.seek(st.st_size // 2)
        fh.write(bytes([byte[0] ^ 0x01]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # ctime still moves: the kernel sets it


def test_weights_rewritten_after_first_use_are_refused_not_served(bundle):
    rt = Runtime(bundle)
    first = rt.predict(audio=audio()).probs
    _rewrite_in_place_keeping_size_and_mtime(bundle / "graphs" / "weights.bin")
    with pytest.raises(BundleError, match=r"weights\.bin: sha256 mismatch"):
        rt.predict(audio=audio())
    with pytest.raises(BundleError, match=r"weights\.bin: sha256 mismatch"):
        rt.predict(audio=audio())  # still refused, not trusted after one refusal
    _rewrite_in_place_keeping_size_and_mtime(bundle / "graphs" / "weights.bin")  # flip it back
    np.testing.assert_array_equal(rt.predict(audio=audio()).probs, first)


@pytest.mark.parametrize("served, suffix", [("portable", ".onnx"), ("ort", ".ort.onnx")])
def test_graph_replaced_after_first_use_is_refused(bundle, served, suffix):
    rt = Runtime(bundle)
    rt.backend.graphs = served  # the file ort-cpu serves: the standard graph or its ORT-optimised copy
    rt.predict(audio=audio())
    g = bundle / "graphs" / f"a{suffix}"
    tmp = bundle / "graphs" / "a.new"
    shutil.copy(bundle / "graphs" / f"t{suffix}", tmp)
    os.replace(tmp, g)  # a new inode: what an editor or `cp` over the file does
    with pytest.raises(BundleError, match=re.escape(g.name) + r": (sha256 mismatch|\d+ bytes, the manifest says)"):
        rt.predict(audio=audio())


def test_stat_changes_trigger_a_rehash_and_unchanged_files_are_never_rehashed(bundle, monkeypatch):
    monkeypatch.setattr(file_integrity, "RACY_NS", 0)  # the copy is fresh; trust its stat at once
    hashed = []
    real = file_integrity.sha256_file
    monkeypatch.setattr(file_integrity, "sha256_file", lambda p: hashed.append(p.name) or real(p))
    rt = Runtime(bundle)
    rt.predict(audio=audio())
    assert sorted(hashed) == ["a.ort.onnx", "weights.bin"]  # the file ort-cpu serves: the ORT-optimised copy
    for _ in range(20):
        rt.predict(audio=audio())
    assert len(hashed) == 2  # a stat per call, no re-hash
    time.sleep(0.05)  # the next write lands in a later timestamp tick
    os.utime(bundle / "graphs" / "weights.bin")  # touched, same bytes: re-hashed once, then served
    rt.predict(audio=audio())
    assert hashed[2:] == ["weights.bin"]
    time.sleep(0.05)
    _rewrite_in_place_keeping_size_and_mtime(bundle / "graphs" / "weights.bin")
    with pytest.raises(BundleError, match=r"weights\.bin: sha256 mismatch"):
        rt.predict(audio=audio())


def test_repeat_opens_of_an_unchanged_bundle_hash_nothing(bundle, monkeypatch):
    monkeypatch.setattr(file_integrity, "RACY_NS", 0)
    hashed = []
    real = file_integrity.sha256_file
    monkeypatch.setattr(file_integrity, "sha256_file", lambda p: hashed.append(p) or real(p))
    verify_all(bundle)
    n = len(hashed)
    assert n == len(manifest_of(bundle)["files"])
    for _ in range(5):
        verify_all(bundle)
    assert len(hashed) == n


def test_recently_written_files_are_rehashed_until_their_stat_can_be_trusted(bundle, monkeypatch):
    hashed = []
    real = file_integrity.sha256_file
    monkeypatch.setattr(file_integrity, "sha256_file", lambda p: hashed.append(p) or real(p))
    weights = bundle / "graphs" / "weights.bin"
    weights.write_bytes(weights.read_bytes())  # same bytes, written just now
    b = Bundle(bundle)
    b.check_file("graphs/weights.bin")
    b.check_file("graphs/weights.bin")
    assert len(hashed) == 2  # racy: a rewrite within this timestamp tick would not show in the stat
    monkeypatch.setattr(file_integrity, "RACY_NS", 0)
    b.check_file("graphs/weights.bin")
    assert len(hashed) == 3  # once more: the state recorded last time was racy
    b.check_file("graphs/weights.bin")
    assert len(hashed) == 3  # now trusted: a stat, no hash
