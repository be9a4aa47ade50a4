"""What the test suite shares: model and bundle builders (helpers), writers of the public
datasets' on-disk formats (format_samples), the layering rules (layering), the faithful CPU
fakes of tensorrt/pycuda (fakes) and the late-fusion example family (latefusion_family).

It lives in tests/support/ and reaches sys.path through pytest's `pythonpath` setting: the
only name the repository adds to sys.path, so no folder of the repository (runtime/, kernels/,
the test folders) is importable under a bare name (docs/ARCHITECTURE.md §1)."""
