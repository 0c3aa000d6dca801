// Package modelbuild is build-time tooling, not part of serving: it
// compiles a standard BERT encoder ONNX graph (fp32, plus a dynamically
// quantised int8 variant whose LayerNorm outputs are smoothed with the
// calibration statistics committed in calibration/) from a Hugging Face
// config.json and safetensors weights, so that setup needs neither Python
// nor a model hub. scripts/setup.sh runs it through 'autorouter model
// build'; nothing on the request path imports it.
package modelbuild
