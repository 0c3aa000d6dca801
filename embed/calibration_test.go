package embed

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/autorouter/autorouter/embed/modelbuild"
	ort "github.com/yalue/onnxruntime_go"
)

var updateCalibration = flag.Bool("update-calibration", false, "rewrite embed/modelbuild/"+modelbuild.CalibrationFile+" from the fp32 graph")

// TestCalibrationStats measures the activation statistics the int8 graph is
// smoothed with and checks them against the committed ones, which the model
// build uses because it has no ONNX Runtime to measure them itself.
func TestCalibrationStats(t *testing.T) {
	root := repoRoot(t)
	src := filepath.Join(root, "models", "all-MiniLM-L6-v2", "src")
	got, err := measureCalibration(t, root, src)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "embed", "modelbuild", modelbuild.CalibrationFile)
	if *updateCalibration {
		if err := os.WriteFile(path, encodeCalibration(got), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s; bump modelbuild.BuilderVersion so that models rebuild", path)
		return
	}
	want, err := modelbuild.EmbeddedCalibration()
	if err != nil {
		t.Fatal(err)
	}
	if got.Source != want.Source {
		t.Fatalf("%s was measured on weights %s, not on %s; regenerate it with -update-calibration", path, want.Source, got.Source)
	}
	if len(got.MaxAbs) != len(want.MaxAbs) {
		t.Fatalf("%s has %d inputs, want %d; regenerate it with -update-calibration", path, len(want.MaxAbs), len(got.MaxAbs))
	}
	for key, g := range got.MaxAbs {
		w := want.MaxAbs[key]
		if len(w) != len(g) {
			t.Fatalf("%s: %s has %d channels, want %d", path, key, len(w), len(g))
		}
		for i := range g {
			// The stored values are rounded to 4 significant digits.
			if math.Abs(float64(g[i]-w[i])) > 1e-3*math.Abs(float64(g[i]))+1e-6 {
				t.Fatalf("%s: %s channel %d is %g, measured %g; regenerate it with -update-calibration", path, key, i, w[i], g[i])
			}
		}
	}
}

// measureCalibration runs the fp32 graph with taps on the calibration
// sentences, one at a time so that no padding enters the statistics.
func measureCalibration(t *testing.T, root, src string) (modelbuild.Calibration, error) {
	var cal modelbuild.Calibration
	cfg, err := modelbuild.ReadConfig(filepath.Join(src, "config.json"))
	if err != nil {
		return cal, err
	}
	weightsPath := filepath.Join(src, "model.fp16.safetensors")
	raw, err := os.ReadFile(weightsPath)
	if err != nil {
		return cal, fmt.Errorf("reading weights: %w (run scripts/setup.sh)", err)
	}
	sum := sha256.Sum256(raw)
	cal.Source = hex.EncodeToString(sum[:])
	tensors, err := modelbuild.ReadSafetensors(weightsPath)
	if err != nil {
		return cal, err
	}
	graph, err := modelbuild.BuildGraph(cfg, tensors, weightsPath, modelbuild.GraphOptions{Taps: true})
	if err != nil {
		return cal, err
	}
	modelPath := filepath.Join(t.TempDir(), "tapped.onnx")
	if err := os.WriteFile(modelPath, graph, 0o644); err != nil {
		return cal, err
	}
	tok, err := LoadTokenizer(filepath.Join(src, "tokenizer.json"), 256)
	if err != nil {
		return cal, err
	}
	if err := acquireRuntime(filepath.Join(root, "models", "onnxruntime", "libonnxruntime.so"), ""); err != nil {
		return cal, err
	}
	defer releaseRuntime()
	keys, channels := modelbuild.ActivationPoints(cfg)
	session, err := ort.NewDynamicAdvancedSession(modelPath, []string{"input_ids", "attention_mask", "token_type_ids"}, keys, nil)
	if err != nil {
		return cal, fmt.Errorf("creating session: %w", err)
	}
	defer session.Destroy()
	cal.MaxAbs = map[string][]float32{}
	for i, key := range keys {
		cal.MaxAbs[key] = make([]float32, channels[i])
	}
	sentences, err := readLines(filepath.Join(root, "embed", "modelbuild", "calibration", "sentences.txt"))
	if err != nil {
		return cal, err
	}
	for _, s := range sentences {
		ids, err := tok.EncodeInto(nil, s)
		if err != nil {
			return cal, err
		}
		mask, types := make([]int64, len(ids)), make([]int64, len(ids))
		for i := range mask {
			mask[i] = 1
		}
		var inputs []ort.Value
		for _, data := range [][]int64{ids, mask, types} {
			v, err := ort.NewTensor(ort.NewShape(1, int64(len(ids))), data)
			if err != nil {
				destroyAll(inputs)
				return cal, fmt.Errorf("creating input tensor: %w", err)
			}
			inputs = append(inputs, v)
		}
		outputs := make([]ort.Value, len(keys))
		err = session.Run(inputs, outputs)
		destroyAll(inputs)
		if err != nil {
			return cal, fmt.Errorf("running the tapped graph: %w", err)
		}
		for i, key := range keys {
			m := cal.MaxAbs[key]
			for j, v := range outputs[i].(*ort.Tensor[float32]).GetData() {
				m[j%channels[i]] = max(m[j%channels[i]], float32(math.Abs(float64(v))))
			}
		}
		destroyAll(outputs)
	}
	for _, m := range cal.MaxAbs {
		for i, v := range m {
			r, _ := strconv.ParseFloat(strconv.FormatFloat(float64(v), 'g', 4, 32), 32)
			m[i] = float32(r)
		}
	}
	return cal, nil
}

// encodeCalibration writes one input per line, for readable diffs.
func encodeCalibration(c modelbuild.Calibration) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n  \"source_sha256\": %q,\n  \"max_abs\": {\n", c.Source)
	keys := make([]string, 0, len(c.MaxAbs))
	for k := range c.MaxAbs {
		keys = append(keys, k)
	}
	// Sorted, so that rewriting unchanged statistics changes nothing.
	slices.Sort(keys)
	for i, k := range keys {
		vs, _ := json.Marshal(c.MaxAbs[k])
		sep := ","
		if i == len(keys)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "    %q: %s%s\n", k, vs, sep)
	}
	b.WriteString("  }\n}\n")
	return b.Bytes()
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out, sc.Err()
}
