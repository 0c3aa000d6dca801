package modelbuild

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFloat16ToFloat32(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   uint16
		want float32
	}{
		{"zero", 0x0000, 0},
		{"one", 0x3c00, 1},
		{"minus two", 0xc000, -2},
		{"max half", 0x7bff, 65504},
		{"smallest normal", 0x0400, 6.103515625e-05},
		{"smallest subnormal", 0x0001, 5.960464477539063e-08},
		{"largest subnormal", 0x03ff, 6.097555160522461e-05},
		{"one third", 0x3555, 0.333251953125},
	} {
		if got := Float16ToFloat32(tc.in); got != tc.want {
			t.Errorf("%s: Float16ToFloat32(%#04x) = %g, want %g", tc.name, tc.in, got, tc.want)
		}
	}
	if v := Float16ToFloat32(0x8000); v != 0 || !math.Signbit(float64(v)) {
		t.Error("negative zero lost its sign")
	}
	if !math.IsInf(float64(Float16ToFloat32(0x7c00)), 1) || !math.IsInf(float64(Float16ToFloat32(0xfc00)), -1) {
		t.Error("infinities")
	}
	if !math.IsNaN(float64(Float16ToFloat32(0x7e00))) {
		t.Error("NaN")
	}
}

// safetensorsFile builds a file from a header map and data section.
func safetensorsFile(header map[string]any, data []byte) []byte {
	h, _ := json.Marshal(header)
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(out, h...), data...)
}

func TestParseSafetensors(t *testing.T) {
	f16 := []byte{0x00, 0x3c, 0x00, 0xc0} // 1, -2
	good := safetensorsFile(map[string]any{
		"__metadata__": map[string]string{"format": "pt"},
		"w":            map[string]any{"dtype": "F16", "shape": []int{2}, "data_offsets": []int{0, 4}},
		"ids":          map[string]any{"dtype": "I64", "shape": []int{1}, "data_offsets": []int{4, 12}},
	}, append(f16, make([]byte, 8)...))
	m, err := parseSafetensors("good", good)
	if err != nil {
		t.Fatal(err)
	}
	if w := m["w"]; w == nil || w.Data[0] != 1 || w.Data[1] != -2 {
		t.Fatalf("w = %+v", m["w"])
	}
	if _, ok := m["ids"]; ok {
		t.Error("integer tensors should be skipped")
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"too short", []byte{1, 2}, "shorter than"},
		{"header length out of range", binary.LittleEndian.AppendUint64(nil, 1<<40), "out of range"},
		{"bad header", append(binary.LittleEndian.AppendUint64(nil, 3), []byte("{x}")...), "invalid safetensors header"},
		{"offsets out of range", safetensorsFile(map[string]any{"w": map[string]any{"dtype": "F16", "shape": []int{2}, "data_offsets": []int{0, 40}}}, f16), `tensor "w"`},
		{"shape does not match", safetensorsFile(map[string]any{"w": map[string]any{"dtype": "F16", "shape": []int{3}, "data_offsets": []int{0, 4}}}, f16), "do not match shape"},
		{"unsupported dtype", safetensorsFile(map[string]any{"w": map[string]any{"dtype": "C64", "shape": []int{1}, "data_offsets": []int{0, 4}}}, f16), "unsupported dtype"},
		{"truncated data", good[:len(good)-6], "truncated or corrupt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSafetensors("bad.safetensors", tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.safetensors") {
				t.Fatalf("err = %v; want it to name the file and contain %q", err, tc.want)
			}
		})
	}
}

func srcDir(t *testing.T) string {
	dir, _ := filepath.Abs("../../models/all-MiniLM-L6-v2/src")
	if _, err := os.Stat(filepath.Join(dir, "config.json")); err != nil {
		t.Fatalf("model sources missing (%v); run scripts/setup.sh", err)
	}
	return dir
}

func TestBuildIsDeterministicIdempotentAndVerified(t *testing.T) {
	src := srcDir(t)
	a, b := t.TempDir(), t.TempDir()
	var progress bytes.Buffer
	ra, err := Build(context.Background(), Options{SrcDir: src, OutDir: a, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(progress.String(), "writing model.onnx") {
		t.Errorf("no progress output: %q", progress.String())
	}
	rb, err := Build(context.Background(), Options{SrcDir: src, OutDir: b})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{ModelFile, ModelInt8File} {
		if ra.Manifest.Files[f] != rb.Manifest.Files[f] {
			t.Errorf("%s differs between two builds of the same weights", f)
		}
	}
	again, err := Build(context.Background(), Options{SrcDir: src, OutDir: a})
	if err != nil || !again.Skipped {
		t.Fatalf("second build: skipped=%v err=%v; want a skip", again.Skipped, err)
	}
	// A damaged output must not verify, and the next build repairs it.
	os.WriteFile(filepath.Join(a, ModelFile), []byte("half-written"), 0o644)
	if _, err := Verify(a); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("Verify of a damaged model: %v", err)
	}
	if r, err := Build(context.Background(), Options{SrcDir: src, OutDir: a}); err != nil || r.Skipped {
		t.Fatalf("rebuild after damage: skipped=%v err=%v", r.Skipped, err)
	}
	if _, err := Verify(a); err != nil {
		t.Fatal(err)
	}
}

func TestBuildErrors(t *testing.T) {
	if _, err := Build(context.Background(), Options{SrcDir: t.TempDir(), OutDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "setup.sh") {
		t.Fatalf("empty source: %v", err)
	}
	bad := Config{ModelType: "bert", HiddenSize: 10, NumHiddenLayers: 1, NumAttentionHeads: 3, IntermediateSize: 4}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "not divisible") {
		t.Fatalf("Validate: %v", err)
	}
	cfg := Config{ModelType: "bert", HiddenSize: 4, NumHiddenLayers: 1, NumAttentionHeads: 2, IntermediateSize: 8, VocabSize: 10, MaxPositionEmbeddings: 8, TypeVocabSize: 2}
	if _, err := BuildGraph(cfg, map[string]*Tensor{}, "w.safetensors", GraphOptions{}); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Fatalf("missing tensors: %v", err)
	}
}
