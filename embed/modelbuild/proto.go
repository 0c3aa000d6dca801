package modelbuild

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// The ONNX protobuf messages are hand-encoded with protowire: the graph needs
// a dozen message types, and a generated onnx package would pull in far more
// than that. Field numbers are those of onnx/onnx.proto (IR version 8).

// ONNX TensorProto.DataType values.
const (
	dtFloat = 1
	dtInt8  = 3
	dtInt64 = 7
)

// ONNX AttributeProto.AttributeType values.
const (
	attrFloat = 1
	attrInt   = 2
	attrInts  = 7
)

// attr is one node attribute, already encoded as an AttributeProto.
type attr []byte

func attrI(name string, v int64) attr {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(v))
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	b = protowire.AppendVarint(b, attrInt)
	return b
}

func attrF(name string, v float32) attr {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 2, protowire.Fixed32Type)
	b = protowire.AppendFixed32(b, math.Float32bits(v))
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	b = protowire.AppendVarint(b, attrFloat)
	return b
}

func attrInts64(name string, vs ...int64) attr {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, name)
	for _, v := range vs {
		b = protowire.AppendTag(b, 8, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(v))
	}
	b = protowire.AppendTag(b, 20, protowire.VarintType)
	b = protowire.AppendVarint(b, attrInts)
	return b
}

// encodeNode returns a NodeProto.
func encodeNode(name, op, domain string, inputs, outputs []string, attrs []attr) []byte {
	var b []byte
	for _, in := range inputs {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, in)
	}
	for _, out := range outputs {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendString(b, out)
	}
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 4, protowire.BytesType)
	b = protowire.AppendString(b, op)
	for _, a := range attrs {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, a)
	}
	if domain != "" {
		b = protowire.AppendTag(b, 7, protowire.BytesType)
		b = protowire.AppendString(b, domain)
	}
	return b
}

// encodeTensor returns a TensorProto holding raw little-endian data.
func encodeTensor(name string, dtype int, dims []int64, raw []byte) []byte {
	var b []byte
	for _, d := range dims {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(d))
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(dtype))
	b = protowire.AppendTag(b, 8, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 9, protowire.BytesType)
	b = protowire.AppendBytes(b, raw)
	return b
}

func float32Raw(vs []float32) []byte {
	raw := make([]byte, 4*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
	}
	return raw
}

func int64Raw(vs []int64) []byte {
	raw := make([]byte, 8*len(vs))
	for i, v := range vs {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
	}
	return raw
}

func int8Raw(vs []int8) []byte {
	raw := make([]byte, len(vs))
	for i, v := range vs {
		raw[i] = byte(v)
	}
	return raw
}

// encodeValueInfo returns a ValueInfoProto for a tensor whose dims are either
// fixed (a positive number) or symbolic (a non-empty name in params).
func encodeValueInfo(name string, elem int, dims []int64, params []string) []byte {
	var shape []byte
	for i, d := range dims {
		var dim []byte
		if params[i] != "" {
			dim = protowire.AppendTag(dim, 2, protowire.BytesType)
			dim = protowire.AppendString(dim, params[i])
		} else {
			dim = protowire.AppendTag(dim, 1, protowire.VarintType)
			dim = protowire.AppendVarint(dim, uint64(d))
		}
		shape = protowire.AppendTag(shape, 1, protowire.BytesType)
		shape = protowire.AppendBytes(shape, dim)
	}
	var tensor []byte
	tensor = protowire.AppendTag(tensor, 1, protowire.VarintType)
	tensor = protowire.AppendVarint(tensor, uint64(elem))
	tensor = protowire.AppendTag(tensor, 2, protowire.BytesType)
	tensor = protowire.AppendBytes(tensor, shape)
	var typ []byte
	typ = protowire.AppendTag(typ, 1, protowire.BytesType)
	typ = protowire.AppendBytes(typ, tensor)
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendString(b, name)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendBytes(b, typ)
	return b
}

// opset is an OperatorSetIdProto.
type opset struct {
	domain  string
	version int64
}

// encodeModel returns a ModelProto wrapping one graph.
func encodeModel(graph []byte, opsets []opset, producer, version string) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, 8) // ir_version
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, producer)
	b = protowire.AppendTag(b, 3, protowire.BytesType)
	b = protowire.AppendString(b, version)
	b = protowire.AppendTag(b, 7, protowire.BytesType)
	b = protowire.AppendBytes(b, graph)
	for _, o := range opsets {
		var os []byte
		if o.domain != "" {
			os = protowire.AppendTag(os, 1, protowire.BytesType)
			os = protowire.AppendString(os, o.domain)
		}
		os = protowire.AppendTag(os, 2, protowire.VarintType)
		os = protowire.AppendVarint(os, uint64(o.version))
		b = protowire.AppendTag(b, 8, protowire.BytesType)
		b = protowire.AppendBytes(b, os)
	}
	return b
}
