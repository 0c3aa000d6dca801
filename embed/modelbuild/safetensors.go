package modelbuild

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
)

// Tensor is one weight read from a safetensors file, up-cast to float32.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// safetensorsEntry is one header entry: dtype, shape and byte range in the
// data section.
type safetensorsEntry struct {
	DType   string `json:"dtype"`
	Shape   []int  `json:"shape"`
	Offsets [2]int `json:"data_offsets"`
}

// maxHeaderSize bounds the JSON header so a corrupt length prefix cannot make
// us allocate gigabytes.
const maxHeaderSize = 100 << 20

// ReadSafetensors reads every floating-point tensor of a safetensors file,
// up-casting F16 and BF16 to float32. Integer tensors (such as BERT's
// position_ids buffer) are skipped: the graph derives them.
func ReadSafetensors(path string) (map[string]*Tensor, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading weights: %w (run scripts/setup.sh to fetch them)", err)
	}
	return parseSafetensors(path, buf)
}

func parseSafetensors(path string, buf []byte) (map[string]*Tensor, error) {
	if len(buf) < 8 {
		return nil, fmt.Errorf("%s: not a safetensors file: %d bytes, shorter than the 8-byte header length", path, len(buf))
	}
	n := binary.LittleEndian.Uint64(buf[:8])
	if n == 0 || n > maxHeaderSize || n > uint64(len(buf)-8) {
		return nil, fmt.Errorf("%s: not a safetensors file: header length %d is out of range for a %d-byte file", path, n, len(buf))
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(buf[8:8+n], &header); err != nil {
		return nil, fmt.Errorf("%s: invalid safetensors header: %w", path, err)
	}
	data := buf[8+n:]
	names := make([]string, 0, len(header))
	for name := range header {
		if name != "__metadata__" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	out := make(map[string]*Tensor, len(names))
	for _, name := range names {
		var e safetensorsEntry
		if err := json.Unmarshal(header[name], &e); err != nil {
			return nil, fmt.Errorf("%s: tensor %q: invalid header entry: %w", path, name, err)
		}
		count := 1
		for _, d := range e.Shape {
			if d < 0 || (d > 0 && count > math.MaxInt32/d) {
				return nil, fmt.Errorf("%s: tensor %q: invalid shape %v", path, name, e.Shape)
			}
			count *= d
		}
		size, ok := dtypeSize[e.DType]
		if !ok {
			return nil, fmt.Errorf("%s: tensor %q: unsupported dtype %q (want F16, BF16, F32 or I64)", path, name, e.DType)
		}
		start, end := e.Offsets[0], e.Offsets[1]
		if start < 0 || end < start || end > len(data) || end-start != count*size {
			return nil, fmt.Errorf("%s: tensor %q: data_offsets [%d,%d] do not match shape %v of %s in a %d-byte data section (truncated or corrupt file)", path, name, start, end, e.Shape, e.DType, len(data))
		}
		raw := data[start:end]
		var vals []float32
		switch e.DType {
		case "F16":
			vals = make([]float32, count)
			for i := range vals {
				vals[i] = Float16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
			}
		case "BF16":
			vals = make([]float32, count)
			for i := range vals {
				vals[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[2*i:])) << 16)
			}
		case "F32":
			vals = make([]float32, count)
			for i := range vals {
				vals[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		default:
			continue
		}
		out[name] = &Tensor{Name: name, Shape: e.Shape, Data: vals}
	}
	return out, nil
}

var dtypeSize = map[string]int{"F16": 2, "BF16": 2, "F32": 4, "I64": 8}

// Float16ToFloat32 converts an IEEE 754 half-precision value, including
// subnormals, infinities and NaN, to float32 exactly.
func Float16ToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch {
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0:
		// Subnormal half: value = mant * 2^-24; renormalise for float32.
		e := uint32(127 - 15 + 1)
		for mant&0x400 == 0 {
			mant <<= 1
			e--
		}
		mant &= 0x3ff
		return math.Float32frombits(sign | e<<23 | mant<<13)
	case exp == 0x1f:
		return math.Float32frombits(sign | 0xff<<23 | mant<<13)
	default:
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	}
}
