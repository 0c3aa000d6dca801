package embed

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestGraphIO(t *testing.T) {
	dir := modelDir(t)
	for _, file := range []string{"model.onnx", "model_int8.onnx"} {
		ins, outs, err := graphIO(filepath.Join(dir, file))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if got := names(ins); !slices.Equal(got, []string{"input_ids", "attention_mask", "token_type_ids"}) {
			t.Errorf("%s: inputs %v", file, got)
		}
		if len(outs) != 1 || outs[0].Name != "last_hidden_state" || !slices.Equal(outs[0].Dims, []int64{-1, -1, 384}) {
			t.Errorf("%s: outputs %+v, want last_hidden_state [-1 -1 384]", file, outs)
		}
	}

	good, err := os.ReadFile(filepath.Join(dir, "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"text", []byte("this is not a protobuf at all, just words\n")},
		{"truncated", good[:len(good)/2]},
		{"bad tag", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(tmp, tc.name+".onnx")
			os.WriteFile(path, tc.data, 0o644)
			if _, _, err := graphIO(path); err == nil {
				t.Fatal("want an error")
			}
		})
	}
	if _, _, err := graphIO(filepath.Join(tmp, "missing.onnx")); err == nil {
		t.Fatal("missing file: want an error")
	}
}
