#!/usr/bin/python3
"""Derives models/yunet_s_dynamic_rgb_uint8.onnx from models/yunet_s_dynamic.onnx (libfacedetection.train,
Apache-2.0): the same network and weights, taking the decoded image as it is (uint8, height x width
x RGB) instead of a float BGR planar tensor. Two nodes are put before the first convolution
(Transpose to planar, then Cast to float: transposing bytes is 4x less memory than floats) and that
convolution's input channels are reordered from BGR to RGB; nothing else changes. The service then
hands the model the image's bytes without a JavaScript loop converting every pixel (about 3 ms per
640x480 frame here).

    /usr/bin/python3 scripts/yunet-uint8-input.py      (needs Debian's python3-onnx)
"""
import hashlib
import pathlib

import onnx
from onnx import TensorProto, helper, numpy_helper

models = pathlib.Path(__file__).resolve().parent.parent / "models"
source = models / "yunet_s_dynamic.onnx"
target = models / "yunet_s_dynamic_rgb_uint8.onnx"

model = onnx.load(source)
graph = model.graph
old_input = graph.input[0]
assert old_input.name == "input" and old_input.type.tensor_type.elem_type == TensorProto.FLOAT
first = [n for n in graph.node if "input" in n.input]
assert len(first) == 1 and first[0].op_type == "Conv", "the input feeds one convolution"
weights = next(i for i in graph.initializer if i.name == first[0].input[1])
assert sum(weights.name in n.input for n in graph.node) == 1, "the weights are that convolution's alone"

# BGR -> RGB: the convolution reads channel c of the new input where it read channel 2 - c.
w = numpy_helper.to_array(weights)
weights.CopyFrom(numpy_helper.from_array(w[:, ::-1, :, :].copy(), weights.name))

image = helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", "height", "width", 3])
planar = helper.make_node("Transpose", ["image"], ["image_planar"], perm=[0, 3, 1, 2], name="image_to_planar")
as_float = helper.make_node("Cast", ["image_planar"], ["input"], to=TensorProto.FLOAT, name="image_to_float")
graph.input.remove(old_input)
graph.input.insert(0, image)
for i, node in enumerate([planar, as_float]):
    graph.node.insert(i, node)
onnx.checker.check_model(model)
onnx.save(model, target)
print(target.name, hashlib.sha256(target.read_bytes()).hexdigest())
