package embed

import (
	"errors"
	"fmt"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// graphValue is one input or output of an ONNX graph: its name and, for a
// tensor, its dimensions, -1 where symbolic or unknown.
type graphValue struct {
	Name string
	Dims []int64
}

// Field numbers of onnx/onnx.proto that graphIO reads.
const (
	modelGraphField  = 7  // ModelProto.graph
	graphInputField  = 11 // GraphProto.input
	graphOutputField = 12 // GraphProto.output
	valueNameField   = 1  // ValueInfoProto.name
	valueTypeField   = 2  // ValueInfoProto.type
	typeTensorField  = 1  // TypeProto.tensor_type
	tensorShapeField = 2  // TypeProto.Tensor.shape
	shapeDimField    = 1  // TensorShapeProto.dim
	dimValueField    = 1  // TensorShapeProto.Dimension.dim_value
)

var errMalformedONNX = errors.New("not a valid ONNX model")

// graphIO reads the inputs and outputs of the ONNX model at path straight
// from its protobuf. Asking ONNX Runtime instead means loading the whole
// model into a throwaway session, which cost 0.65 s of a 1.65 s restart.
func graphIO(path string) (ins, outs []graphValue, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	graph, ok := field(data, modelGraphField)
	if !ok {
		return nil, nil, fmt.Errorf("%w: no graph", errMalformedONNX)
	}
	err = eachField(graph, func(num protowire.Number, v []byte) error {
		if num != graphInputField && num != graphOutputField {
			return nil
		}
		gv, err := parseValueInfo(v)
		if err != nil {
			return err
		}
		if num == graphInputField {
			ins = append(ins, gv)
		} else {
			outs = append(outs, gv)
		}
		return nil
	})
	return ins, outs, err
}

func parseValueInfo(b []byte) (graphValue, error) {
	var gv graphValue
	err := eachField(b, func(num protowire.Number, v []byte) error {
		switch num {
		case valueNameField:
			gv.Name = string(v)
		case valueTypeField:
			tensor, _ := field(v, typeTensorField)
			shape, _ := field(tensor, tensorShapeField)
			return eachField(shape, func(num protowire.Number, dim []byte) error {
				if num != shapeDimField {
					return nil
				}
				d := int64(-1)
				eachVarint(dim, dimValueField, func(x uint64) { d = int64(x) })
				gv.Dims = append(gv.Dims, d)
				return nil
			})
		}
		return nil
	})
	return gv, err
}

// eachField calls fn with every length-delimited field of the message b.
// Other wire types are skipped.
func eachField(b []byte, fn func(protowire.Number, []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errMalformedONNX
		}
		b = b[n:]
		if typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errMalformedONNX
			}
			if err := fn(num, v); err != nil {
				return err
			}
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return errMalformedONNX
		}
		b = b[n:]
	}
	return nil
}

// field returns the last length-delimited field num of the message b.
func field(b []byte, num protowire.Number) (v []byte, ok bool) {
	eachField(b, func(n protowire.Number, x []byte) error {
		if n == num {
			v, ok = x, true
		}
		return nil
	})
	return v, ok
}

// eachVarint calls fn with every varint field num of the message b.
func eachVarint(b []byte, num protowire.Number, fn func(uint64)) {
	for len(b) > 0 {
		n0, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return
		}
		b = b[n:]
		if n0 == num && typ == protowire.VarintType {
			x, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return
			}
			fn(x)
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(n0, typ, b)
		if n < 0 {
			return
		}
		b = b[n:]
	}
}
