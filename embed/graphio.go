package embed

import (
	"bufio"
	"errors"
	"fmt"
	"io"
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
// It streams the file and skips the weights, so the model is never held
// in memory twice.
func graphIO(path string) (ins, outs []graphValue, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	r := &fieldReader{r: bufio.NewReaderSize(f, 64<<10), left: st.Size()}
	// ModelProto: find the graph field, then walk its fields in place.
	for {
		num, size, err := r.next()
		if err != nil {
			return nil, nil, fmt.Errorf("%w: no graph", errMalformedONNX)
		}
		if num == modelGraphField {
			r.left = size
			break
		}
		if err := r.skip(size); err != nil {
			return nil, nil, err
		}
	}
	for r.left > 0 {
		num, size, err := r.next()
		if err != nil {
			return nil, nil, err
		}
		if num != graphInputField && num != graphOutputField {
			if err := r.skip(size); err != nil {
				return nil, nil, err
			}
			continue
		}
		b, err := r.read(size)
		if err != nil {
			return nil, nil, err
		}
		gv, err := parseValueInfo(b)
		if err != nil {
			return nil, nil, err
		}
		if num == graphInputField {
			ins = append(ins, gv)
		} else {
			outs = append(outs, gv)
		}
	}
	return ins, outs, nil
}

// fieldReader reads the fields of a protobuf message from a stream; left is
// how many bytes of the message remain.
type fieldReader struct {
	r    *bufio.Reader
	left int64
}

// next reads a field's tag and returns its number and, for a
// length-delimited field, its size; other wire types report their value's
// size so that skip can pass over them.
func (f *fieldReader) next() (protowire.Number, int64, error) {
	tag, err := f.varint()
	if err != nil {
		return 0, 0, err
	}
	num, typ := protowire.DecodeTag(tag)
	switch typ {
	case protowire.BytesType:
		n, err := f.varint()
		if err != nil || int64(n) > f.left {
			return 0, 0, errMalformedONNX
		}
		return num, int64(n), nil
	case protowire.VarintType:
		_, err := f.varint()
		return num, 0, err
	case protowire.Fixed32Type:
		return num, 4, nil
	case protowire.Fixed64Type:
		return num, 8, nil
	}
	return 0, 0, errMalformedONNX
}

func (f *fieldReader) varint() (uint64, error) {
	var x uint64
	for shift := 0; shift < 64; shift += 7 {
		if f.left <= 0 {
			return 0, errMalformedONNX
		}
		c, err := f.r.ReadByte()
		if err != nil {
			return 0, errMalformedONNX
		}
		f.left--
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x, nil
		}
	}
	return 0, errMalformedONNX
}

func (f *fieldReader) skip(n int64) error {
	if n > f.left {
		return errMalformedONNX
	}
	for n > 0 {
		step := int(min(n, 1<<30))
		if _, err := f.r.Discard(step); err != nil {
			return errMalformedONNX
		}
		n -= int64(step)
		f.left -= int64(step)
	}
	return nil
}

func (f *fieldReader) read(n int64) ([]byte, error) {
	if n > f.left || n > 1<<20 {
		return nil, errMalformedONNX // a graph input's description is small
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(f.r, b); err != nil {
		return nil, errMalformedONNX
	}
	f.left -= n
	return b, nil
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
