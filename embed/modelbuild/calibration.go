package modelbuild

import (
	_ "embed"
	"encoding/json"
	"fmt"
)

// CalibrationFile is where, relative to this package, the statistics
// EmbeddedCalibration returns are kept. They are measured by running the
// fp32 graph on calibration/sentences.txt; TestCalibrationStats in package
// embed, which has the ONNX Runtime, checks that they still match and
// rewrites them with -update-calibration; bump BuilderVersion with them.
// They are committed, not measured at build time, so that building a model
// needs no ONNX Runtime.
const CalibrationFile = "calibration/stats.json"

//go:embed calibration/stats.json
var calibrationJSON []byte

// Calibration holds per-channel activation statistics of the fp32 graph.
type Calibration struct {
	// Source is the sha256 of the safetensors weights they were measured on.
	Source string `json:"source_sha256"`
	// MaxAbs maps each ActivationPoints key to the largest |x| seen per
	// input channel.
	MaxAbs map[string][]float32 `json:"max_abs"`
}

// EmbeddedCalibration returns the statistics committed in CalibrationFile.
func EmbeddedCalibration() (Calibration, error) {
	var c Calibration
	if err := json.Unmarshal(calibrationJSON, &c); err != nil {
		return c, fmt.Errorf("decoding embedded %s: %w", CalibrationFile, err)
	}
	return c, nil
}

// smoothAlpha is the SmoothQuant migration strength of the int8 graph. Of
// 0.3 to 0.8, 0.6 gave the best worst-case cosine to fp32.
const smoothAlpha = 0.6
