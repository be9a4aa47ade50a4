"""The fused RouterMix op's identity, in one place: the ONNX node the exporter writes
(`trt.plugins::RouterMix` with plugin_namespace="anymodal") and the TensorRT plugin that
serves it ("anymodal::RouterMix"). Plain constants: importable by every layer."""

PLUGIN_DOMAIN = "trt.plugins"  # ONNX domain of the fused node (TensorRT's plugin naming)
PLUGIN_NAME = "RouterMix"  # ONNX op_type = TensorRT plugin name
PLUGIN_NAMESPACE = "anymodal"  # the node's plugin_namespace attribute
PLUGIN_ID = f"{PLUGIN_NAMESPACE}::{PLUGIN_NAME}"  # what TensorRT registers
